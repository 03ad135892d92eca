/**
 * The store: one interface, two dialects (SQLite embedded by default, PostgreSQL for replicas).
 * Replicas share nothing but the store, so every read here sees every replica's last write.
 * All times are epoch milliseconds. Secrets never enter the store: passwords as bcrypt hashes,
 * tokens as SHA-256 digests (hex).
 */
export type Labels = Record<string, string[]>;

export interface StoredUser {
  name: string;
  /** bcrypt hash; null for a robot account, which signs in only with its access tokens. */
  passwordHash: string | null;
  disabled: boolean;
  labels: Labels;
  /** Names of the groups the user belongs to, sorted. */
  groups: string[];
  createdAt: number;
  updatedAt: number;
}

export interface StoredGroup {
  name: string;
  labels: Labels;
  /** Member user names, sorted. */
  members: string[];
  createdAt: number;
}

/** An ACL rule in the same shape as the config's `acl` entries. */
export interface RuleBody {
  match: { account?: string; type?: string; name?: string; service?: string; ip?: string; labels?: Record<string, string> };
  actions: string[];
  comment?: string;
}

export interface StoredRule {
  id: string;
  /** Rules are evaluated in ascending position (after the config's own rules). */
  position: number;
  rule: RuleBody;
  createdAt: number;
}

export interface AccessTokenRecord {
  id: string;
  /** The owner's name: a store user or a config-file user (the store does not check which). */
  user: string;
  name: string;
  digest: string;
  /** Scope patterns such as `repository:team/*:pull,push`; the token never grants more. */
  scopes: string[];
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  lastUsedIp: string | null;
  revokedAt: number | null;
}

export interface RefreshTokenRecord {
  id: string;
  user: string;
  service: string;
  clientId: string | null;
  digest: string;
  createdAt: number;
  lastUsedAt: number | null;
  /** The maximum age: after this it never works, however often it is used. */
  expiresAt: number;
  revokedAt: number | null;
}

export interface ChangeRecord {
  id: string;
  at: number;
  /** Who made the change: `cli`, `api:<token id>`, ... */
  actor: string;
  /** e.g. `user.create`, `token.revoke` */
  action: string;
  /** What it was made to: a user name, a token id, ... */
  target: string;
  /** Never a secret. */
  details: Record<string, unknown>;
}

export type StoreEntity = 'user' | 'group' | 'member' | 'rule' | 'access_token' | 'refresh_token';

/** A unique name is taken (a user, a group, a token name for its user). */
export class StoreConflictError extends Error {
  override name = 'StoreConflictError';
  constructor(
    readonly entity: StoreEntity,
    readonly key: string,
  ) {
    super(`${entity.replace('_', ' ')} ${JSON.stringify(key)} already exists`);
  }
}

export class StoreNotFoundError extends Error {
  override name = 'StoreNotFoundError';
  constructor(
    readonly entity: StoreEntity,
    readonly key: string,
  ) {
    super(`${entity.replace('_', ' ')} ${JSON.stringify(key)} does not exist`);
  }
}

/** The store cannot be reached or failed: callers answer 503, never 401. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  /** Runs pending migrations; returns the schema version before and after. */
  migrate(): Promise<{ from: number; to: number }>;
  schemaVersion(): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;

  users: {
    create(input: { name: string; passwordHash: string | null; labels?: Labels }, actor: string): Promise<StoredUser>;
    get(name: string): Promise<StoredUser | undefined>;
    list(): Promise<StoredUser[]>;
    update(name: string, patch: { passwordHash?: string | null; disabled?: boolean; labels?: Labels }, actor: string): Promise<StoredUser>;
    /** Removes the user with its memberships, access tokens and refresh tokens. */
    remove(name: string, actor: string): Promise<void>;
  };

  groups: {
    create(input: { name: string; labels?: Labels }, actor: string): Promise<StoredGroup>;
    get(name: string): Promise<StoredGroup | undefined>;
    list(): Promise<StoredGroup[]>;
    remove(name: string, actor: string): Promise<void>;
    /** Members are store users; config-file users carry their labels in the config. */
    addMember(group: string, user: string, actor: string): Promise<void>;
    removeMember(group: string, user: string, actor: string): Promise<void>;
  };

  rules: {
    /** Appends (or inserts at `position`, 0 the first, shifting later rules down); removal closes the gap. */
    add(rule: RuleBody, options: { position?: number }, actor: string): Promise<StoredRule>;
    list(): Promise<StoredRule[]>;
    remove(id: string, actor: string): Promise<void>;
    /** Changes whenever a rule is added or removed, on any replica: a cheap staleness check. */
    version(): Promise<number>;
  };

  accessTokens: {
    create(
      input: { user: string; name: string; digest: string; scopes: string[]; expiresAt: number | null },
      actor: string,
    ): Promise<AccessTokenRecord>;
    findByDigest(digest: string): Promise<AccessTokenRecord | undefined>;
    get(id: string): Promise<AccessTokenRecord | undefined>;
    /** Records a use; cheap, and never fails a token request (callers may ignore its errors). */
    touch(id: string, at: number, ip: string | null): Promise<void>;
    list(user?: string): Promise<AccessTokenRecord[]>;
    revoke(id: string, actor: string): Promise<void>;
  };

  refreshTokens: {
    create(input: { user: string; service: string; clientId: string | null; digest: string; expiresAt: number }): Promise<RefreshTokenRecord>;
    findByDigest(digest: string): Promise<RefreshTokenRecord | undefined>;
    touch(id: string, at: number): Promise<void>;
    list(user?: string): Promise<RefreshTokenRecord[]>;
    /** Revoking twice is allowed and keeps the first time. */
    revoke(id: string, actor: string): Promise<void>;
    /** Throws StoreNotFoundError only when the name is neither a store user nor owns a refresh token. */
    revokeForUser(user: string, actor: string): Promise<number>;
    revokeAll(actor: string): Promise<number>;
  };

  changes: {
    /** Newest first. */
    list(options?: { limit?: number; target?: string }): Promise<ChangeRecord[]>;
  };
}
