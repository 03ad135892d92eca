import type { Config } from '../config/schema.js';
import { costOf, DEFAULT_COST, dummyHash } from '../security/password.js';
import { PasswordChecker, type PasswordCheckOptions } from './password-cache.js';
import { NO_MATCH, type Authenticator, type AuthnResult, type Credentials, type Labels } from './types.js';

interface StaticUser {
  hash?: string;
  labels: Labels;
}

/**
 * Users from the config file's `users` section (docker_auth's static users): bcrypt hashes and
 * labels; the entry `""` lets anonymous callers in.
 */
export class StaticAuthenticator implements Authenticator {
  readonly name = 'static';
  private readonly users = new Map<string, StaticUser>();
  private readonly dummyCost: number;
  private readonly passwords: PasswordChecker;

  /**
   * `options.cache` remembers verified passwords: the config cannot change while the process runs,
   * so a remembered match stays right until it expires.
   */
  constructor(users: NonNullable<Config['users']>, options: PasswordCheckOptions = {}) {
    this.passwords = new PasswordChecker(this.name, options);
    let maxCost = 0;
    for (const [name, user] of Object.entries(users)) {
      const entry: StaticUser = { labels: user.labels ?? {} };
      if (user.password) {
        entry.hash = user.password;
        maxCost = Math.max(maxCost, costOf(user.password));
      }
      this.users.set(name, entry);
    }
    this.dummyCost = maxCost || DEFAULT_COST;
  }

  async authenticate(credentials: Credentials | null): Promise<AuthnResult> {
    if (credentials === null) {
      const anonymous = this.users.get('');
      if (!anonymous) return NO_MATCH;
      return { outcome: 'identity', identity: { account: '', labels: anonymous.labels, backend: this.name, anonymous: true } };
    }
    const user = credentials.username === '' ? undefined : this.users.get(credentials.username);
    if (!user?.hash) {
      // Spend the same time as a real check, whatever the answer.
      await this.passwords.spend(credentials.password, await dummyHash(this.dummyCost));
      return NO_MATCH;
    }
    if (!(await this.passwords.verify(credentials.username, credentials.password, user.hash))) return { outcome: 'denied', reason: 'wrong password' };
    return {
      outcome: 'identity',
      identity: { account: credentials.username, labels: user.labels, backend: this.name, anonymous: false, via: 'password' },
    };
  }

  async lookup(account: string): Promise<AuthnResult> {
    const user = account === '' ? undefined : this.users.get(account);
    if (!user) return NO_MATCH;
    return { outcome: 'identity', identity: { account, labels: user.labels, backend: this.name, anonymous: false } };
  }

  has(account: string): boolean {
    return this.users.has(account);
  }
}
