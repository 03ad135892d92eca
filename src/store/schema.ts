/**
 * The tables as Kysely sees them. One schema for both dialects, so it keeps to what both share:
 * text, integer and bigint columns. Times are BIGINT epoch milliseconds; labels, scopes, rule
 * bodies and change details are JSON text (no JSON column type, whose semantics differ between
 * SQLite and PostgreSQL); flags are integers 0/1 (SQLite has no boolean). Ids are random text
 * prefixed by kind (`u_`, `g_`, `r_`, `at_`, `rt_`, `c_`, see ids.ts); users and groups have
 * ids too, although the API names them, so that a rename never has to rewrite the memberships.
 *
 * Tokens name their user instead of pointing at a row: their owner may be a user of the config
 * file, which the store does not hold. Removing a stored user removes its tokens in the same
 * transaction (users.ts) rather than by a foreign key.
 */
import type { Generated } from 'kysely';

export interface UsersTable {
  id: string;
  name: string;
  /** bcrypt hash; null for a robot account. */
  password_hash: string | null;
  disabled: number;
  /** JSON: Record<string, string[]> */
  labels: string;
  created_at: number;
  updated_at: number;
}

export interface GroupsTable {
  id: string;
  name: string;
  /** JSON: Record<string, string[]> */
  labels: string;
  created_at: number;
}

export interface GroupMembersTable {
  group_id: string;
  user_id: string;
  created_at: number;
}

export interface AclRulesTable {
  id: string;
  /** 0-based and dense: removing a rule moves the later ones up. */
  position: number;
  /** JSON: RuleBody */
  rule: string;
  created_at: number;
}

export interface AccessTokensTable {
  id: string;
  /** The owner's name: a stored user or one of the config file. */
  user: string;
  name: string;
  /** SHA-256 of the token, hex. */
  digest: string;
  /** JSON: string[] */
  scopes: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  last_used_ip: string | null;
  revoked_at: number | null;
}

export interface RefreshTokensTable {
  id: string;
  /** The owner's name: a stored user or one of the config file. */
  user: string;
  service: string;
  client_id: string | null;
  /** SHA-256 of the token, hex. */
  digest: string;
  created_at: number;
  last_used_at: number | null;
  expires_at: number;
  revoked_at: number | null;
}

export interface ChangesTable {
  /**
   * Insertion order. Ids are random and many changes share a millisecond, so neither orders
   * the log; a database-assigned sequence does, on every replica.
   */
  seq: Generated<number>;
  id: string;
  at: number;
  actor: string;
  action: string;
  target: string;
  /** JSON object, never a secret. */
  details: string;
}

/** Counters shared by all replicas, such as `rules_version`. */
export interface StoreMetaTable {
  key: string;
  value: number;
}

export interface Database {
  users: UsersTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  acl_rules: AclRulesTable;
  access_tokens: AccessTokensTable;
  refresh_tokens: RefreshTokensTable;
  changes: ChangesTable;
  store_meta: StoreMetaTable;
}

export const RULES_VERSION_KEY = 'rules_version';
