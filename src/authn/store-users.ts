import type { Store, StoredUser } from '../store/types.js';
import { DEFAULT_COST, dummyHash, verifyPassword } from '../security/password.js';
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
  constructor(private readonly store: Store) {}

  private async identity(user: StoredUser): Promise<Identity> {
    return { account: user.name, labels: await storeUserLabels(this.store, user), backend: this.name, anonymous: false };
  }

  async authenticate(credentials: Credentials | null): Promise<AuthnResult> {
    if (credentials === null || credentials.username === '') return NO_MATCH;
    const user = await this.store.users.get(credentials.username);
    if (!user?.passwordHash) {
      // Unknown users and robots (no password) cost a bcrypt check like everyone else.
      await verifyPassword(credentials.password, await dummyHash(DEFAULT_COST));
      if (!user) return NO_MATCH;
      return { outcome: 'denied', reason: 'robot accounts sign in with access tokens only' };
    }
    const ok = await verifyPassword(credentials.password, user.passwordHash);
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
