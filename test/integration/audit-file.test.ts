/**
 * The audit file under log rotation, with the built command line: requests, then the file is
 * renamed (what logrotate does) and SIGUSR2 sent while requests keep coming; the server goes on in
 * a new file. Every line is a complete JSON object and none is lost or written twice.
 */
import { readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveCli, type Served } from '../helpers/cli.js';
import { baseConfig, hash, loadTestConfig, makeKeyDir, writeConfig, type KeyDir } from '../helpers/fixtures.js';

let keys: KeyDir;
let served: Served | undefined;

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
});
afterAll(async () => {
  if (served && served.child.exitCode === null) await served.stop('SIGKILL');
  await keys.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function auditLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry.audit === 'token');
}

describe('audit.file', () => {
  it('is reopened on SIGUSR2 without losing a line; stdout gets the same lines', async () => {
    const config = {
      ...baseConfig({ users: { alice: { password: await hash('alice-pw') } }, acl: [{ match: { account: 'alice' }, actions: ['pull'] }] }),
      audit: { stdout: true, file: 'logs/audit.log' },
    };
    const path = await writeConfig(keys, config);
    served = await serveCli(['--config', path], { STS_ADDR: '127.0.0.1:0', STS_LOG_LEVEL: 'warn' });
    const { url } = served;
    const file = join(keys.dir, 'logs', 'audit.log');
    const authorization = `Basic ${Buffer.from('alice:alice-pw').toString('base64')}`;
    let sent = 0;
    const request = async (i: number) => {
      sent++;
      const res = await fetch(`${url}/auth?service=test-registry&scope=repository:app/n${i}:pull`, { headers: { authorization } });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    const batch = async (from: number, count: number) => {
      await Promise.all(Array.from({ length: count }, (_, k) => request(from + k)));
    };

    await batch(0, 40);
    expect((await stat(file)).mode & 0o777).toBe(0o640);

    // Rotate while requests are in flight.
    const during = batch(40, 40);
    await rename(file, `${file}.1`);
    served.child.kill('SIGUSR2');
    await during;
    await sleep(200);
    await batch(80, 40);
    expect(await served.stop('SIGTERM')).toBe(0);

    const rotated = auditLines(await readFile(`${file}.1`, 'utf8'));
    const current = auditLines(await readFile(file, 'utf8'));
    expect(rotated.length).toBeGreaterThanOrEqual(40);
    expect(current.length).toBeGreaterThanOrEqual(40);
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    const scopes = [...rotated, ...current].map((e) => (e.requested as string[])[0]);
    expect(scopes.length).toBe(sent);
    expect(new Set(scopes).size).toBe(sent);
    for (const entry of [...rotated, ...current]) expect(entry).toMatchObject({ result: 'issued', account: 'alice', level: 30 });
    expect(auditLines(served.stdout()).length).toBe(sent);
  });

  it('with server.workers 2: SIGUSR2 to the primary reaches every worker, and the primary lives on', async () => {
    const config = {
      ...baseConfig({ users: { '': {} }, acl: [{ match: { account: '' }, actions: ['pull'] }] }),
      server: { addr: '127.0.0.1:0', workers: 2 },
      audit: { stdout: false, file: 'cluster/audit.log' },
    };
    const path = await writeConfig(keys, config, 'cluster.yml');
    served = await serveCli(['--config', path], { STS_ADDR: '127.0.0.1:0', STS_LOG_LEVEL: 'warn' });
    const file = join(keys.dir, 'cluster', 'audit.log');
    const ask = async (count: number, tag: string) => {
      for (let i = 0; i < count; i++) {
        // A new connection each time, so both workers answer some.
        const res = await fetch(`${(served as Served).url}/auth?service=test-registry&scope=repository:${tag}/n${i}:pull`, { headers: { connection: 'close' } });
        expect(res.status).toBe(200);
        await res.arrayBuffer();
      }
    };
    await ask(20, 'before');
    await sleep(300);
    await rename(file, `${file}.1`);
    served.child.kill('SIGUSR2');
    await sleep(500);
    expect(served.child.exitCode).toBeNull();
    await ask(20, 'after');
    expect(await served.stop('SIGTERM')).toBe(0);
    const rotated = auditLines(await readFile(`${file}.1`, 'utf8'));
    const current = auditLines(await readFile(file, 'utf8'));
    expect(rotated.map((e) => (e.requested as string[])[0]).filter((s) => s?.startsWith('repository:before/')).length).toBe(20);
    expect(current.map((e) => (e.requested as string[])[0]).filter((s) => s?.startsWith('repository:after/')).length).toBe(20);
    expect(rotated.length + current.length).toBe(40);
  });

  it('refuses stdout: false without a file: the trail would go nowhere', async () => {
    await expect(loadTestConfig(keys, { ...baseConfig(), audit: { stdout: false } })).rejects.toThrow(/audit\.stdout: is false and no file is set/);
  });
});
