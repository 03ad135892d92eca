/**
 * The PostgreSQL store: the conformance suite in a fresh database per run (`sts_test_<random>`,
 * created through an admin connection and dropped at the end), each describe block in its own
 * schema of it. PostgreSQL must be running: the tests fail, never skip, when it is not.
 */
import { randomBytes } from 'node:crypto';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/open.js';
import { StoreUnavailableError } from '../../src/store/types.js';
import type { KyselyStore } from '../../src/store/kysely-store.js';
import { storeConformance } from './conformance.js';
import { freePort } from '../helpers/free-port.js';

const ADMIN_URL = process.env.STS_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const DATABASE = `sts_test_${randomBytes(6).toString('hex')}`;

function databaseUrl(database: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
}
const URL_OF_TEST_DB = databaseUrl(DATABASE);

async function admin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

let created = false;
/** Why the run's database could not be created; every test that needs it fails with this. */
let unreachable: Error | undefined;
const stores: KyselyStore[] = [];

beforeAll(async () => {
  try {
    await admin(ADMIN_URL, async (client) => {
      await client.query(`create database ${DATABASE}`);
    });
    created = true;
  } catch (error) {
    const shown = new URL(ADMIN_URL);
    shown.password = '';
    unreachable = new Error(
      `PostgreSQL is not reachable at ${shown.toString()} (${String(error)}). ` +
        'Run `bash scripts/start-services.sh` (or set STS_TEST_PG_URL to an admin connection string).',
    );
  }
});

// Fails (never skips) when PostgreSQL is down, so that a machine without it cannot pass.
it('reaches PostgreSQL (bash scripts/start-services.sh starts it)', () => {
  if (unreachable) throw unreachable;
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  if (created) {
    await admin(ADMIN_URL, async (client) => {
      // FORCE: a store a failed test left open must not keep the database alive.
      await client.query(`drop database if exists ${DATABASE} with (force)`);
    });
  }
});

/** A store in a fresh schema of the run's database (or in its public schema). */
async function open(options: { schema?: string | null } = {}): Promise<KyselyStore> {
  if (unreachable) throw unreachable;
  const schema = options.schema === null ? undefined : (options.schema ?? `s_${randomBytes(6).toString('hex')}`);
  const store = await openStore({ driver: 'postgres', url: URL_OF_TEST_DB, ...(schema === undefined ? {} : { schema }), poolSize: 10 });
  stores.push(store);
  return store;
}

storeConformance('postgres', async () => {
  const schema = `s_${randomBytes(6).toString('hex')}`;
  const store = await open({ schema });
  return {
    store,
    async cleanup() {
      await store.close();
      await admin(URL_OF_TEST_DB, (client) => client.query(`drop schema if exists ${schema} cascade`));
    },
  };
});

/** A TCP port on 127.0.0.1 that nothing listens on (taken from the OS, then released). */

