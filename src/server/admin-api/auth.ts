import type { FastifyRequest } from 'fastify';
import type { Directory } from '../../authn/directory.js';
import { parseScopeLimit } from '../../authz/scope-limit.js';
import { secretDigest, secretKind } from '../../security/secret-token.js';
import type { Store } from '../../store/types.js';
import { clientIp, type RealIpSettings } from '../client-ip.js';
import { ApiError } from './errors.js';
import type { Caller } from './route.js';

export const ADMIN_REALM = 'sts-docker-auth admin API';

const BEARER = /^Bearer +([^\s]+) *$/i;

function unauthorized(message: string, invalidToken = true): ApiError {
  return new ApiError('UNAUTHORIZED', message, 401, invalidToken ? 'invalid_token' : undefined);
}

/**
 * Who may call the admin API: the holder of one of our access tokens (`stsat_…`, sent as
 * `Authorization: Bearer`) that is neither revoked nor expired, whose owner may still sign in,
 * and that carries the scope `admin`. Everything else is 401, or 403 for a good token without
 * `admin`.
 */
export function adminAuthenticator(options: {
  store: Store;
  directory: Directory;
  realIp: RealIpSettings;
  now?: () => number;
}): (request: FastifyRequest) => Promise<Caller> {
  const { store, directory, realIp } = options;
  const now = options.now ?? Date.now;
  return async (request) => {
    const header = request.headers.authorization;
    if (header === undefined || header.trim() === '') {
      throw unauthorized('an admin access token is required: Authorization: Bearer <access token>', false);
    }
    const secret = BEARER.exec(header)?.[1];
    if (secret === undefined) throw unauthorized('the Authorization header must be "Bearer <access token>"', false);
    if (secretKind(secret) !== 'access') throw unauthorized('the bearer token is not an access token (stsat_…)');
    const record = await store.accessTokens.findByDigest(secretDigest(secret));
    if (!record) throw unauthorized('unknown access token');
    if (record.revokedAt !== null) throw unauthorized(`access token ${record.id} is revoked`);
    const at = now();
    if (record.expiresAt !== null && record.expiresAt <= at) throw unauthorized(`access token ${record.id} has expired`);
    const owner = await directory(record.user);
    if (owner.outcome !== 'identity') throw unauthorized(`the owner of access token ${record.id} cannot sign in`);
    if (!parseScopeLimit(record.scopes).admin) {
      throw new ApiError('FORBIDDEN', `access token ${record.id} does not carry the admin scope`, 403, 'insufficient_scope');
    }
    let ip: string | null;
    try {
      ip = clientIp(realIp, request.socket.remoteAddress, request.headers) ?? null;
    } catch {
      ip = null; // a missing or bad proxy header: record no address rather than refuse the call
    }
    // Recording the use never fails the request.
    await store.accessTokens.touch(record.id, at, ip).catch((err: unknown) => request.log.warn({ err }, 'could not record an access token use'));
    return { tokenId: record.id, user: record.user, actor: `api:${record.id}` };
  };
}
