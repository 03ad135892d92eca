// Fault: a password backend whose upstream accepts connections and never answers (a raw TCP
// server that reads and stays silent). Requests for that backend must end at its timeout with a
// 503 (never hang, never 401), and while they wait, static users on the same server process must
// stay fast: the stall occupies no thread and no lock that other requests need.
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { Teardown } from '../e2e/harness/teardown.js';
import {
  basic,
  isAlive,
  quantile,
  quickHash,
  runLoops,
  startFaultServer,
  startSilentServer,
  writeFaultConfig,
  type FaultServer,
  type FaultServerFiles,
  type SilentServer,
} from './helpers.js';

const STALL_MS = 5_000;
const SLOW_LOOPS = 6;
const FAST_LOOPS = 4;
/** p99 of static users during the stall: under 50 ms, or (on a machine busy with other test files) under twice the p99 just before it. */
const FAST_P99_LIMIT_MS = 50;

interface BackendCase {
  name: 'webhook' | 'ldap';
  /** The config sections that point the backend at the silent upstream on `port`. */
  sections(port: number, dir: string): Promise<Record<string, unknown>>;
  /** The configured per-operation timeout. */
  timeoutMs: number;
  /**
   * The longest a request may take by the backend's documented behaviour: webhook, one retry
   * (timeout, backoff of at most ~200 ms, timeout); LDAP, waiting up to the timeout for a pooled
   * connection, then the operation's deadline and one fresh try of a kept connection.
   */
  worstCaseMs: number;
}

const CASES: BackendCase[] = [
  {
    name: 'webhook',
    timeoutMs: 1_000,
    worstCaseMs: 2 * 1_000 + 300,
    sections: (port) =>
      Promise.resolve({
        authn_order: ['users', 'webhook'],
        webhook_auth: { url: `http://127.0.0.1:${port}/check`, timeout: '1s', retries: 1 },
      }),
  },
  {
    name: 'ldap',
    timeoutMs: 1_000,
    worstCaseMs: 3 * 1_000,
    sections: async (port, dir) => {
      await writeFile(join(dir, 'ldap-bind.txt'), 'service-password\n', { mode: 0o600 });
      return {
        authn_order: ['users', 'ldap'],
        ldap_auth: {
          addr: `127.0.0.1:${port}`,
          tls: 'none',
          base: 'ou=people,dc=example,dc=org',
          filter: '(uid=${account})',
          bind_dn: 'cn=reader,dc=example,dc=org',
          bind_password_file: 'ldap-bind.txt',
          timeout: 1,
          pool_size: 2,
          cache_ttl: 0,
        },
      };
    },
  },
];

/** Slack above the worst case for scheduling on a busy 2-core machine. */
const MARGIN_MS = 1_000;

