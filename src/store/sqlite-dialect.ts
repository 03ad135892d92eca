/**
 * Kysely's SQLite dialect with three changes that matter when several connections share a file:
 *
 * - Transactions start with BEGIN IMMEDIATE. A plain (deferred) BEGIN takes the write lock only
 *   at the first write; if another process committed in between, SQLite fails at once with
 *   SQLITE_BUSY instead of waiting, because busy_timeout cannot help a reader that must become a
 *   writer on a stale snapshot. Taking the lock up front makes every writer wait its turn.
 * - Stores of one process on one file take turns (a lock per file). better-sqlite3 is
 *   synchronous: if a second connection waited for the first one's write lock, it would block
 *   the event loop, the first could never commit, and the wait would end in SQLITE_BUSY.
 * - The adapter declares transactional DDL, which SQLite has. Kysely's Migrator then runs the
 *   migrations in one transaction, so a crash mid-migration leaves the previous version, and
 *   (with BEGIN IMMEDIATE) two processes starting together migrate one after the other.
 */
import { CompiledQuery, SqliteAdapter, SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, DialectAdapter, Driver, SqliteDialectConfig } from 'kysely';

class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /** Resolves when the caller holds the lock, with the function that releases it. */
  async lock(): Promise<() => void> {
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const previous = this.#tail;
    this.#tail = previous.then(() => held);
    await previous;
    return release;
  }
}

const fileLocks = new Map<string, Mutex>();

function fileLock(key: string | undefined): Mutex {
  if (key === undefined) return new Mutex();
  let lock = fileLocks.get(key);
  if (lock === undefined) {
    lock = new Mutex();
    fileLocks.set(key, lock);
  }
  return lock;
}

class StoreSqliteDriver extends SqliteDriver {
  readonly #lock: Mutex;
  #release: (() => void) | undefined;

  constructor(config: SqliteDialectConfig, lockKey: string | undefined) {
    super(config);
    this.#lock = fileLock(lockKey);
  }

  // Kysely holds the connection for a whole transaction, so holding the file lock with it keeps
  // other stores' transactions (and statements) out until this one ends.
  override async acquireConnection(): Promise<DatabaseConnection> {
    const release = await this.#lock.lock();
    try {
      const connection = await super.acquireConnection();
      this.#release = release;
      return connection;
    } catch (error) {
      release();
      throw error;
    }
  }

  override async releaseConnection(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    await super.releaseConnection();
    release?.();
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

export class StoreSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #lockKey: string | undefined;

  /** `lockKey` names the file (its absolute path); undefined for a private in-memory database. */
  constructor(config: SqliteDialectConfig, lockKey: string | undefined) {
    super(config);
    this.#config = config;
    this.#lockKey = lockKey;
  }

  override createDriver(): Driver {
    return new StoreSqliteDriver(this.#config, this.#lockKey);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}
