import { aclRuleSchema } from '../config/schema.js';
import { durationSchema } from '../config/duration.js';
import type { LoadedConfig } from '../config/load.js';
import { AclCompileError, compileAcl } from '../authz/acl/index.js';
import { parseScopeLimit, ScopeLimitError } from '../authz/scope-limit.js';
import { formatPath } from '../config/errors.js';
import type { Directory } from '../authn/directory.js';
import { hashPassword } from '../security/password.js';
import { newSecret, secretDigest } from '../security/secret-token.js';
import type {
  AccessTokenRecord,
  Labels,
  RefreshTokenRecord,
  RuleBody,
  Store,
  StoredGroup,
  StoredRule,
  StoredUser,
} from '../store/types.js';

/** Input an administrator got wrong: a clear message, answered 400 by the API, exit 1 by the CLI. */
export class AdminInputError extends Error {
  override name = 'AdminInputError';
}

// Names travel in Basic credentials (no `:`) and in ACL placeholders; keep them plain.
const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,254}$/;
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function checkName(kind: string, value: string, pattern: RegExp): void {
  if (!pattern.test(value)) {
    throw new AdminInputError(`${kind} name ${JSON.stringify(value.slice(0, 300))} is not valid: use letters, digits and ${pattern === USER_NAME ? '. _ @ + -' : '. _ -'}, starting with a letter or digit`);
  }
}

function checkLabels(labels: Labels): Labels {
  for (const [key, values] of Object.entries(labels)) {
    if (!LABEL_KEY.test(key)) throw new AdminInputError(`label name ${JSON.stringify(key)} is not valid`);
    if (!Array.isArray(values) || values.some((v) => typeof v !== 'string' || v.length > 255)) {
      throw new AdminInputError(`label ${key} must be a list of strings`);
    }
  }
  return labels;
}

/** Parses `key=value` pairs (repeatable, comma-separated) into labels. */
export function parseLabelPairs(pairs: readonly string[]): Labels {
  const labels = new Map<string, string[]>();
  for (const item of pairs) {
    for (const pair of item.split(',')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new AdminInputError(`expected key=value, got ${JSON.stringify(pair)}`);
      const key = pair.slice(0, eq);
      const list = labels.get(key) ?? [];
      if (!list.includes(pair.slice(eq + 1))) list.push(pair.slice(eq + 1));
      labels.set(key, list);
    }
  }
  return checkLabels(Object.fromEntries(labels));
}

/** Seconds from `90d`, `12h`, `3600`...; `never` (or `none`) for no expiry. */
export function parseExpiry(value: string): number | null {
  if (value === 'never' || value === 'none') return null;
  const parsed = durationSchema.safeParse(/^\d+$/.test(value) ? Number(value) : value);
  if (!parsed.success) throw new AdminInputError(`expiry ${JSON.stringify(value)}: use a duration such as 30d, 12h or 3600, or never`);
  return parsed.data;
}

export interface CreatedToken {
  /** Shown once; only its digest is kept. */
  secret: string;
  record: AccessTokenRecord;
  warnings: string[];
}

/**
 * The operations behind `sts-docker-auth users|groups|acl|tokens|refresh-tokens` and the admin
 * API: validation in one place, then the store. `actor` names who acts, for the change log.
 */
export class AdminService {
  constructor(
    private readonly store: Store,
    private readonly loaded: LoadedConfig,
    private readonly directory: Directory,
    private readonly now: () => number = Date.now,
  ) {}

  private refuseConfigUser(name: string): void {
    if (this.loaded.config.users && Object.hasOwn(this.loaded.config.users, name)) {
      throw new AdminInputError(`${name} is a user of the config file (${this.loaded.source}); manage it there`);
    }
  }

  async addUser(input: { name: string; password: string | null; labels?: Labels }, actor: string): Promise<StoredUser> {
    checkName('user', input.name, USER_NAME);
    this.refuseConfigUser(input.name);
    if (input.password !== null && input.password.length === 0) throw new AdminInputError('the password is empty');
    const passwordHash = input.password === null ? null : await hashPassword(input.password);
    return this.store.users.create({ name: input.name, passwordHash, labels: checkLabels(input.labels ?? {}) }, actor);
  }

  async setPassword(name: string, password: string, actor: string): Promise<StoredUser> {
    this.refuseConfigUser(name);
    if (password.length === 0) throw new AdminInputError('the password is empty');
    return this.store.users.update(name, { passwordHash: await hashPassword(password) }, actor);
  }

  setDisabled(name: string, disabled: boolean, actor: string): Promise<StoredUser> {
    this.refuseConfigUser(name);
    return this.store.users.update(name, { disabled }, actor);
  }

