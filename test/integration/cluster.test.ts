/**
 * Cluster mode through the built command line: `serve --workers 2` on a first start makes the data
 * folder once (in the primary), two worker processes answer on one port, a killed worker is
 * replaced, and SIGTERM finishes every worker and exits 0.
 */
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveCli, type Served } from '../helpers/cli.js';

let dataDir: string;
let served: Served | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'sts-cluster-'));
});

afterAll(async () => {
  if (served && served.child.exitCode === null) await served.stop('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

/** Which worker answered a request on a fresh connection (no keep-alive, so each is dealt anew). */
function workerPid(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/healthz`, { agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => {
        const pid = Number(res.headers['x-sts-worker-pid']);
        if (res.statusCode === 200 && Number.isInteger(pid)) resolve(pid);
        else reject(new Error(`healthz answered ${res.statusCode} with pid header ${String(res.headers['x-sts-worker-pid'])}`));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The workers seen answering, asking until `count` distinct ones have (or giving up). */
async function answeringWorkers(url: string, count: number, exclude: ReadonlySet<number> = new Set()): Promise<Set<number>> {
  const seen = new Set<number>();
  for (let i = 0; i < 200 && seen.size < count; i++) {
    const pid = await workerPid(url).catch(() => undefined);
    if (pid !== undefined && !exclude.has(pid)) seen.add(pid);
    if (pid === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  return seen;
}

const listeningPids = (stdout: string): number[] =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg?: string; pid?: number })
    .filter((entry) => entry.msg === 'listening' && typeof entry.pid === 'number')
    .map((entry) => entry.pid as number);

async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('serve --workers 2', () => {
  it('starts two workers on one port, replaces a killed one, and exits 0 on SIGTERM', async () => {
    served = await serveCli(['--workers', '2'], {
      STS_DATA_DIR: join(dataDir, 'data'),
      STS_ADDR: '127.0.0.1:0',
      STS_LOG_LEVEL: 'info',
      STS_DEBUG_WORKER_HEADER: '1',
    });
    const { url } = served;
    const current = served;
    await waitFor(() => listeningPids(current.stdout()).length === 2, 'both workers to listen');

    // The primary made the data folder once: one admin password, shown once.
    expect(served.stderr().match(/admin password, shown only this once/g)).toHaveLength(1);

    const first = await answeringWorkers(url, 2);
    expect([...first].sort()).toEqual([...listeningPids(served.stdout())].sort());
    expect(first.has(served.child.pid ?? -1)).toBe(false);

    // A worker killed outright is replaced by a new one, on the same port.
    const [victim] = [...first];
    if (victim === undefined) throw new Error('no worker answered');
    process.kill(victim, 'SIGKILL');
    await waitFor(() => listeningPids(current.stdout()).length === 3, 'a replacement worker to listen');
    expect(served.stdout()).toMatch(/worker died; starting another/);
    const replacement = listeningPids(served.stdout())[2];
    const after = await answeringWorkers(url, 2, new Set([victim]));
    expect(after.has(replacement ?? -1)).toBe(true);
    expect(after.size).toBe(2);

    // SIGTERM: every worker finishes, and the primary exits 0.
    expect(await served.stop('SIGTERM')).toBe(0);
    expect(served.stdout().match(/"msg":"worker finished"/g)).toHaveLength(2);
  }, 60_000);
});
