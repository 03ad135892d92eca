/**
 * Lockout counters in a REAL Redis, shared by two server instances (replicas), and what happens
 * when Redis goes away: one warning, counting in each process's memory, no 5xx; and when it comes
 * back: shared again. The test starts its own redis-server on a free 127.0.0.1 port in a temp dir,
 * without persistence, and stops only that process; the machine's Redis (6379) is never touched.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer, type StsServer } from '../../src/server/app.js';
import { baseConfig, hash, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic } from '../helpers/server.js';
import { freePort } from '../helpers/free-port.js';

const UNREACHABLE = /Redis is unreachable/;
const BACK = /Redis is reachable again/;

let keys: KeyDir;
let redisDir: string;
let port: number;
let redis: ChildProcess | undefined;
const replicas: { server: StsServer; logs: string[] }[] = [];


async function startRedis(): Promise<void> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  redis = child;
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (/Ready to accept connections/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}: ${out}`));
    });
  });
}

async function stopRedis(): Promise<void> {
  const child = redis;
  redis = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const count = (logs: string[], pattern: RegExp) => logs.filter((line) => pattern.test(line)).length;

function token(server: StsServer, user: string, password: string, ip: string) {
  return server.app.inject({
    method: 'GET',
    url: '/auth?service=test-registry&scope=repository:team/app:pull',
    headers: { authorization: basic(user, password) },
    remoteAddress: ip,
  });
}

let n = 0;
const wrong = () => `wrong-${++n}`;

beforeAll(async () => {
  const found = spawnSync('redis-server', ['--version']);
  if (found.error) throw new Error('redis-server is not installed: run scripts/install-test-deps.sh (Debian package redis-server)');
  keys = await makeKeyDir('ec-p256');
  redisDir = await mkdtemp(join(tmpdir(), 'sts-redis-'));
  port = await freePort();
  await startRedis();
  const users: NonNullable<ConfigInput['users']> = {};
  for (const name of ['alice', 'bob', 'carol', 'dave']) users[name] = { password: await hash(`${name}-pw`) };
  // The second replica reads the URL from a file, as a URL holding a password would be kept.
  await writeFile(join(keys.dir, 'redis.url'), `redis://127.0.0.1:${port}/0\n`);
  const redisSections = [
    { url: `redis://127.0.0.1:${port}/0`, prefix: 'sts-test:', timeout_ms: 200 },
    { url_file: 'redis.url', prefix: 'sts-test:', timeout_ms: 200 },
  ];
  for (const redisSection of redisSections) {
    const config = baseConfig({
      users,
      acl: [{ match: { account: '/.+/' }, actions: ['pull'] }],
      lockout: { threshold: 3, base_delay: '30s', redis: redisSection },
    });
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString());
        done();
      },
    });
    const server = await createServer(await loadTestConfig(keys, config), { logger: createLogger({ level: 'info' }, sink), audit: { write: () => undefined } });
    await server.app.ready();
    replicas.push({ server, logs });
  }
  // Both replicas connected before the first request.
  await new Promise((resolve) => setTimeout(resolve, 200));
});

afterAll(async () => {
  for (const { server } of replicas) await server.close();
  await stopRedis();
  await rm(redisDir, { recursive: true, force: true });
  await keys?.cleanup();
});

describe('lockout counters in Redis', () => {
  it('are shared: failures on one replica lock the address on the other', async () => {
    const [a, b] = replicas.map((r) => r.server) as [StsServer, StsServer];
    for (let i = 0; i < 3; i++) expect((await token(a, 'alice', wrong(), '10.0.0.1')).statusCode).toBe(401);
    const res = await token(b, 'alice', 'alice-pw', '10.0.0.1');
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(29);
    expect((await token(b, 'alice', 'alice-pw', '10.0.0.2')).statusCode).toBe(200);
  });

  it('count a POST on one replica retried as GET on the other once', async () => {
    const [a, b] = replicas.map((r) => r.server) as [StsServer, StsServer];
    for (let i = 0; i < 2; i++) {
      const password = wrong();
      const post = await a.app.inject({
        method: 'POST',
        url: '/auth',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `grant_type=password&service=test-registry&username=dave&password=${password}`,
        remoteAddress: '10.0.0.3',
      });
      expect(post.statusCode).toBe(401);
      expect((await token(b, 'dave', password, '10.0.0.3')).statusCode).toBe(401);
    }
    expect((await token(a, 'dave', 'dave-pw', '10.0.0.3')).statusCode).toBe(200);
  });

  it('fall back to memory when Redis stops: one warning, no 5xx; shared again when it returns', async () => {
    const [a, b] = replicas.map((r) => r.server) as [StsServer, StsServer];
    expect(replicas.map((r) => count(r.logs, UNREACHABLE))).toEqual([0, 0]);
    await stopRedis();
    await until(() => replicas.every((r) => count(r.logs, UNREACHABLE) === 1), 'the outage warning');

    // Counting goes on in each process alone: A locks bob's address, B has not seen a failure.
    for (let i = 0; i < 3; i++) expect((await token(a, 'bob', wrong(), '10.0.0.4')).statusCode).toBe(401);
    expect((await token(a, 'bob', 'bob-pw', '10.0.0.4')).statusCode).toBe(429);
    expect((await token(b, 'bob', 'bob-pw', '10.0.0.4')).statusCode).toBe(200);
    const statuses = new Set<number>();
    for (let i = 0; i < 20; i++) {
      statuses.add((await token(b, `user${i}`, wrong(), '10.0.0.5')).statusCode);
      statuses.add((await token(a, 'carol', 'carol-pw', `10.0.1.${i}`)).statusCode);
    }
    expect([...statuses].sort()).toEqual([200, 401]);
    // Once per outage, not per request.
    expect(replicas.map((r) => count(r.logs, UNREACHABLE))).toEqual([1, 1]);

    await startRedis();
    await until(() => replicas.every((r) => count(r.logs, BACK) === 1), 'the reconnection');
    for (let i = 0; i < 3; i++) expect((await token(b, 'carol', wrong(), '10.0.0.6')).statusCode).toBe(401);
    expect((await token(a, 'carol', 'carol-pw', '10.0.0.6')).statusCode).toBe(429);
    expect(replicas.map((r) => count(r.logs, UNREACHABLE))).toEqual([1, 1]);
  });

  it('a hung Redis (SIGSTOP) costs a request at most its timeout, once per probe interval', async () => {
    const [a] = replicas.map((r) => r.server) as [StsServer];
    const child = redis;
    if (!child?.pid) throw new Error('redis-server is not running');
    child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const statuses = new Set<number>();
      for (let i = 0; i < 20; i++) statuses.add((await token(a, 'alice', 'alice-pw', `10.0.2.${i}`)).statusCode);
      const elapsed = Date.now() - started;
      expect([...statuses]).toEqual([200]);
      // The first request waits for the 200 ms timeout, the next ones go straight to memory.
      expect(elapsed).toBeLessThan(1000);
      expect(count(replicas[0]?.logs ?? [], UNREACHABLE)).toBe(2);
    } finally {
      child.kill('SIGCONT');
    }
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await token(a, 'alice', 'alice-pw', '10.0.2.99')).statusCode).toBe(200);
    await until(() => count(replicas[0]?.logs ?? [], BACK) === 2, 'recovery after SIGCONT');
  });

  it('never writes a password into Redis: keys and values are counters and keyed hashes', async () => {
    const client = new Redis(port, '127.0.0.1');
    const keysFound = await client.keys('sts-test:*');
    const values = await Promise.all(keysFound.map(async (k) => JSON.stringify((await client.type(k)) === 'hash' ? await client.hgetall(k) : await client.get(k))));
    client.disconnect();
    expect(keysFound.length).toBeGreaterThan(0);
    expect([...keysFound, ...values].join('\n')).not.toMatch(/wrong-|-pw/);
    expect(keysFound.some((k) => k.startsWith('sts-test:p:10.0.0.6|carol'))).toBe(true);
  });
});
