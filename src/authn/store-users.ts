import type { Store, StoredUser } from '../store/types.js';
import { DEFAULT_COST, dummyHash } from '../security/password.js';
import { PasswordChecker, type PasswordCheckOptions } from './password-cache.js';
import { NO_MATCH, type Authenticator, type AuthnResult, type Credentials, type Identity, type Labels } from './types.js';

/**
 * The labels a store user carries into authorization: their own, their groups' (merged), and
 * `groups` listing the group names, so that rules can say `labels: {groups: admins}`.
 */
export async function storeUserLabels(store: Store, user: StoredUser): Promise<Labels> {
  const labels: Record<string, string[]> = {};
  const add = (key: string, values: readonly string[]) => {
    const list = (labels[key] ??= []);
    for (const v of values) if (!list.includes(v)) list.push(v);
  };
  for (const [key, values] of Object.entries(user.labels)) add(key, values);
  if (user.groups.length > 0) {
    add('groups', user.groups);
    for (const name of user.groups) {
      const group = await store.groups.get(name);
      for (const [key, values] of Object.entries(group?.labels ?? {})) add(key, values);
    }
  }
  return labels;
}

/** Users kept in the store: bcrypt hashes, a disabled flag, labels and groups. */
export class StoreUserAuthenticator implements Authenticator {
  readonly name = 'store';
  private readonly passwords: PasswordChecker;

  /**
   * `options.cache` remembers verified passwords. The user's row is still read on every request
   * (one indexed read), and a remembered match counts only against the hash it was checked with,
   * while disabled and the groups come from that row: a password change, a disablement or a
   * removal on any replica takes effect on the next request, with no message between replicas.
   */
  constructor(
    private readonly store: Store,
    options: PasswordCheckOptions = {},
  ) {
    this.passwords = new PasswordChecker(this.name, options);
  }

  private async identity(user: StoredUser): Promise<Identity> {
    return { account: user.name, labels: await storeUserLabels(this.store, user), backend: this.name, anonymous: false };
  }

  async authenticate(credentials: Credentials | null): Promise<AuthnResult> {
    if (credentials === null || credentials.username === '') return NO_MATCH;
    const user = await this.store.users.get(credentials.username);
    if (!user?.passwordHash) {
      // Unknown users and robots (no password) cost a bcrypt check like everyone else.
      await this.passwords.spend(credentials.password, await dummyHash(DEFAULT_COST));
      if (!user) return NO_MATCH;
      return { outcome: 'denied', reason: 'robot accounts sign in with access tokens only' };
    }
    const ok = await this.passwords.verify(user.name, credentials.password, user.passwordHash);
    if (!ok) return { outcome: 'denied', reason: 'wrong password' };
    if (user.disabled) return { outcome: 'denied', reason: 'account disabled' };
    return { outcome: 'identity', identity: { ...(await this.identity(user)), via: 'password' } };
  }

  async lookup(account: string): Promise<AuthnResult> {
    const user = account === '' ? undefined : await this.store.users.get(account);
    if (!user) return NO_MATCH;
    if (user.disabled) return { outcome: 'denied', reason: 'account disabled' };
    return { outcome: 'identity', identity: await this.identity(user) };
  }
}
