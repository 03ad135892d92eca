// Fault: PostgreSQL dies in the middle of a steady load, then comes back. A private PostgreSQL
// (its own data dir and free port, never the machine's 5432) backs the store of a real server
// process; 20 loops ask for tokens as a static config user and as a store user. While PostgreSQL
// is down, store users must get 503 with a message and Retry-After (never 401, which would tell
// them their password is wrong), static users must keep getting 200, and once PostgreSQL is back
// store users must recover within seconds, all without a crash.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as PackageApi from '../../src/index.js';
import type * as StoreApi from '../../src/store/index.js';
import { importBuilt } from '../e2e/harness/server-process.js';
import { Teardown } from '../e2e/harness/teardown.js';
import {
  basic,
  isAlive,
  quickHash,
  runLoops,
  sleep,
  startFaultServer,
  startPrivatePostgres,
  writeFaultConfig,
  type FaultServer,
  type FaultServerFiles,
  type PrivatePostgres,
} from './helpers.js';

const LOOPS = 20;
const LOAD_MS = 8_000;
/** When, into the load, PostgreSQL is killed and restarted. */
const KILL_AT_MS = 2_000;
const RESTART_AT_MS = 4_500;
/** Store users must get tokens again this soon after PostgreSQL accepts connections. */
const RECOVERY_LIMIT_MS = 3_000;
/** The SIGSTOP phase: frozen from FREEZE_AT_MS for FREEZE_MS, within FREEZE_LOAD_MS of load. */
const FREEZE_AT_MS = 1_500;
const FREEZE_MS = 4_000;
const FREEZE_LOAD_MS = 10_000;
/** store.query_timeout of the server (seconds), and how late a 503 may come after it. */
const QUERY_TIMEOUT_S = 1;
const DEADLINE_MARGIN_MS = 2_000;

interface Sample {
  /** When the request was sent and when its answer arrived (epoch ms). */
  started: number;
  at: number;
  who: 'static' | 'store';
  status: number;
  retryAfter: string | null;
  message: string;
  ms: number;
}

