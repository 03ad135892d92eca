/**
 * Opens a store. Does not migrate: callers run `store.migrate()` where they mean to (the server at
 * start-up, the CLI's `migrate` command), so that merely opening never changes a database.
 */
import { mkdir, open, realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';

import type { StoreIdentity } from './driver-errors.js';
import { translateError } from './driver-errors.js';
import { KyselyStore } from './kysely-store.js';
import type { Database } from './schema.js';
import { StoreSqliteDialect } from './sqlite-dialect.js';

export type OpenStoreOptions =
  | { driver: 'sqlite'; path: string }
  | { driver: 'postgres'; url: string; schema?: string; poolSize?: number };

/** Lowercase only: search_path folds unquoted names to lowercase, schema creation does not. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** How long a writer waits for another process's write lock before SQLITE_BUSY. */
const SQLITE_BUSY_TIMEOUT_MS = 5000;
/** How long a request waits for a pooled PostgreSQL connection before failing with 503. */
const PG_CONNECT_TIMEOUT_MS = 5000;

export function openStore(options: OpenStoreOptions): Promise<KyselyStore> {
  return options.driver === 'sqlite' ? openSqlite(options.path) : openPostgres(options);
}

async function openSqlite(path: string): Promise<KyselyStore> {
  const identity: StoreIdentity = { description: `SQLite store ${path}`, redact: (text) => text };
  let database: BetterSqlite3.Database | undefined;
  let lockKey: string | undefined;
  try {
    if (path !== ':memory:' && path !== '') {
      // The file holds password hashes: create it readable by its owner only, before SQLite
      // creates it with the umask's mode. SQLite gives the -wal and -shm files the same mode.
      await mkdir(dirname(resolve(path)), { recursive: true, mode: 0o700 });
      const handle = await open(path, 'a', 0o600);
      await handle.close();
      lockKey = await realpath(path);
    }
    database = new BetterSqlite3(path);
    // busy_timeout first: switching to WAL needs a lock another process may hold.
    database.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    database.pragma('journal_mode = WAL');
    // In WAL mode NORMAL loses no committed transaction when the process dies, only (perhaps)
    // the last ones when the machine loses power; FULL would fsync on every commit.
    database.pragma('synchronous = NORMAL');
    database.pragma('foreign_keys = ON');
  } catch (error) {
    database?.close();
    throw translateError(error, identity);
  }
  const connection = database;
  const db = new Kysely<Database>({ dialect: new StoreSqliteDialect({ database: connection }, lockKey) });
  return new KyselyStore({
    db,
    dialect: 'sqlite',
    identity,
    dispose: () => {
      if (connection.open) connection.close();
    },
  });
}

/** The connection string without its password or parameters (which may hold one), for messages. */
function postgresIdentity(url: string, schema: string | undefined): StoreIdentity {
  let shown = '(unparsable connection string)';
  let password = '';
  try {
    const parsed = new URL(url);
    password = decodeURIComponent(parsed.password);
    parsed.password = '';
    parsed.search = '';
    parsed.hash = '';
    shown = parsed.toString();
  } catch {
    // Not a URL: show none of it rather than risk showing a password.
  }
  const secrets = [password, encodeURIComponent(password)].filter((s) => s.length >= 4);
  return {
    description: `PostgreSQL store ${shown}${schema === undefined ? '' : ` (schema ${schema})`}`,
    redact: (text) => secrets.reduce((out, secret) => out.split(secret).join('***'), text),
  };
}

function openPostgres(options: { url: string; schema?: string; poolSize?: number }): Promise<KyselyStore> {
  const { url, schema } = options;
  const identity = postgresIdentity(url, schema);
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    return Promise.reject(new RangeError(`PostgreSQL schema name must match ${SCHEMA_NAME.source}, not ${JSON.stringify(schema)}`));
  }
  // BIGINT (epoch milliseconds, counters) as numbers, for this pool only: the global
  // pg.types.setTypeParser would change every other pg user in the process.
  const types = new pg.TypeOverrides();
  types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    types,
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  // An idle connection that the server drops (restart, 57P01) is reported here; without a
  // listener Node would exit. The pool discards it and the next query opens a new one.
  pool.on('error', () => undefined);
  // A connection that dies while checked out (PostgreSQL killed mid-query) emits 'error' on its
  // client, which the pool does not listen to then: without this, Node exits. The query itself
  // rejects (503), and the pool drops the dead client when it is released.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return Promise.resolve(
    new KyselyStore({
      db,
      dialect: 'postgres',
      identity,
      ...(schema === undefined ? {} : { schema }),
      dispose: () => (pool.ended || pool.ending ? undefined : pool.end()),
    }),
  );
}