describe.each(CASES)('a $name upstream that never answers', (backend) => {
  const teardown = new Teardown();
  const staticPassword = randomBytes(12).toString('base64url');
  const slowPassword = randomBytes(12).toString('base64url');
  let silent: SilentServer;
  let files: FaultServerFiles;
  let server: FaultServer;

  beforeAll(async () => {
    silent = teardown.defer(await startSilentServer(), (s) => s.close());
    files = await writeFaultConfig({ users: { ci: { password: await quickHash(staticPassword) } } }, `sts-faults-${backend.name}-`);
    teardown.defer(files, (f) => rm(f.dir, { recursive: true, force: true }));
    // Rewrite the config with the backend's sections (the helper wrote users and token).
    const config = parse(await readFile(files.configPath, 'utf8')) as Record<string, unknown>;
    Object.assign(config, await backend.sections(silent.port, files.dir), { acl: [{ match: {}, actions: ['pull'] }] });
    await writeFile(files.configPath, stringify(config), { mode: 0o600 });
    server = teardown.defer(await startFaultServer(files.configPath), (s) => s.stop());
  }, 60_000);

  afterAll(() => teardown.run(), 60_000);

  it('answers 503 at the timeout while static users stay fast', async () => {
    const url = `${server.url}/auth?${new URLSearchParams({ service: files.service, scope: 'repository:team/app:pull' }).toString()}`;
    const slow: { status: number; ms: number; retryAfter: string | null; message: string }[] = [];
    const fast: { status: number; ms: number }[] = [];
    const errors: string[] = [];
    const fastStep = (into: { status: number; ms: number }[]) => async () => {
      const started = performance.now();
      try {
        const res = await fetch(url, { headers: { authorization: basic('ci', staticPassword) } });
        await res.arrayBuffer();
        into.push({ status: res.status, ms: performance.now() - started });
      } catch (err) {
        errors.push(`fast: ${(err as Error).message}`);
      }
    };
    // A baseline first, with the same loops and no stall: on a machine busy with other tests the
    // limit is relative to it.
    const baseline: { status: number; ms: number }[] = [];
    await runLoops(FAST_LOOPS, 1_500, fastStep(baseline));

    const slowLoops = runLoops(SLOW_LOOPS, STALL_MS, async (loop) => {
      const started = performance.now();
      try {
        const res = await fetch(url, { headers: { authorization: basic(`someone-${loop}`, slowPassword) } });
        const body = (await res.json()) as { errors?: { message?: string }[] };
        slow.push({ status: res.status, ms: performance.now() - started, retryAfter: res.headers.get('retry-after'), message: body.errors?.[0]?.message ?? '' });
      } catch (err) {
        errors.push(`slow: ${(err as Error).message}`);
      }
    });
    // The fast loops start once the slow requests are surely stalled, and stop before they end.
    await new Promise((r) => setTimeout(r, 300));
    const fastLoops = runLoops(FAST_LOOPS, STALL_MS - 600, fastStep(fast));
    await Promise.all([slowLoops, fastLoops]);

    const ctx = `server ${server.exitStatus()}; logs:\n${server.logs().slice(-3000)}`;
    expect(errors, ctx).toEqual([]);
    expect(isAlive(server.pid), ctx).toBe(true);
    expect(silent.accepted(), 'the backend never reached the silent upstream').toBeGreaterThan(0);

    expect(slow.length).toBeGreaterThanOrEqual(SLOW_LOOPS);
    const limit = backend.worstCaseMs + MARGIN_MS;
    for (const s of slow) {
      expect(s.status, s.message).toBe(503);
      expect(s.retryAfter).toMatch(/^\d+$/);
      expect(s.message).toMatch(new RegExp(`${backend.name}.*unavailable`, 'i'));
      expect(s.message).not.toContain(slowPassword);
      expect(s.ms, 'answered before the timeout: it did not wait for the upstream').toBeGreaterThanOrEqual(backend.timeoutMs * 0.9);
      expect(s.ms, `a stalled request took longer than its worst case ${backend.worstCaseMs} ms + ${MARGIN_MS} ms`).toBeLessThan(limit);
    }

    expect(fast.filter((f) => f.status !== 200)).toEqual([]);
    expect(fast.length).toBeGreaterThan(100);
    const p50 = quantile(fast.map((f) => f.ms), 0.5);
    const p99 = quantile(fast.map((f) => f.ms), 0.99);
    const baselineP99 = quantile(baseline.slice(20).map((f) => f.ms), 0.99);
    const p99Limit = Math.max(FAST_P99_LIMIT_MS, 2 * baselineP99);
    const slowest = Math.max(...slow.map((s) => s.ms));
    console.log(
      `${backend.name} stall: ${slow.length} stalled requests, all 503, slowest ${slowest.toFixed(0)} ms (limit ${limit}); ` +
        `${fast.length} static requests meanwhile, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms ` +
        `(before the stall: p99 ${baselineP99.toFixed(1)} ms; limit ${p99Limit.toFixed(1)} ms)`,
    );
    expect(p99, 'static users slowed down by the stalled backend').toBeLessThan(p99Limit);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  }, 60_000);
});
