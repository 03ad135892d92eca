/**
 * The request path's store deadline (store.query_timeout) against the PostgreSQL test server:
 * a request-path read or transaction slower than the deadline fails with StoreUnavailableError
 * (the transaction is also cancelled by the server, which frees its connection), calls outside
 * the deadline and migrations are not bound by it. PostgreSQL must be running: the tests fail,
 * never skip, when it is not (`bash scripts/start-services.sh`).
 */
import { randomBytes } from 'node:crypto';

import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StoreContext } from '../../src/store/context.js';
import { withStoreDeadline } from '../../src/store/deadline.js';
import { openStore } from '../../src/store/open.js';
import type { Database } from '../../src/store/schema.js';
import { StoreUnavailableError } from '../../src/store/types.js';

const ADMIN_URL = process.env.STS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DATABASE = `sts_test_${randomBytes(6).toString('hex')}`;
const url = new URL(ADMIN_URL);
url.pathname = `/${DATABASE}`;
const TEST_DB_URL = url.toString();

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

const DEADLINE_MS = 300;
let pool: pg.Pool;
let ctx: StoreContext;
let created = false;

beforeAll(async () => {
  try {
    await admin(`create database ${DATABASE}`);
  } catch (error) {
    throw new Error(`PostgreSQL is not reachable (${String(error)}); run \`bash scripts/start-services.sh\` or set STS_TEST_PG_URL`, { cause: error });
  }
  created = true;
  // One connection: whether a timed-out statement freed it shows in the next call's speed.
  pool = new pg.Pool({ connectionString: TEST_DB_URL, max: 1 });
  ctx = new StoreContext(new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }), 'postgres', {
    description: 'PostgreSQL store (test)',
    redact: (text) => text,
  });
});

afterAll(async () => {
  await ctx?.db.destroy();
  if (created) await admin(`drop database if exists ${DATABASE} with (force)`);
});

const sleepQuery = (seconds: number) => (db: Kysely<Database>) => sql`select pg_sleep(${seconds})`.execute(db);

describe('store.query_timeout on the request path', () => {
  it('fails a request-path read slower than the deadline with StoreUnavailableError', async () => {
    const t = performance.now();
    const error: unknown = await withStoreDeadline(DEADLINE_MS, () => ctx.run(sleepQuery(1.5))).catch((e: unknown) => e);
    const took = performance.now() - t;
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toBe(`PostgreSQL store (test) is unavailable: timed out after ${DEADLINE_MS} ms`);
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 5);
    expect(took).toBeLessThan(DEADLINE_MS + 500);
    // The abandoned statement still holds the only connection until it ends; then all is well.
    await expect(ctx.run(sleepQuery(0))).resolves.toBeDefined();
  });

  it('has the server cancel a request-path transaction (statement_timeout), freeing its connection', async () => {
    const t = performance.now();
    const error: unknown = await withStoreDeadline(DEADLINE_MS, () => ctx.tx((trx) => sleepQuery(5)(trx))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/timed out after 300 ms$/);
    // A 5 s sleep cancelled by the server: the single connection is back long before 5 s.
    await ctx.run(sleepQuery(0));
    expect(performance.now() - t).toBeLessThan(2_000);
  });

  it('leaves calls outside the deadline (admin, CLI) alone', async () => {
    await expect(ctx.run(sleepQuery(0.6))).resolves.toBeDefined();
    await expect(ctx.tx((trx) => sleepQuery(0.6)(trx))).resolves.toBeDefined();
    // And a deadline long enough lets a request-path call through.
    await expect(withStoreDeadline(2_000, () => ctx.tx((trx) => sleepQuery(0.2)(trx)))).resolves.toBeDefined();
  });

  it('never binds a migration, even one started under a deadline', async () => {
    const store = await openStore({ driver: 'postgres', url: TEST_DB_URL, schema: `s_${randomBytes(6).toString('hex')}` });
    try {
      // A full migration takes far longer than 1 ms; it must not be cut.
      const result = await withStoreDeadline(1, () => store.migrate());
      expect(result.to).toBeGreaterThan(result.from);
      // While a request-path read under that deadline is.
      await expect(withStoreDeadline(1, () => store.users.list())).rejects.toThrow(/timed out after 1 ms/);
    } finally {
      await store.close();
    }
  });
});
