// Load: a bounded mix of good and bad credentials, anonymous and malformed requests against the
// built server process (loopback only, bounded in time and in concurrency). Every answer must be
// one the request's kind allows (no 5xx at all), the process must stay up, and its resident
// memory must stay flat over the second half of the run. STS_SOAK=1 runs it for 5 minutes.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Teardown } from '../e2e/harness/teardown.js';
import {
  basic,
  isAlive,
  prng,
  quantile,
  quickHash,
  rssKb,
  runLoops,
  startFaultServer,
  writeFaultConfig,
  type FaultServer,
  type FaultServerFiles,
} from './helpers.js';

const SOAK = process.env.STS_SOAK === '1';
const DURATION_MS = SOAK ? 5 * 60_000 : 10_000;
const LOOPS = 16;
const MAX_RSS_GROWTH = 0.2;
const SEED = Number(process.env.STS_LOAD_SEED ?? Math.floor(Math.random() * 2 ** 31));

interface Kind {
  name: string;
  /** The statuses this kind of request may get. */
  allowed: readonly number[];
  weight: number;
  send(rand: () => number): Promise<Response>;
}

describe(`mixed load for ${DURATION_MS / 1000} s`, () => {
  const teardown = new Teardown();
  const ciPassword = randomBytes(12).toString('base64url');
  const devPassword = randomBytes(12).toString('base64url');
  let files: FaultServerFiles;
  let server: FaultServer;

  beforeAll(async () => {
    files = await writeFaultConfig({
      users: {
        '': {},
        ci: { password: await quickHash(ciPassword) },
        dev: { password: await quickHash(devPassword) },
        // The target of the wrong passwords: lockouts (429) must not spill over to ci and dev.
        eve: { password: await quickHash(randomBytes(12).toString('base64url')) },
      },
      acl: [
        { match: { account: '' }, actions: ['pull'], comment: 'anonymous pulls public/*' },
        { match: { account: 'ci' }, actions: ['*'] },
        { match: { account: 'dev', name: 'dev/*' }, actions: ['pull', 'push'] },
        { match: { account: 'eve' }, actions: ['pull'] },
      ],
    });
    teardown.defer(files, (f) => rm(f.dir, { recursive: true, force: true }));
    server = teardown.defer(await startFaultServer(files.configPath), (s) => s.stop());
  }, 60_000);

  afterAll(() => teardown.run(), 60_000);

  it('answers only expected statuses, never crashes, and keeps its memory flat', async () => {
    console.log(`load seed ${SEED} (STS_LOAD_SEED=${SEED} replays it)`);
    const realm = `${server.url}/auth`;
    const q = (params: Record<string, string>) => new URLSearchParams({ service: files.service, ...params }).toString();
    const pick = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
    const repos = ['team/app', 'dev/tool', 'public/base', 'library/alpine', 'a/b/c/d'];
    const kinds: Kind[] = [
      {
        name: 'good GET',
        allowed: [200],
        weight: 30,
        send: (r) => fetch(`${realm}?${q({ scope: `repository:${pick(r, repos)}:pull,push` })}`, { headers: { authorization: basic('ci', ciPassword) } }),
      },
      {
        name: 'good POST',
        allowed: [200],
        weight: 10,
        send: (r) =>
          fetch(realm, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              grant_type: 'password',
              username: 'dev',
              password: devPassword,
              service: files.service,
              client_id: 'load',
              scope: `repository:${pick(r, repos)}:pull`,
            }).toString(),
          }),
      },
      {
        name: 'anonymous',
        allowed: [200],
        weight: 10,
        send: () => fetch(`${realm}?${q({ scope: 'repository:public/base:pull' })}`),
      },
      {
        // 429 once the lockout for that address and account holds (when lockouts are on); the
        // good users above must never see it.
        name: 'wrong password',
        allowed: [401, 429],
        weight: 15,
        send: (r) => fetch(`${realm}?${q({ scope: 'repository:dev/tool:pull' })}`, { headers: { authorization: basic('eve', `nope-${Math.floor(r() * 1e6)}`) } }),
      },
      {
        name: 'unknown account',
        allowed: [401, 429],
        weight: 10,
        send: (r) => fetch(`${realm}?${q({})}`, { headers: { authorization: basic(`ghost-${Math.floor(r() * 1e6)}`, 'x') } }),
      },
      {
        name: 'malformed scope',
        allowed: [400],
        weight: 8,
        send: (r) => fetch(`${realm}?${q({ scope: pick(r, ['repository', 'repository::pull', 'repository:UPPER:pull', 'x:y', ':::']) })}`, { headers: { authorization: basic('ci', ciPassword) } }),
      },
      {
        name: 'broken Basic',
        allowed: [400, 401],
        weight: 5,
        send: (r) => fetch(`${realm}?${q({})}`, { headers: { authorization: pick(r, ['Basic', 'Basic !!!', 'Basic Y2k=', 'Bearer x', 'Basic ' + 'A'.repeat(5000)]) } }),
      },
      {
        name: 'unknown service',
        allowed: [400],
        weight: 4,
        send: () => fetch(`${realm}?service=elsewhere&scope=repository:team/app:pull`, { headers: { authorization: basic('ci', ciPassword) } }),
      },
      {
        name: 'unknown path',
        allowed: [404],
        weight: 4,
        send: (r) => fetch(`${server.url}/${pick(r, ['v2/', 'auth/tokens', 'admin', 'favicon.ico'])}`),
      },
      {
        name: 'oversized body',
        allowed: [413],
        weight: 4,
        send: () =>
          fetch(realm, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: `grant_type=password&username=ci&password=${'p'.repeat(70 * 1024)}`,
          }),
      },
    ];
    const totalWeight = kinds.reduce((sum, k) => sum + k.weight, 0);
    const choose = (rand: () => number): Kind => {
      let x = rand() * totalWeight;
      for (const k of kinds) if ((x -= k.weight) < 0) return k;
      return kinds[0] as Kind;
    };

    const counts = new Map<string, number>();
    const unexpected: string[] = [];
    const failures: string[] = [];
    const latencies: number[] = [];
    // One generator per loop: each loop's sequence of requests is fixed by the seed.
    const loop = (half: number) => {
      const rands = Array.from({ length: LOOPS }, (_, index) => prng(SEED + index * 7919 + half * 104_729));
      return (index: number) => step(rands[index] as () => number);
    };
    const step = async (rand: () => number) => {
      const kind = choose(rand);
      const started = performance.now();
      try {
        const res = await kind.send(rand);
        const text = await res.text();
        latencies.push(performance.now() - started);
        const key = `${kind.name} ${res.status}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        if (!kind.allowed.includes(res.status) && unexpected.length < 20) unexpected.push(`${key}: ${text.slice(0, 200)}`);
        if (text.includes(ciPassword) || text.includes(devPassword)) unexpected.push(`${key} echoed a password`);
      } catch (err) {
        if (failures.length < 20) failures.push(`${kind.name}: ${(err as Error).message} ${String((err as Error).cause ?? '')}`);
      }
    };

    await runLoops(LOOPS, DURATION_MS / 2, loop(0));
    const rssStart = await rssKb(server.pid);
    await runLoops(LOOPS, DURATION_MS / 2, loop(1));
    const rssEnd = await rssKb(server.pid);

    const ctx = `server ${server.exitStatus()}; logs:\n${server.logs().slice(-3000)}`;
    const table = [...counts.entries()].sort().map(([k, n]) => `  ${k}: ${n}`).join('\n');
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    console.log(
      `load: ${total} requests in ${DURATION_MS / 1000} s (${Math.round(total / (DURATION_MS / 1000))}/s), ` +
        `p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p99 ${quantile(latencies, 0.99).toFixed(1)} ms; ` +
        `RSS ${rssStart} kB -> ${rssEnd} kB over the second half\n${table}`,
    );
    expect(failures, ctx).toEqual([]);
    expect(unexpected, ctx).toEqual([]);
    expect([...counts.keys()].filter((k) => / 5\d\d$/.test(k))).toEqual([]);
    expect(server.exited(), ctx).toBe(false);
    expect(isAlive(server.pid)).toBe(true);
    expect(total).toBeGreaterThan(1000);
    for (const kind of kinds) expect([...counts.keys()].some((k) => k.startsWith(`${kind.name} `)), `no ${kind.name} request was sent`).toBe(true);
    expect((rssEnd - rssStart) / rssStart, `RSS grew from ${rssStart} kB to ${rssEnd} kB`).toBeLessThan(MAX_RSS_GROWTH);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }, DURATION_MS + 60_000);
});