describe('PostgreSQL stopped mid-load', () => {
  const teardown = new Teardown();
  const staticPassword = randomBytes(12).toString('base64url');
  const storePassword = randomBytes(12).toString('base64url');
  let postgres: PrivatePostgres;
  let files: FaultServerFiles;
  let server: FaultServer;

  beforeAll(async () => {
    postgres = teardown.defer(await startPrivatePostgres(), (p) => p.destroy());
    files = teardown.defer(
      await writeFaultConfig({
        users: { ci: { password: await quickHash(staticPassword) } },
        acl: [{ match: { account: '/.+/' }, actions: ['pull'] }],
        store: { driver: 'postgres', url: postgres.url, pool_size: 4, query_timeout: QUERY_TIMEOUT_S },
      }),
      (f) => rm(f.dir, { recursive: true, force: true }),
    );
    // The built code creates the schema and the user, as the server process will read them.
    const { hashPassword } = await importBuilt<typeof PackageApi>('index.js');
    const { openStore } = await importBuilt<typeof StoreApi>('store/index.js');
    const store = await openStore({ driver: 'postgres', url: postgres.url });
    try {
      await store.migrate();
      await store.users.create({ name: 'dev', passwordHash: await hashPassword(storePassword, 4) }, 'faults');
    } finally {
      await store.close();
    }
    server = teardown.defer(await startFaultServer(files.configPath), (s) => s.stop());
  }, 90_000);

  afterAll(() => teardown.run(), 60_000);

  const ask = async (who: 'static' | 'store'): Promise<Sample> => {
    const query = new URLSearchParams({ service: files.service, scope: 'repository:team/app:pull' }).toString();
    const authorization = who === 'static' ? basic('ci', staticPassword) : basic('dev', storePassword);
    const started = Date.now();
    const t = performance.now();
    const res = await fetch(`${server.url}/auth?${query}`, { headers: { authorization } });
    const body = (await res.json()) as { errors?: { message?: string }[] };
    return {
      started,
      at: Date.now(),
      who,
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      message: body.errors?.[0]?.message ?? '',
      ms: performance.now() - t,
    };
  };

  it('answers store users 503 (never 401) while static users keep working, and recovers', async () => {
    // Both work before anything happens.
    expect((await ask('static')).status).toBe(200);
    expect((await ask('store')).status).toBe(200);

    const samples: Sample[] = [];
    const failures: string[] = [];
    const t0 = Date.now();
    let killedAt = 0;
    let restartedAt = 0;
    const chaos = (async () => {
      await sleep(KILL_AT_MS);
      await postgres.crash();
      killedAt = Date.now();
      await sleep(RESTART_AT_MS - KILL_AT_MS);
      await postgres.start();
      restartedAt = Date.now();
    })();
    await runLoops(LOOPS, LOAD_MS, async (loop) => {
      try {
        samples.push(await ask(loop % 2 === 0 ? 'static' : 'store'));
      } catch (err) {
        failures.push(`${Date.now() - t0} ms: ${(err as Error).message}`);
        await sleep(50);
      }
    });
    await chaos;

    const ctx = () => `server ${server.exitStatus()}; last logs:\n${server.logs().slice(-3000)}`;
    expect(failures, `requests that got no answer; ${ctx()}`).toEqual([]);
    expect(server.exited(), ctx()).toBe(false);
    expect(isAlive(server.pid)).toBe(true);
    expect(killedAt).toBeGreaterThan(0);
    expect(restartedAt).toBeGreaterThan(killedAt);

    const unexpected = samples.filter((s) => s.status !== 200 && s.status !== 503);
    expect(unexpected.map((s) => `${s.who} ${s.status} ${s.message}`), ctx()).toEqual([]);
    const staticSamples = samples.filter((s) => s.who === 'static');
    const storeSamples = samples.filter((s) => s.who === 'store');
    expect(staticSamples.filter((s) => s.status !== 200).map((s) => `${s.at - t0} ms: ${s.status} ${s.message}`)).toEqual([]);
    expect(staticSamples.length).toBeGreaterThan(LOOPS * 5);

    // The outage is seen, and answered the right way.
    const unavailable = storeSamples.filter((s) => s.status === 503);
    expect(unavailable.length, 'store users never saw the outage').toBeGreaterThan(0);
    for (const s of unavailable) {
      expect(s.retryAfter, 'a 503 without Retry-After').toMatch(/^\d+$/);
      expect(s.message).toMatch(/unavailable/i);
      expect(s.message).not.toContain(storePassword);
      expect(s.at, '503 before PostgreSQL was stopped').toBeGreaterThanOrEqual(killedAt - 1_000);
    }
    // Recovery: the first 200 after the restart comes soon, and every store request from some
    // point after it on succeeds.
    const after = storeSamples.filter((s) => s.at >= restartedAt);
    const lastFailure = Math.max(restartedAt, ...after.filter((s) => s.status !== 200).map((s) => s.at));
    const recoveredIn = lastFailure - restartedAt;
    console.log(
      `postgres outage: ${samples.length} requests (${staticSamples.length} static, ${storeSamples.length} store), ` +
        `${unavailable.length} store 503s, down ${restartedAt - killedAt} ms, store users recovered ${recoveredIn} ms after restart`,
    );
    expect(recoveredIn, 'store users did not recover in time').toBeLessThan(RECOVERY_LIMIT_MS);
    expect(after.filter((s) => s.status === 200).length, 'no store success after the restart').toBeGreaterThan(LOOPS);
    expect(after.at(-1)?.status).toBe(200);

    // And still fine afterwards.
    expect((await ask('store')).status).toBe(200);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }, 60_000);

  it('keeps static users working while PostgreSQL is frozen (SIGSTOP), and recovers after SIGCONT', async () => {
    // Frozen, PostgreSQL keeps its sockets open and answers nothing, as behind a partition. A
    // store request, whether it waits for a pooled connection or already holds one, must then
    // get 503 within store.query_timeout (plus a margin): no request waits for the whole
    // freeze. Never 401, never a crash, static users unaffected, and recovery after SIGCONT.
    expect((await ask('store')).status).toBe(200);
    const samples: Sample[] = [];
    const failures: string[] = [];
    const t0 = Date.now();
    let frozenAt = 0;
    let thawedAt = 0;
    const chaos = (async () => {
      await sleep(FREEZE_AT_MS);
      postgres.freeze();
      frozenAt = Date.now();
      await sleep(FREEZE_MS);
      postgres.thaw();
      thawedAt = Date.now();
    })();
    try {
      await runLoops(LOOPS, FREEZE_LOAD_MS, async (loop) => {
        try {
          samples.push(await ask(loop % 2 === 0 ? 'static' : 'store'));
        } catch (err) {
          failures.push(`${Date.now() - t0} ms: ${(err as Error).message}`);
          await sleep(50);
        }
      });
    } finally {
      await chaos;
      postgres.thaw();
    }

    const ctx = () => `server ${server.exitStatus()}; last logs:\n${server.logs().slice(-3000)}`;
    expect(failures, ctx()).toEqual([]);
    expect(isAlive(server.pid), ctx()).toBe(true);
    const unexpected = samples.filter((s) => s.status !== 200 && s.status !== 503);
    expect(unexpected.map((s) => `${s.who} ${s.status} ${s.message}`), ctx()).toEqual([]);
    const staticSamples = samples.filter((s) => s.who === 'static');
    const storeSamples = samples.filter((s) => s.who === 'store');
    expect(staticSamples.filter((s) => s.status !== 200).map((s) => `${s.status} ${s.message}`)).toEqual([]);
    const staticWhileFrozen = staticSamples.filter((s) => s.started >= frozenAt && s.at <= thawedAt);
    expect(staticWhileFrozen.length, 'static users stalled while PostgreSQL was frozen').toBeGreaterThan(LOOPS * 5);
    for (const s of storeSamples.filter((x) => x.status === 503)) {
      expect(s.retryAfter).toMatch(/^\d+$/);
      expect(s.message).toMatch(/unavailable/i);
    }
    // The deadline: the freeze is seen (503s after query_timeout: the client gets the generic
    // message, `timed out after N ms` is in the StoreUnavailableError) and no store request
    // waited longer than query_timeout + margin, in particular none until SIGCONT.
    const timedOut = storeSamples.filter((s) => s.status === 503 && s.started >= frozenAt && s.at <= thawedAt);
    expect(timedOut.length, 'no store request timed out during the freeze').toBeGreaterThan(0);
    for (const s of timedOut) expect(s.ms, 'a 503 before the deadline').toBeGreaterThanOrEqual(QUERY_TIMEOUT_S * 1000 - 100);
    const slow = storeSamples.filter((s) => s.ms > QUERY_TIMEOUT_S * 1000 + DEADLINE_MARGIN_MS);
    expect(slow.map((s) => `${s.started - frozenAt} ms after SIGSTOP: ${s.status} in ${s.ms.toFixed(0)} ms ${s.message}`), ctx()).toEqual([]);
    const storeWhileFrozen = storeSamples.filter((s) => s.started >= frozenAt && s.at <= thawedAt);
    expect(storeWhileFrozen.length, 'store requests stalled while PostgreSQL was frozen').toBeGreaterThan(LOOPS / 2);
    const late = storeSamples.filter((s) => s.started >= thawedAt + RECOVERY_LIMIT_MS);
    expect(late.length, 'no store request after the recovery window').toBeGreaterThan(LOOPS);
    expect(late.filter((s) => s.status !== 200).map((s) => `${s.started - thawedAt} ms after SIGCONT: ${s.status} ${s.message}`)).toEqual([]);
    console.log(
      `postgres frozen ${thawedAt - frozenAt} ms: ${staticWhileFrozen.length} static 200s meanwhile; store: ` +
        `${storeSamples.filter((s) => s.status === 503).length} 503s, ${storeWhileFrozen.length} answered during the freeze ` +
        `(slowest ${Math.max(...storeSamples.map((s) => s.ms)).toFixed(0)} ms)`,
    );
    expect((await ask('store')).status).toBe(200);
  }, 60_000);
});
