import { AdminInputError, type AdminService, type CreatedToken } from '../admin/service.js';
import { StoreConflictError, type Labels, type StoredUser } from '../store/types.js';
import { SSO_LABEL, SUBJECT_LABEL } from './claims.js';
import { SsoError } from './errors.js';

export interface SignInRequest {
  provider: string;
  /** The provider's display name, for messages. */
  providerName: string;
  account: string;
  subject: string;
  /** The labels from this sign-in, `sso` and `sso_subject` included. */
  labels: Labels;
  /** The label keys sign-in owns (replaced, or removed when this sign-in brings none). */
  managedKeys: readonly string[];
  scopes: readonly string[];
  /** Seconds. */
  lifetime: number;
}

const sameLabels = (a: Labels, b: Labels): boolean => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/** `sso-20250102T030405Z`: when the token was made, readable in `tokens list`. */
export function tokenName(now: number, attempt: number): string {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return attempt === 0 ? `sso-${stamp}` : `sso-${stamp}-${attempt + 1}`;
}

/**
 * Makes sure the store holds a password-less account for the person, then mints an access token
 * for it. An account is this person's only if sign-in created it for the same provider and the
 * same subject: a local account, another provider's, or a re-used name at the provider (a renamed
 * GitHub login taken by someone else) is never taken over.
 */
export class SsoAccounts {
  constructor(
    private readonly admin: AdminService,
    private readonly getUser: (name: string) => Promise<StoredUser | undefined>,
    private readonly now: () => number,
  ) {}

  async signIn(request: SignInRequest): Promise<CreatedToken> {
    const actor = `sso:${request.provider}`;
    let user = await this.getUser(request.account);
    if (!user) {
      try {
        user = await this.admin.addUser({ name: request.account, password: null, labels: request.labels }, actor);
      } catch (err) {
        if (err instanceof AdminInputError) throw new SsoError(403, `The account name ${request.account} cannot be used here.`, err.message);
        // Two first sign-ins at once: the other one created it; check it like any existing account.
        if (!(err instanceof StoreConflictError)) throw err;
        user = await this.getUser(request.account);
        if (!user) throw err;
      }
    }
    if (user.passwordHash !== null || user.labels[SSO_LABEL]?.[0] !== request.provider || user.labels[SUBJECT_LABEL]?.[0] !== request.subject) {
      throw new SsoError(
        403,
        `The account name ${request.account} belongs to another account here; ask an administrator.`,
        `store user ${request.account} was not created by sign-in with ${request.provider} for this subject`,
      );
    }
    if (user.disabled) throw new SsoError(403, `The account ${request.account} is disabled.`, 'account disabled');

    const kept = Object.fromEntries(Object.entries(user.labels).filter(([key]) => !request.managedKeys.includes(key)));
    const labels = { ...kept, ...request.labels };
    if (!sameLabels(labels, user.labels)) await this.admin.setLabels(request.account, labels, actor);

    const now = this.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.admin.createToken(
          { user: request.account, name: tokenName(now, attempt), scopes: [...request.scopes], expiresIn: request.lifetime },
          actor,
        );
      } catch (err) {
        if (err instanceof StoreConflictError && attempt < 5) continue;
        if (err instanceof AdminInputError) throw new SsoError(403, `No access token can be made for ${request.account}.`, err.message);
        throw err;
      }
    }
  }
}
