/**
 * The Store on Kysely: one implementation for SQLite and PostgreSQL. The tables' operations live
 * in one module each (users.ts, groups.ts, rules.ts, access-tokens.ts, refresh-tokens.ts,
 * changes.ts); this class wires them to one connection and adds the store-wide operations.
 */
import { sql } from 'kysely';
import type { Kysely } from 'kysely';

import { accessTokensApi } from './access-tokens.js';
import { changesApi } from './changes.js';
import { StoreContext } from './context.js';
import { withoutStoreDeadline } from './deadline.js';
import type { StoreIdentity } from './driver-errors.js';
import { groupsApi } from './groups.js';
import { migrateTo, schemaVersion, LATEST_VERSION } from './migrations.js';
import type { MigrationOptions, StoreDialect } from './migrations.js';
import { refreshTokensApi } from './refresh-tokens.js';
import { rulesApi } from './rules.js';
import type { Database } from './schema.js';
import type { Store } from './types.js';
import { usersApi } from './users.js';

export interface KyselyStoreOptions {
  db: Kysely<Database>;
  dialect: StoreDialect;
  identity: StoreIdentity;
  /** PostgreSQL schema the connections' search_path points at, if not the default. */
  schema?: string;
  /** The clock for createdAt, updatedAt, revokedAt and change times; tests may pin it. */
  now?: () => number;
  /**
   * Releases the connection or pool after Kysely's destroy(), which releases nothing when no
   * query ever ran (it never initialized its driver).
   */
  dispose?: () => Promise<void> | void;
}

export class KyselyStore implements Store {
  readonly dialect: StoreDialect;
  readonly users: Store['users'];
  readonly groups: Store['groups'];
  readonly rules: Store['rules'];
  readonly accessTokens: Store['accessTokens'];
  readonly refreshTokens: Store['refreshTokens'];
  readonly changes: Store['changes'];

  readonly #ctx: StoreContext;
  readonly #migration: MigrationOptions;
  readonly #dispose: (() => Promise<void> | void) | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: KyselyStoreOptions) {
    this.dialect = options.dialect;
    this.#ctx = new StoreContext(options.db, options.dialect, options.identity, options.now);
    this.#dispose = options.dispose;
    this.#migration = { dialect: options.dialect, ...(options.schema === undefined ? {} : { schema: options.schema }) };
    this.users = usersApi(this.#ctx);
    this.groups = groupsApi(this.#ctx);
    this.rules = rulesApi(this.#ctx);
    this.accessTokens = accessTokensApi(this.#ctx);
    this.refreshTokens = refreshTokensApi(this.#ctx);
    this.changes = changesApi(this.#ctx);
  }

  /** Names the store in messages (never with a password). */
  get description(): string {
    return this.#ctx.identity.description;
  }

  migrate(): Promise<{ from: number; to: number }> {
    return this.migrateTo(LATEST_VERSION);
  }

  /** Migrates up or down to a given version; tests use it to start from an older schema. */
  migrateTo(version: number): Promise<{ from: number; to: number }> {
    if (!Number.isInteger(version) || version < 0 || version > LATEST_VERSION) {
      return Promise.reject(new RangeError(`schema version must be an integer from 0 to ${LATEST_VERSION}, not ${version}`));
    }
    // Never bound by the request path's deadline (store.query_timeout): DDL may wait on locks.
    return withoutStoreDeadline(() => this.#ctx.run((db) => migrateTo(db, version, this.#migration)));
  }

  schemaVersion(): Promise<number> {
    return this.#ctx.run((db) => schemaVersion(db, this.#migration));
  }

  ping(): Promise<void> {
    return this.#ctx.run(async (db) => {
      await sql`select 1`.execute(db);
    });
  }

  /**
   * Closes the connection (SQLite) or ends the pool (PostgreSQL), after the statements under way.
   * Later calls wait for the first; later operations fail with StoreUnavailableError.
   */
  close(): Promise<void> {
    this.#ctx.closed = true;
    this.#closing ??= (async () => {
      await this.#ctx.db.destroy();
      await this.#dispose?.();
    })();
    return this.#closing;
  }
}
