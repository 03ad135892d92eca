// Shared pieces of the fault, load and fuzz tests: the built server as a child process with any
// config, a private PostgreSQL, a silent TCP upstream, bounded load loops and /proc sampling.
// Every process here is started by the test and stopped by its own PID; nothing else is touched.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, chown, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { generateSigningKey, hashPassword } from '../../src/index.js';
import { freePort, waitForExit } from '../e2e/harness/registry.js';
import { requireBuiltCli } from '../e2e/harness/server-process.js';

export const INSTALL_HINT = 'run `sudo bash scripts/install-test-deps.sh` (and `sudo bash scripts/start-services.sh`, which installs PostgreSQL)';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Mulberry32: a small seeded PRNG, so that a failing run can be replayed with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The q-th quantile (0..1) of the numbers, nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

/** Resident memory of a process in kB (VmRSS in /proc/<pid>/status). */
export async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `loops` concurrent copies of `step` until `ms` have passed; each step awaits the last. */
export async function runLoops(loops: number, ms: number, step: (loop: number) => Promise<void>): Promise<void> {
  const until = Date.now() + ms;
  await Promise.all(
    Array.from({ length: loops }, async (_, loop) => {
      while (Date.now() < until) await step(loop);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// The server under test

export interface FaultServerFiles {
  dir: string;
  configPath: string;
  service: string;
}

/**
 * A fresh temp dir with an EC key, its certificate and config.yml: `token` is filled in, `extra`
 * holds every other top-level section as it is (users, acl, store, webhook_auth…).
 */
export async function writeFaultConfig(extra: Record<string, unknown>, prefix = 'sts-faults-'): Promise<FaultServerFiles> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const service = 'sts-faults-registry';
  const key = await generateSigningKey({ kind: 'ec-p256' });
  await writeFile(join(dir, 'token.key'), key.keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'token.crt'), key.certPem);
  const configPath = join(dir, 'config.yml');
  await writeFile(
    configPath,
    stringify({
      server: { addr: '127.0.0.1:0' },
      token: { issuer: 'sts-faults', expiration: 300, certificate: 'token.crt', key: 'token.key', services: [service] },
      ...extra,
    }),
    { mode: 0o600 },
  );
  return { dir, configPath, service };
}

/** A bcrypt hash at cost 4 (fast): these tests are about faults, not hashing. */
export const quickHash = (password: string) => hashPassword(password, 4);

export interface FaultServer {
  url: string;
  pid: number;
  exited(): boolean;
  /** The exit code or signal, once exited. */
  exitStatus(): string;
  /** The last 64 kB the process printed (stdout and stderr), for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

const LOG_TAIL = 64 * 1024;

/**
 * `node dist/cli/main.js serve --config <file>` with STS_ADDR=127.0.0.1:0 and no other STS_*
 * setting of the caller's. Output is drained (only a tail is kept) so that a busy server never
 * blocks on a full pipe.
 */
export async function startFaultServer(configPath: string, logLevel = 'warn'): Promise<FaultServer> {
  const cli = await requireBuiltCli();
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('STS_')));
  const child: ChildProcess = spawn(process.execPath, [cli, 'serve', '--config', configPath], {
    env: { ...env, LANG: 'C.UTF-8', STS_ADDR: '127.0.0.1:0', STS_LOG_LEVEL: logLevel },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  let url: string | undefined;
  let pending = '';
  const keep = (text: string) => {
    tail = (tail + text).slice(-LOG_TAIL);
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    keep(text);
    if (url !== undefined) return;
    pending += text;
    const match = /"msg":"listening"[^\n]*?"url":"(http:\/\/[^"]+)"|"url":"(http:\/\/[^"]+)"[^\n]*?"msg":"listening"/.exec(pending);
    if (match) url = match[1] ?? match[2];
  });
  child.stderr?.on('data', (chunk: Buffer) => keep(chunk.toString('utf8')));
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });
  const pid = child.pid ?? -1;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async () => {
    if (exited()) return;
    process.kill(pid, 'SIGTERM');
    if (await waitForExit(child, 10_000)) return;
    if (!exited()) process.kill(pid, 'SIGKILL');
    await waitForExit(child, 5_000);
  };
  const deadline = Date.now() + 20_000;
  while (url === undefined) {
    if (spawnError) throw new Error(`cannot start the server: ${spawnError.message}`);
    if (exited()) throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) during start:\n${tail.slice(-4000)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the server did not log "listening" within 20 s:\n${tail.slice(-4000)}`);
    }
    await sleep(25);
  }
  return {
    url,
    pid,
    exited,
    exitStatus: () => String(child.exitCode ?? child.signalCode ?? 'running'),
    logs: () => tail,
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// A private PostgreSQL

/** The newest /usr/lib/postgresql/<version>/bin that has initdb and postgres (15 preferred). */
export async function postgresBinDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = (await readdir(root)).sort((a, b) => Number(b) - Number(a));
  } catch {
    // none installed
  }
  const ordered = versions.includes('15') ? ['15', ...versions.filter((v) => v !== '15')] : versions;
  for (const version of ordered) {
    const bin = join(root, version, 'bin');
    try {
      await access(join(bin, 'initdb'), constants.X_OK);
      await access(join(bin, 'postgres'), constants.X_OK);
      return bin;
    } catch {
      // incomplete; try the next
    }
  }
  throw new Error(`the PostgreSQL fault test needs initdb and postgres under ${root}/<version>/bin, which are missing: ${INSTALL_HINT}`);
}

export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** The postmaster's PID (changes with each start). */
  pid(): number;
  /** SIGQUIT to the postmaster (immediate shutdown, as a crash); resolves once it has exited. */
  crash(): Promise<void>;
  /**
   * SIGSTOP to the postmaster and every process it has forked (the backends serving our pooled
   * connections): the server freezes with its sockets open, as behind a network partition.
   */
  freeze(): void;
  /** SIGCONT to every process freeze() stopped. */
  thaw(): void;
  /** Starts it again on the same data directory and port; resolves once it accepts queries. */
  start(): Promise<void>;
  /** Stops it (if running) and removes its directory. */
  destroy(): Promise<void>;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PostgreSQL binary, as the `postgres` OS user when we are root (it refuses root). */
function asPostgres(binary: string, args: string[]): { command: string; args: string[] } {
  return isRoot() ? { command: 'runuser', args: ['-u', 'postgres', '--', binary, ...args] } : { command: binary, args };
}

/**
 * initdb + postgres in a temp dir on a free loopback port (never the machine's 5432), trust
 * authentication, the unix socket in the same dir. A child of this process, stopped by its PID.
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = await postgresBinDir();
  const dir = await mkdtemp(join(tmpdir(), 'sts-faults-pg-'));
  const data = join(dir, 'data');
  if (isRoot()) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gids = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (ids.status !== 0) throw new Error(`running as root, the PostgreSQL fault test needs the postgres OS user: ${INSTALL_HINT}`);
    await chown(dir, Number(ids.stdout.trim()), Number(gids.stdout.trim()));
  }
  await chmod(dir, 0o700);
  const init = asPostgres(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const initRun = spawnSync(init.command, init.args, { encoding: 'utf8', timeout: 60_000 });
  if (initRun.status !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${initRun.status ?? initRun.signal}): ${initRun.stderr || initRun.error?.message}`);
  }
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;
  let output = '';

  const running = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const start = async () => {
    const run = asPostgres(join(bin, 'postgres'), [
      '-D', data, '-p', String(port), '-k', dir,
      '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=50', '-c', 'shared_buffers=16MB',
    ]);
    child = spawn(run.command, run.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (c: Buffer) => void (output = (output + c.toString('utf8')).slice(-16_384)));
    child.stderr?.on('data', (c: Buffer) => void (output = (output + c.toString('utf8')).slice(-16_384)));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (!running()) throw new Error(`postgres exited during start:\n${output}`);
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        return;
      } catch {
        await client.end().catch(() => undefined);
      }
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within 30 s:\n${output}`);
      await sleep(100);
    }
  };
  // The postmaster's own PID (postmaster.pid, line 1): under runuser our child is runuser, which
  // would turn any signal into a SIGTERM (a smart shutdown that waits for our pool).
  let postmaster = -1;
  const readPostmaster = async () => {
    const first = (await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0] ?? '';
    postmaster = Number(first.trim());
  };
  const signal = async (sig: NodeJS.Signals) => {
    if (!child || !running()) return;
    if (postmaster > 0 && isAlive(postmaster)) process.kill(postmaster, sig);
    else if (child.pid !== undefined) process.kill(child.pid, sig);
    if (await waitForExit(child, 15_000)) return;
    if (running() && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    if (postmaster > 0 && isAlive(postmaster)) process.kill(postmaster, 'SIGKILL');
    await waitForExit(child, 5_000);
  };
  let frozen: number[] = [];
  const childrenOf = (pid: number): number[] => {
    const ps = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
    return ps.stdout
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
  };
  const freeze = () => {
    if (postmaster <= 0 || !isAlive(postmaster)) throw new Error('postgres is not running');
    process.kill(postmaster, 'SIGSTOP');
    frozen = [postmaster, ...childrenOf(postmaster)];
    for (const pid of frozen.slice(1)) process.kill(pid, 'SIGSTOP');
  };
  const thaw = () => {
    // runuser stops itself when its child stops (su's job control): it is woken too, or it would
    // never reap postgres later.
    const wake = frozen.length > 0 && child?.pid !== undefined && isRoot() ? [...frozen, child.pid] : frozen;
    for (const pid of wake) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone meanwhile
      }
    }
    frozen = [];
  };
  const startAndRecord = async () => {
    await start();
    await readPostmaster();
  };
  try {
    await startAndRecord();
  } catch (err) {
    await signal('SIGQUIT');
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    port,
    pid: () => postmaster,
    crash: () => signal('SIGQUIT'),
    freeze,
    thaw,
    start: startAndRecord,
    async destroy() {
      thaw();
      await signal('SIGQUIT');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// An upstream that accepts and never answers

export interface SilentServer {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** A raw TCP server on 127.0.0.1 that reads whatever it is sent and never writes a byte. */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the silent server has no port');
  return {
    port: address.port,
    accepted: () => accepted,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
