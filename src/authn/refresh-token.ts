import { secretDigest, secretKind } from '../security/secret-token.js';
import type { Store } from '../store/types.js';
import { usernameFits } from './access-token.js';
import type { Directory } from './directory.js';
import { NO_MATCH, type Authenticator, type AuthnContext, type AuthnResult, type Credentials } from './types.js';

export interface RefreshPolicy {
  /** Seconds a refresh token may go unused. */
  idleTimeout: number;
}

/**
 * Refresh tokens (docker's identity tokens): presented by the POST refresh grant, or as the
 * password of a GET (containerd's fallback sends `:<token>`). Bound to their subject and service,
 * stored as a digest, revocable, expiring when idle or too old, and never rotated (protocol.md
 * §1.4: dockerd would lose a rotated one).
 */
export class RefreshTokenAuthenticator implements Authenticator {
  readonly name = 'refresh-token';

  constructor(
    private readonly store: Store,
    private readonly directory: Directory,
    private readonly policy: RefreshPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(credentials: Credentials | null, context: AuthnContext): Promise<AuthnResult> {
    if (!credentials || secretKind(credentials.password) !== 'refresh') return NO_MATCH;
    const record = await this.store.refreshTokens.findByDigest(secretDigest(credentials.password));
    if (!record) return { outcome: 'denied', reason: 'unknown refresh token' };
    if (record.revokedAt !== null) return { outcome: 'denied', reason: `refresh token ${record.id} is revoked` };
    const now = this.now();
    if (record.expiresAt <= now) return { outcome: 'denied', reason: `refresh token ${record.id} has reached its maximum age` };
    const lastUse = record.lastUsedAt ?? record.createdAt;
    if (lastUse + this.policy.idleTimeout * 1000 <= now) return { outcome: 'denied', reason: `refresh token ${record.id} was idle too long` };
    if (record.service !== context.service) return { outcome: 'denied', reason: `refresh token ${record.id} is for another service` };
    if (!usernameFits(credentials.username, record.user)) return { outcome: 'denied', reason: `refresh token ${record.id} belongs to another user` };
    const owner = await this.directory(record.user);
    if (owner.outcome !== 'identity') return { outcome: 'denied', reason: `owner of refresh token ${record.id}: ${owner.outcome === 'denied' ? owner.reason : 'no longer exists'}` };
    this.store.refreshTokens.touch(record.id, now).catch(() => undefined);
    return {
      outcome: 'identity',
      identity: { ...owner.identity, backend: this.name, via: 'refresh_token', refreshToken: credentials.password },
    };
  }
}
