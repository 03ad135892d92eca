/**
 * Config reload: in process through StsServer.reload(), and through the built CLI (a file renamed
 * over the config, SIGHUP, an invalid file, the TLS certificate swapped under open connections).
 */
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest, Agent } from 'node:https';
import { connect } from 'node:tls';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { reloadFromFile } from '../../src/server/reload.js';
import { generateSigningKey } from '../../src/token/generate.js';
import { serveCli, type Served } from '../helpers/cli.js';
import { baseConfig, decodeJwt, hash, loadTestConfig, makeKeyDir, writeConfig, type KeyDir } from '../helpers/fixtures.js';
import { basic, MemoryAudit, startInProcess } from '../helpers/server.js';
import { createServer } from '../../src/server/app.js';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { freePort } from '../helpers/free-port.js';

let keys: KeyDir;
let served: Served | undefined;
let alicePw: string;

beforeAll(async () => {
  keys = await makeKeyDir();
  alicePw = await hash('alice-pw');
});
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail' && served) process.stderr.write(`serve output:\n${served.stdout()}\n${served.stderr()}\n`);
  await served?.stop();
  served = undefined;
});
afterAll(async () => {
  await keys.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SCOPE = 'repository:team/app:pull,push';

function withAcl(actions: string[], extra: Partial<ConfigInput> = {}): ConfigInput {
  return baseConfig({ users: { alice: { password: alicePw } }, acl: [{ match: { account: 'alice' }, actions }], ...extra });
}

function granted(token: string): unknown {
  const access = decodeJwt(token).claims.access as Array<{ actions: string[] }>;
  return access[0]?.actions ?? [];
}

describe('StsServer.reload (in process)', () => {
  it('a new ACL changes the next token', async () => {
    const { server } = await startInProcess(keys, withAcl(['pull']));
    const ask = async () => {
      const res = await server.app.inject({ url: `/auth?service=test-registry&scope=${SCOPE}`, headers: { authorization: basic('alice', 'alice-pw') } });
      expect(res.statusCode).toBe(200);
      return granted(res.json<{ token: string }>().token);
    };
    expect(await ask()).toEqual(['pull']);
    const result = await server.reload(await loadTestConfig(keys, withAcl(['pull', 'push'])));
    expect(result).toEqual({ changed: ['acl'], restartRequired: [], tlsReloaded: false, listenerMoved: false });
    expect(await ask()).toEqual(['pull', 'push']);
    await server.close();
  });

  it('an invalid file (bad ACL regex) keeps the old config and reports the ConfigError', async () => {
    const { server } = await startInProcess(keys, withAcl(['pull']));
    const lines: string[] = [];
    const logger = createLogger({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const path = await writeConfig(keys, baseConfig({ acl: [{ match: { account: '/[unclosed/' }, actions: ['*'] }] }), 'bad.yml');
    const outcome = await reloadFromFile(server, path, logger, {});
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expect(outcome.error).toBeInstanceOf(ConfigError);
    const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(logged.some((l) => l.level === 50 && l.msg.includes('acl[0].match.account'))).toBe(true);
    const res = await server.app.inject({ url: `/auth?service=test-registry&scope=${SCOPE}`, headers: { authorization: basic('alice', 'alice-pw') } });
    expect(granted(res.json<{ token: string }>().token)).toEqual(['pull']);
    await server.close();
  });

  it('a new server.addr moves the listener: the new address answers, the old one finishes its open request and takes no more', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const slowPw = await hash('slow-pw', 12);
    const config = (addr: string, actions: string[]) =>
      baseConfig({ server: { addr }, users: { alice: { password: alicePw }, slow: { password: slowPw } }, acl: [{ match: { account: '/alice|slow/' }, actions }] });
    const server = await createServer(await loadTestConfig(keys, config('127.0.0.1:0', ['pull'])), { logger, audit: new MemoryAudit() });
    const oldUrl = await server.listen();
    const port = await freePort();
    // A slow request (bcrypt cost 12) is in flight on the old listener when it moves.
    const inFlight = fetch(`${oldUrl}/auth?service=test-registry&scope=${SCOPE}`, { headers: { authorization: basic('slow', 'slow-pw') } });
    await sleep(30);
    const result = await server.reload(await loadTestConfig(keys, config(`127.0.0.1:${port}`, ['pull', 'push'])));
    expect(result).toEqual({ changed: ['acl', 'server'], restartRequired: [], tlsReloaded: false, listenerMoved: true });
    expect(server.config.config.server.addr).toBe(`127.0.0.1:${port}`);
    expect(await tokenActions(`http://127.0.0.1:${port}`)).toEqual(['pull', 'push']);
    expect((await inFlight).status).toBe(200);
    await expect(fetch(`${oldUrl}/healthz`)).rejects.toThrow();
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; url?: string });
    expect(logged.find((l) => l.msg.startsWith('listening on the new address'))?.url).toBe(`http://127.0.0.1:${port}`);
    await server.close();
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }, 20_000);

  it('an address that is taken keeps the old listener (and its setting); the rest applies', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const server = await createServer(await loadTestConfig(keys, withAcl(['pull'])), { logger, audit: new MemoryAudit() });
    const url = await server.listen();
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as AddressInfo).port;
    try {
      const result = await server.reload(await loadTestConfig(keys, withAcl(['pull', 'push'], { server: { addr: `127.0.0.1:${taken}` } })));
      expect(result.listenerMoved).toBe(false);
      expect(server.config.config.server.addr).toBe('127.0.0.1:0');
      expect(await tokenActions(url)).toEqual(['pull', 'push']);
      const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(logged.find((l) => l.level === 50)?.msg).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken}: .*EADDRINUSE.*; the server goes on listening where it did`));
    } finally {
      blocker.close();
      await server.close();
    }
  });

  it('switches between HTTP and HTTPS on the same port', async () => {
    const tlsPair = await generateSigningKey();
    await writeFile(join(keys.dir, 'listener.crt'), tlsPair.certPem);
    await writeFile(join(keys.dir, 'listener.key'), tlsPair.keyPem);
    const port = await freePort();
    const plain = withAcl(['pull'], { server: { addr: `127.0.0.1:${port}` } });
    const server = await createServer(await loadTestConfig(keys, plain), { logger: createLogger({ level: 'silent' }), audit: new MemoryAudit() });
    expect(await server.listen()).toBe(`http://127.0.0.1:${port}`);
    const httpsGet = () =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`https://127.0.0.1:${port}/healthz`, { ca: tlsPair.certPem, checkServerIdentity: () => undefined }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    const result = await server.reload(await loadTestConfig(keys, withAcl(['pull'], { server: { addr: `127.0.0.1:${port}`, certificate: 'listener.crt', key: 'listener.key' } })));
    expect(result).toMatchObject({ restartRequired: [], tlsReloaded: true, listenerMoved: true });
    expect(await httpsGet()).toBe(200);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    const back = await server.reload(await loadTestConfig(keys, plain));
    expect(back.listenerMoved).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    await server.close();
  });

  it('a request in flight finishes on the old config', async () => {
    const slowPw = await hash('slow-pw', 12);
    const config = (actions: string[]) =>
      baseConfig({ users: { slow: { password: slowPw } }, acl: [{ match: { account: 'slow' }, actions }] });
    const { server } = await startInProcess(keys, config(['pull']));
    const inFlight = server.app.inject({ url: `/auth?service=test-registry&scope=${SCOPE}`, headers: { authorization: basic('slow', 'slow-pw') } });
    await sleep(20);
    let settled = false;
    void inFlight.then(() => (settled = true));
    await server.reload(await loadTestConfig(keys, config(['pull', 'push'])));
    expect(settled).toBe(false);
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(granted(res.json<{ token: string }>().token)).toEqual(['pull']);
    await server.close();
  }, 20_000);
});