  setLabels(name: string, labels: Labels, actor: string): Promise<StoredUser> {
    this.refuseConfigUser(name);
    return this.store.users.update(name, { labels: checkLabels(labels) }, actor);
  }

  removeUser(name: string, actor: string): Promise<void> {
    this.refuseConfigUser(name);
    return this.store.users.remove(name, actor);
  }

  listUsers(): Promise<StoredUser[]> {
    return this.store.users.list();
  }

  getUser(name: string): Promise<StoredUser | undefined> {
    return this.store.users.get(name);
  }

  addGroup(name: string, labels: Labels, actor: string): Promise<StoredGroup> {
    checkName('group', name, GROUP_NAME);
    return this.store.groups.create({ name, labels: checkLabels(labels) }, actor);
  }

  listGroups(): Promise<StoredGroup[]> {
    return this.store.groups.list();
  }

  removeGroup(name: string, actor: string): Promise<void> {
    return this.store.groups.remove(name, actor);
  }

  addMember(group: string, user: string, actor: string): Promise<void> {
    return this.store.groups.addMember(group, user, actor);
  }

  removeMember(group: string, user: string, actor: string): Promise<void> {
    return this.store.groups.removeMember(group, user, actor);
  }

  /** Validates a rule exactly as the config's `acl` entries are validated, then stores it. */
  async addRule(input: unknown, position: number | undefined, actor: string): Promise<StoredRule> {
    const parsed = aclRuleSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new AdminInputError(`rule ${formatPath(issue?.path ?? [])}: ${issue?.message ?? 'invalid'}`);
    }
    const rule: RuleBody = parsed.data;
    try {
      compileAcl([rule]);
    } catch (err) {
      if (err instanceof AclCompileError) throw new AdminInputError(`rule ${formatPath(err.path.slice(1))}: ${err.message}`);
      throw err;
    }
    if (position !== undefined && (!Number.isInteger(position) || position < 0)) throw new AdminInputError('position must be a whole number from 0');
    return this.store.rules.add(rule, position === undefined ? {} : { position }, actor);
  }

  listRules(): Promise<StoredRule[]> {
    return this.store.rules.list();
  }

  removeRule(id: string, actor: string): Promise<void> {
    return this.store.rules.remove(id, actor);
  }

  async createToken(
    input: { user: string; name: string; scopes: string[]; expiresIn: number | null },
    actor: string,
  ): Promise<CreatedToken> {
    checkName('token', input.name, TOKEN_NAME);
    if (input.scopes.length === 0) throw new AdminInputError('a token needs at least one scope, e.g. repository:team/*:pull');
    try {
      parseScopeLimit(input.scopes);
    } catch (err) {
      if (err instanceof ScopeLimitError) throw new AdminInputError(err.message);
      throw err;
    }
    const owner = await this.directory(input.user);
    if (owner.outcome !== 'identity') {
      throw new AdminInputError(`user ${JSON.stringify(input.user)} ${owner.outcome === 'denied' ? `cannot sign in: ${owner.reason}` : 'does not exist'}`);
    }
    if (input.expiresIn !== null && (!Number.isInteger(input.expiresIn) || input.expiresIn <= 0)) {
      throw new AdminInputError('the expiry must be a whole, positive number of seconds (or none)');
    }
    const warnings: string[] = [];
    const max = this.loaded.config.access_tokens.max_lifetime;
    if (max !== undefined && (input.expiresIn === null || input.expiresIn > max)) {
      throw new AdminInputError(`tokens may live at most ${max} s here (access_tokens.max_lifetime); set a shorter expiry`);
    }
    if (input.expiresIn === null) warnings.push('this token never expires: revoke it when it is no longer needed');
    const secret = newSecret('access');
    const record = await this.store.accessTokens.create(
      {
        user: input.user,
        name: input.name,
        digest: secretDigest(secret),
        scopes: [...new Set(input.scopes)],
        expiresAt: input.expiresIn === null ? null : this.now() + input.expiresIn * 1000,
      },
      actor,
    );
    return { secret, record, warnings };
  }

  listTokens(user?: string): Promise<AccessTokenRecord[]> {
    return this.store.accessTokens.list(user);
  }

  revokeToken(id: string, actor: string): Promise<void> {
    return this.store.accessTokens.revoke(id, actor);
  }

  listRefreshTokens(user?: string): Promise<RefreshTokenRecord[]> {
    return this.store.refreshTokens.list(user);
  }

  async revokeRefreshTokens(target: { id: string } | { user: string } | { all: true }, actor: string): Promise<number> {
    if ('id' in target) {
      await this.store.refreshTokens.revoke(target.id, actor);
      return 1;
    }
    if ('user' in target) return this.store.refreshTokens.revokeForUser(target.user, actor);
    return this.store.refreshTokens.revokeAll(actor);
  }
}
