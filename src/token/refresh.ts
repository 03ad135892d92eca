import { newSecret, secretDigest } from '../security/secret-token.js';
import type { Store } from '../store/types.js';
import type { RefreshTokenIssuer } from './issue.js';

/** Makes refresh tokens and keeps only their digest in the store. */
export class StoreRefreshTokenIssuer implements RefreshTokenIssuer {
  constructor(
    private readonly store: Store,
    /** Seconds after creation when a refresh token stops working, however often it is used. */
    private readonly maxAge: number,
    private readonly now: () => number = Date.now,
  ) {}

  async issue(input: { account: string; service: string; clientId: string | null }): Promise<string> {
    const secret = newSecret('refresh');
    await this.store.refreshTokens.create({
      user: input.account,
      service: input.service,
      clientId: input.clientId === null ? null : input.clientId.slice(0, 200),
      digest: secretDigest(secret),
      expiresAt: this.now() + this.maxAge * 1000,
    });
    return secret;
  }
}
