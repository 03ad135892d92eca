import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Where the PostgreSQL the tests use answers (scripts/start-services.sh starts it). */
export const PG_ADMIN_URL = process.env.STS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  name: string;
  /** The connection string of the new database, for `store.url`. */
  url: string;
  /** Drops it, closing whatever connections remain. */
  drop(): Promise<void>;
}

async function admin<T>(action: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new Error(
      `PostgreSQL does not answer at ${PG_ADMIN_URL} (${(err as Error).message}): run \`sudo bash scripts/start-services.sh\` ` +
        '(it starts or installs PostgreSQL with trust authentication on 127.0.0.1:5432)',
      { cause: err },
    );
  }
  try {
    return await action(client);
  } finally {
    await client.end();
  }
}

/** A fresh, empty database `sts_e2e_<random>` on the test server. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `sts_e2e_${randomBytes(6).toString('hex')}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/** Whether a database of that name exists (to check that drop() worked). */
export function databaseExists(name: string): Promise<boolean> {
  return admin(async (client) => (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
}