async function tokenActions(url: string): Promise<unknown> {
  const res = await fetch(`${url}/auth?service=test-registry&scope=${SCOPE}`, { headers: { authorization: basic('alice', 'alice-pw') } });
  expect(res.status).toBe(200);
  return granted(((await res.json()) as { token: string }).token);
}

async function until(check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(100);
  }
}

/** Writes the config as an editor does: a new file renamed over the old one. */
async function replaceConfig(path: string, config: unknown): Promise<void> {
  await writeFile(`${path}.tmp`, stringify(config));
  await rename(`${path}.tmp`, path);
}

describe('serve (built CLI)', () => {
  const env = { STS_ADDR: '127.0.0.1:0', STS_LOG_LEVEL: 'info' };

  it('a file renamed over the config applies within 3 s; SIGHUP reloads; an invalid file keeps the old rules', async () => {
    const path = await writeConfig(keys, withAcl(['pull']));
    served = await serveCli(['--config', path], env);
    const { url } = served;
    expect(await tokenActions(url)).toEqual(['pull']);

    await replaceConfig(path, withAcl(['pull', 'push']));
    const started = Date.now();
    await until(async () => JSON.stringify(await tokenActions(url)) === '["pull","push"]', 3000);
    expect(Date.now() - started).toBeLessThan(3000);

    // SIGHUP after an in-place write (the watcher may see it too; the TLS test below has SIGHUP alone).
    await writeFile(path, stringify(withAcl(['push'])));
    served.child.kill('SIGHUP');
    await until(async () => JSON.stringify(await tokenActions(url)) === '["push"]', 3000);

    const before = served.stdout().length;
    await replaceConfig(path, withAcl(['pull'], { acl: [{ match: { account: '/[unclosed/' }, actions: ['*'] }] }));
    const current = served;
    await until(async () => current.stdout().slice(before).includes('config reload failed'), 3000);
    expect(current.stdout().slice(before)).toContain('acl[0].match.account');
    expect(await tokenActions(url)).toEqual(['push']);
  }, 30_000);

  it.each([
    ['one process', 1],
    ['server.workers 2: each worker moves', 2],
  ])('%s: a config file with a new server.addr moves the listener without a restart', async (_name, workers) => {
    const [first, second] = [await freePort(), await freePort()];
    const path = await writeConfig(keys, withAcl(['pull'], { server: { addr: `127.0.0.1:${first}`, workers } }), 'moving.yml');
    served = await serveCli(['--config', path], { STS_ADDR: '', STS_LOG_LEVEL: 'info' });
    expect(served.url).toBe(`http://127.0.0.1:${first}`);
    const pid = served.child.pid;
    await replaceConfig(path, withAcl(['pull', 'push'], { server: { addr: `127.0.0.1:${second}`, workers } }));
    await until(async () => (await fetch(`http://127.0.0.1:${second}/healthz`).catch(() => undefined))?.status === 200, 5000);
    expect(await tokenActions(`http://127.0.0.1:${second}`)).toEqual(['pull', 'push']);
    // Every worker has moved when the old port refuses connections.
    await until(async () => (await fetch(`http://127.0.0.1:${first}/healthz`).then(() => false, () => true)), 5000);
    expect(served.child.pid).toBe(pid);
    expect(served.child.exitCode).toBeNull();
  }, 30_000);

  it.each([
    ['one process', 1],
    ['server.workers 2: the primary passes SIGHUP on', 2],
  ])('TLS, %s: SIGHUP swaps the certificate for new connections; an open keep-alive connection keeps working', async (_name, workers) => {
    const first = await generateSigningKey();
    const second = await generateSigningKey();
    await writeFile(join(keys.dir, 'tls.crt'), first.certPem);
    await writeFile(join(keys.dir, 'tls.key'), first.keyPem);
    const config = withAcl(['pull'], { server: { addr: '127.0.0.1:0', certificate: 'tls.crt', key: 'tls.key', workers } });
    const path = await writeConfig(keys, config, 'tls.yml');
    served = await serveCli(['--config', path], env);
    const { url } = served;
    expect(url.startsWith('https://')).toBe(true);
    const { port } = new URL(url);
    // serveCli returns at the first worker's "listening"; a worker still loading its modules has no
    // SIGHUP handler yet, and the signal would end it (it restarts, with the new files).
    const running = served;
    await until(async () => running.stdout().split('"msg":"listening"').length - 1 >= workers, 15_000);

    const fingerprint = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: Number(port), rejectUnauthorized: false }, () => {
          resolve(socket.getPeerX509Certificate()?.fingerprint256 ?? '');
          socket.end();
        });
        socket.on('error', reject);
      });
    const agent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    const sockets = new Set<unknown>();
    const get = () =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`${url}/healthz`, { agent }, (res) => {
          sockets.add(req.socket);
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });

    expect(await fingerprint()).toBe(new X509Certificate(first.certPem).fingerprint256);
    expect(await get()).toBe(200);

    await writeFile(join(keys.dir, 'tls.crt'), second.certPem);
    await writeFile(join(keys.dir, 'tls.key'), second.keyPem);
    served.child.kill('SIGHUP');
    const expected = new X509Certificate(second.certPem).fingerprint256;
    // Each new connection may land on any worker: several in a row must all see the new pair.
    const allNew = async () => (await Promise.all(Array.from({ length: 6 }, fingerprint))).every((f) => f === expected);
    await until(allNew, 10_000);

    expect(await get()).toBe(200);
    // Both requests went over the one connection opened before the swap.
    expect(sockets.size).toBe(1);
    agent.destroy();
  }, 30_000);
});