describe('postgres store: replicas and failures', () => {
  it('shows one store the writes of another on the same database at once (public schema)', async () => {
    const [a, b] = [await open({ schema: null }), await open({ schema: null })];
    // Two replicas starting together migrate once between them.
    const results = await Promise.all([a.migrate(), b.migrate()]);
    expect(results.map((r) => r.to)).toEqual([2, 2]);
    expect(results.filter((r) => r.from === 0).length).toBeGreaterThanOrEqual(1);

    await a.users.create({ name: 'alice', passwordHash: 'h' }, 'replica-a');
    expect((await b.users.get('alice'))?.passwordHash).toBe('h');
    await b.users.update('alice', { disabled: true }, 'replica-b');
    expect((await a.users.get('alice'))?.disabled).toBe(true);

    const version = await a.rules.version();
    await b.rules.add({ match: { account: 'alice' }, actions: ['pull'] }, {}, 'replica-b');
    expect(await a.rules.version()).not.toBe(version);
    expect(await a.rules.list()).toHaveLength(1);

    const digest = randomBytes(32).toString('hex');
    const token = await a.accessTokens.create({ user: 'alice', name: 'ci', digest, scopes: [], expiresAt: null }, 'replica-a');
    await b.accessTokens.revoke(token.id, 'replica-b');
    expect((await a.accessTokens.findByDigest(digest))?.revokedAt).toEqual(expect.any(Number));
    await a.close();
    await b.close();
  });

  it('keeps positions dense when two replicas add rules at once', async () => {
    const schema = `s_${randomBytes(6).toString('hex')}`;
    const [a, b] = [await open({ schema }), await open({ schema })];
    await a.migrate();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).rules.add({ match: {}, actions: [`a${i}`] }, i % 3 === 0 ? { position: 0 } : {}, 'test')),
    );
    const rules = await b.rules.list();
    expect(rules.map((r) => r.position)).toEqual(rules.map((_, i) => i));
    expect(await a.rules.version()).toBe(20);
    await a.close();
    await b.close();
  });

  it('returns BIGINT columns as numbers without touching the global pg type parsers', async () => {
    const store = await open();
    await store.migrate();
    const user = await store.users.create({ name: 'alice', passwordHash: null }, 'test');
    expect(typeof (await store.users.get('alice'))?.createdAt).toBe('number');
    expect((await store.users.get('alice'))?.createdAt).toBe(user.createdAt);
    expect(typeof (await store.rules.version())).toBe('number');
    const parse = pg.types.getTypeParser(pg.types.builtins.INT8) as (value: string) => unknown;
    expect(parse('9007199254740993')).toBe('9007199254740993');
    await store.close();
  });

  it('survives the server dropping its connections (57P01): a few StoreUnavailableErrors at most, then it reconnects', async () => {
    const appName = `sts_store_test_${randomBytes(4).toString('hex')}`;
    const url = new URL(URL_OF_TEST_DB);
    url.searchParams.set('application_name', appName);
    const store = await openStore({ driver: 'postgres', url: url.toString() });
    stores.push(store);
    await store.migrate();
    await Promise.all([store.ping(), store.ping(), store.ping()]);
    // Only this store's connections, found by the application name it gave them.
    const killed = await admin(URL_OF_TEST_DB, async (client) => {
      const result = await client.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [appName]);
      return result.rowCount;
    });
    expect(killed).toBeGreaterThan(0);
    // Each pooled connection that was idle when it was killed may fail one query (503 to a
    // client, who retries) before the pool notices and replaces it: at most one per connection.
    const failures: unknown[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      const error = await store.ping().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (error === undefined) break;
      failures.push(error);
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const failure of failures) expect(failure).toBeInstanceOf(StoreUnavailableError);
    expect(failures.length).toBeLessThanOrEqual(killed ?? 0);
    await expect(store.ping()).resolves.toBeUndefined();
    expect(await store.schemaVersion()).toBe(2);
    await store.close();
  });

  it('refuses a schema name that search_path would change', async () => {
    await expect(openStore({ driver: 'postgres', url: URL_OF_TEST_DB, schema: 'Mixed-Case' })).rejects.toBeInstanceOf(RangeError);
  });

  it('answers StoreUnavailableError, naming the store but not the password, when nothing listens', async () => {
    const port = await freePort();
    const store = await openStore({ driver: 'postgres', url: `postgres://sts:hunter2secret@127.0.0.1:${port}/sts?sslmode=disable` });
    stores.push(store);
    for (const attempt of [store.ping(), store.users.get('alice'), store.migrate(), store.accessTokens.touch('at_x', 1, null)]) {
      const error = await attempt.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreUnavailableError);
      const message = String(error);
      expect(message).toContain(`PostgreSQL store postgres://sts@127.0.0.1:${port}/sts`);
      expect(message).toContain('ECONNREFUSED');
      expect(message).not.toContain('hunter2secret');
    }
    await store.close();
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('answers StoreUnavailableError for a database that does not exist', async () => {
    const store = await openStore({ driver: 'postgres', url: databaseUrl(`${DATABASE}_missing`) });
    stores.push(store);
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await store.close();
  });
});
