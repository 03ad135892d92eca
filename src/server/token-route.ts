import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuditEvent, AuditSink } from '../observability/audit.js';
import { parseTokenRequest, type TokenRequest } from '../protocol/request.js';
import { isoTime } from '../protocol/iso-time.js';
import { tokenResponseJson } from '../protocol/response.js';
import { formatScopes, type ResourceScope } from '../protocol/scope.js';
import { withStoreDeadline } from '../store/deadline.js';
import type { TokenIssuer } from '../token/issue.js';
import { clientIp, type RealIpSettings } from './client-ip.js';
import { sendError, statusOf, toTokenError } from './errors.js';

/** What Fastify sends for a serialized object; the token response is written as a string. */
const JSON_TYPE = 'application/json; charset=utf-8';

/** The granted scopes as the audit line lists them: one string each, none with no action left. */
function grantedScopes(granted: readonly ResourceScope[]): string[] {
  const out: string[] = [];
  for (const scope of granted) if (scope.actions.length > 0) out.push(formatScopes([scope]));
  return out;
}

export interface TokenRouteOptions {
  pathPrefix: string;
  realm: string;
  realIp: RealIpSettings;
  /** false: POST is answered 404, which makes containerd and buildkit fall back to GET. */
  allowPost: boolean;
  issuer: () => TokenIssuer;
  audit: AuditSink;
  /** `store.query_timeout` in ms: the deadline of each store call made for a token request. */
  storeQueryTimeoutMs?: number | undefined;
}

/**
 * The token endpoint: GET (query) and POST (form) at `<prefix>/auth` and `<prefix>/auth/token`.
 * One road: parse, authenticate, authorize, mint, respond, audit.
 */
export async function tokenRoutes(app: FastifyInstance, options: TokenRouteOptions): Promise<void> {
  // Only forms are accepted here; anything else (JSON included) is a client error, answered 400.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => {
    done(null, new URLSearchParams(body as string));
  });

  // Fastify makes a child logger (`reqId` bound) for every request; this route logs only on an
  // internal error (the audit line is written by its own sink), so it gets the parent logger and
  // the error line below carries `reqId` itself. Saves a pino child per token.
  app.setChildLoggerFactory((logger) => logger);

  app.setErrorHandler((err, request, reply) => {
    const error = toTokenError(err);
    if (error.code === 'INTERNAL') request.log.error({ reqId: request.id, err }, 'token request failed');
    return sendError(reply, error, options.realm, request.method === 'POST');
  });

  // Without a store there is no deadline to carry, and no closure to make per request.
  const storeDeadline = options.storeQueryTimeoutMs !== undefined && options.storeQueryTimeoutMs > 0 ? options.storeQueryTimeoutMs : undefined;

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    const method = request.method === 'POST' ? 'POST' : 'GET';
    let parsed: TokenRequest | undefined;
    let ip: string | undefined;
    const event: AuditEvent = {
      time: isoTime(Date.now()),
      ip: request.ip,
      method,
      grant_type: undefined,
      offline: undefined,
      client_id: undefined,
      account: undefined,
      backend: undefined,
      service: undefined,
      requested: [],
      granted: [],
      result: 'error',
      reason: '',
      duration_ms: 0,
    };
    try {
      ip = clientIp(options.realIp, request.socket.remoteAddress, request.headers);
      event.ip = ip;
      const queryAt = request.url.indexOf('?');
      parsed = parseTokenRequest({
        method,
        query: new URLSearchParams(queryAt < 0 ? '' : request.url.slice(queryAt + 1)),
        form: request.body instanceof URLSearchParams ? request.body : undefined,
        authorization: request.headers.authorization,
      });
      event.client_id = parsed.clientId;
      event.grant_type = parsed.grantType;
      event.offline = parsed.offline;
      event.service = parsed.service;
      event.requested = parsed.requested.flatMap((s) => s.split(' ')).filter((s) => s !== '');
      event.account = parsed.credentials?.username ?? '';

      // Every store call made for this request is bound by store.query_timeout (never admin work).
      const tokenRequest = parsed;
      const clientAddress = ip;
      const issuer = options.issuer();
      const issued = await (storeDeadline ? withStoreDeadline(storeDeadline, () => issuer.issue(tokenRequest, clientAddress)) : issuer.issue(tokenRequest, clientAddress));
      event.account = issued.identity.account;
      event.backend = issued.identity.tokenId ? `${issued.identity.backend}:${issued.identity.tokenId}` : issued.identity.backend;
      event.granted = grantedScopes(issued.granted);
      event.result = 'issued';
      event.reason = issued.decisions.map((d) => `${d.requested.type}:${d.requested.name}: ${d.reason}`).join('; ') || 'no scope requested';
      // A string with its content type goes out as it is, without Fastify's serializer.
      reply.header('content-type', JSON_TYPE).header('cache-control', 'no-store').header('pragma', 'no-cache');
      return tokenResponseJson({
        token: issued.token,
        expiresIn: issued.expiresIn,
        issuedAtMs: issued.issuedAtMs,
        method,
        granted: issued.granted,
        refreshToken: issued.refreshToken,
      });
    } catch (err) {
      const error = toTokenError(err);
      const status = statusOf(error.code);
      event.result = status === 401 ? 'unauthorized' : status === 429 ? 'locked_out' : status >= 500 ? 'error' : 'bad_request';
      event.reason = error.reason;
      throw error;
    } finally {
      event.duration_ms = performance.now() - started;
      options.audit.write(event);
    }
  };

  for (const path of [`${options.pathPrefix}/auth`, `${options.pathPrefix}/auth/token`]) {
    app.get(path, handler);
    if (options.allowPost) app.post(path, handler);
  }
}
