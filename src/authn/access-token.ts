import { parseScopeLimit, type ScopeLimit } from '../authz/scope-limit.js';
import { secretDigest, secretKind } from '../security/secret-token.js';
import type { Store } from '../store/types.js';
import type { Directory } from './directory.js';
import { NO_MATCH, type Authenticator, type AuthnContext, type AuthnResult, type Credentials } from './types.js';

/** The user names a client may send with a token it got from us: the owner's, or none. */
export function usernameFits(username: string, owner: string): boolean {
  return username === '' || username === '<token>' || username === owner;
}

/**
 * Machine credentials: an `stsat_` token used as the password (docker login, CI variables).
 * Recognised by its prefix, so no bcrypt runs; only its SHA-256 digest is stored. It grants the
 * intersection of its scopes and its owner's rules.
 */
export class AccessTokenAuthenticator implements Authenticator {
  readonly name = 'access-token';
  private readonly limits = new Map<string, ScopeLimit>();

  constructor(
    private readonly store: Store,
    private readonly directory: Directory,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(credentials: Credentials | null, context: AuthnContext): Promise<AuthnResult> {
    if (!credentials || secretKind(credentials.password) !== 'access') return NO_MATCH;
    const record = await this.store.accessTokens.findByDigest(secretDigest(credentials.password));
    if (!record) return { outcome: 'denied', reason: 'unknown access token' };
    if (record.revokedAt !== null) return { outcome: 'denied', reason: `access token ${record.id} is revoked` };
    const now = this.now();
    if (record.expiresAt !== null && record.expiresAt <= now) return { outcome: 'denied', reason: `access token ${record.id} has expired` };
    if (!usernameFits(credentials.username, record.user)) {
      return { outcome: 'denied', reason: `access token ${record.id} belongs to another user` };
    }
    const owner = await this.directory(record.user);
    if (owner.outcome !== 'identity') return { outcome: 'denied', reason: `owner of access token ${record.id}: ${owner.outcome === 'denied' ? owner.reason : 'no longer exists'}` };

    let limit = this.limits.get(record.id);
    if (!limit) {
      limit = parseScopeLimit(record.scopes);
      this.limits.set(record.id, limit);
    }
    // Recording the use must never fail or slow the request it describes.
    this.store.accessTokens.touch(record.id, now, context.ip ?? null).catch(() => undefined);
    return {
      outcome: 'identity',
      identity: { ...owner.identity, backend: this.name, via: 'access_token', scopeLimit: limit, tokenId: record.id },
    };
  }
}
