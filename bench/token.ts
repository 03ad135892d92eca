/**
 * Load benchmark of the token endpoint, run as `npm run bench` after `npm run build`.
 *
 * For each scenario it starts the built server (dist/cli/main.js, in one process or with
 * `--workers 2`) or the minimal reference endpoint (bench/reference-server.ts) as a child process on
 * 127.0.0.1, times the first token after the process start, checks that response by hand, drives
 * the server with autocannon (a warm-up, then a measured run), samples the RSS and CPU of the
 * process tree from /proc, and stops it by PID. Each figure is printed with its ratio to the
 * reference endpoint measured in the same run, and the issue's targets are checked at the end.
 * Everything lives in a temporary folder that is removed at the end, also on failure or Ctrl-C.
 *
 * Environment:
 *   BENCH_DURATION   seconds of each measured run (default 8; about 3 minutes in all)
 *   BENCH_SOAK       1 adds a 5-minute run of the cached static user (ES256, one process) and
 *                    reports its resident memory after it
 *   BENCH_WARMUP     seconds of each warm-up run (default 2)
 *   BENCH_LOG_LEVEL  the server's STS_LOG_LEVEL (default warn). The audit trail (one JSON line
 *                    per token request) is written whatever the level (src/server/app.ts gives
 *                    the audit logger its own level, info); the server's stdout goes to a file
 *                    in the temp folder, and the bench counts the audit lines in it.
 *   BENCH_ONLY       comma-separated scenario names to run (default: all)
 *   BENCH_QUIET_WAIT seconds to wait, before each scenario, for the rest of the machine to go
 *                    quiet (< 0.15 busy cores for 1 s); default 3, 0 to skip. The run goes on
 *                    after that either way, and the "other cores" column shows what was there.
 *
 * Exit status: 0 when every request of every measured run was a 200, 1 otherwise.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createReadStream, existsSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import type * as Library from '../src/index.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');
const LIB = join(ROOT, 'dist', 'index.js');
const REFERENCE = join(ROOT, 'bench', 'reference-server.ts');
const HOST = '127.0.0.1';
const SERVICE = 'registry.bench';
const ISSUER = 'sts-bench';
const USER = 'bench';

// ---------------------------------------------------------------------------------------------
// Settings

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 300) {
    console.error(`${name}=${raw}: must be a whole number of seconds from 1 to 300`);
    process.exit(2);
  }
  return n;
}

const DURATION = seconds('BENCH_DURATION', 8);
const WARMUP = seconds('BENCH_WARMUP', 2);
const QUIET_WAIT = process.env.BENCH_QUIET_WAIT === '0' ? 0 : seconds('BENCH_QUIET_WAIT', 3);
const SOAK = process.env.BENCH_SOAK === '1';
const SOAK_SECONDS = 300;
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'warn';
const ONLY = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');

// ---------------------------------------------------------------------------------------------
// Scenarios

type KeyName = 'es256' | 'rs256';
/** The server's config: plain (credential cache on), cold (credential_cache.ttl 0), store (with a SQLite store). */
type ConfigName = 'plain' | 'cold' | 'store';

interface Scenario {
  name: string;
  description: string;
  /** sts-docker-auth, or the minimal reference endpoint. */
  target: 'sts' | 'reference';
  key: KeyName;
  config: ConfigName;
  /** Server processes: 1, or a cluster of this many workers. */
  workers: number;
  connections: number;
  path: string;
  /** What the client sends: nothing, the static user's password, an access token, a refresh token (POST). */
  auth: 'none' | 'password' | 'access-token' | 'refresh';
  expectAlg: 'ES256' | 'RS256';
  expectScopes: number;
  /** The reference scenario whose figure this one is divided by. */
  reference?: string;
  /** Seconds of the measured run, when not BENCH_DURATION. */
  duration?: number;
}

const ONE_SCOPE = `/auth?service=${SERVICE}&scope=repository:library/app:pull`;
const FIVE_SCOPES =
  `/auth?service=${SERVICE}` +
  ['library/app', 'library/base', 'team/api', 'team/web', 'tools/ci'].map((n) => `&scope=repository:${n}:pull`).join('');

/** Throughput and p99 are measured at 64 connections (the issue's p99 target). */
const CONNS = 64;

const base = { target: 'sts', config: 'plain', workers: 1, connections: CONNS, path: ONE_SCOPE, expectScopes: 1 } as const;
const es256 = { key: 'es256', expectAlg: 'ES256', reference: 'ref-es256' } as const;
const rs256 = { key: 'rs256', expectAlg: 'RS256', reference: 'ref-rs256' } as const;

const SCENARIOS: Scenario[] = [
  { ...base, ...es256, name: 'ref-es256', description: 'reference endpoint: Fastify + node:crypto, ES256', target: 'reference', auth: 'none', reference: undefined },
  { ...base, ...rs256, name: 'ref-rs256', description: 'reference endpoint: Fastify + node:crypto, RS256 (async)', target: 'reference', auth: 'none', reference: undefined },
  {
    ...base,
    ...es256,
    name: 'ref-es256-cluster2',
    description: 'reference endpoint, ES256, 2 cluster workers',
    target: 'reference',
    workers: 2,
    auth: 'none',
    reference: undefined,
  },
  { ...base, ...es256, name: 'anon-es256', description: 'anonymous pull token, ES256, 1 scope', auth: 'none' },
  { ...base, ...es256, name: 'user-es256', description: 'static user, bcrypt cost 10, warm credential cache, ES256', auth: 'password' },
  { ...base, ...rs256, name: 'user-rs256', description: 'static user, bcrypt cost 10, warm credential cache, RS256 (RSA-2048)', auth: 'password' },
  {
    ...base,
    ...es256,
    name: 'user-es256-cluster2',
    description: 'static user, warm credential cache, ES256, --workers 2',
    workers: 2,
    auth: 'password',
    reference: 'ref-es256-cluster2',
  },
  {
    ...base,
    ...es256,
    name: 'user-es256-5scopes',
    description: 'static user, warm credential cache, ES256, 5 scopes',
    auth: 'password',
    path: FIVE_SCOPES,
    expectScopes: 5,
  },
  {
    ...base,
    ...es256,
    name: 'cold-bcrypt10-es256',
    description: 'static user, bcrypt cost 10 on every request (credential_cache.ttl 0), ES256',
    config: 'cold',
    connections: 16,
    auth: 'password',
  },
  { ...base, ...es256, name: 'access-token-es256', description: 'access token (stsat_) as the password, SQLite store, ES256', config: 'store', auth: 'access-token' },
  { ...base, ...es256, name: 'refresh-es256', description: 'refresh grant (POST /auth/token), SQLite store, ES256', config: 'store', auth: 'refresh' },
  ...(SOAK
    ? [
        {
          ...base,
          ...es256,
          name: 'soak-user-es256',
          description: `static user, warm cache, ES256, ${SOAK_SECONDS} s soak`,
          auth: 'password',
          duration: SOAK_SECONDS,
        } satisfies Scenario,
      ]
    : []),
];

// ---------------------------------------------------------------------------------------------
// Cleanup: the child server and the temp folder go away however the bench ends.

let tempRoot: string | undefined;
let running: ChildProcess | undefined;

function cleanupSync(): void {
  if (running?.pid !== undefined && running.exitCode === null && running.signalCode === null) {
    try {
      process.kill(running.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  running = undefined;
  if (tempRoot) {
    rmSync(tempRoot, { recursive: true, force: true });
    tempRoot = undefined;
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the server and removing the temp folder`);
    cleanupSync();
    process.exit(130);
  });
}
process.on('exit', cleanupSync);

// The whole run is bounded: every scenario costs warm-up + measured run + a start-up allowance.
const WATCHDOG_MS = (SCENARIOS.reduce((sum, sc) => sum + WARMUP + (sc.duration ?? DURATION) + QUIET_WAIT + 20, 0) + 60) * 1000;
setTimeout(() => {
  console.error(`\nBENCH ABORTED: still running after ${WATCHDOG_MS / 1000} s`);
  cleanupSync();
  process.exit(1);
}, WATCHDOG_MS).unref();

// ---------------------------------------------------------------------------------------------
// Machine and /proc helpers

function machineLine(): string {
  let cpus = 'unknown';
  try {
    cpus = execFileSync('nproc', { encoding: 'utf8' }).trim();
  } catch {
    // nproc missing
  }
  let model = 'unknown';
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux
  }
  return `machine: nproc=${cpus}, CPU "${model}", Node ${process.version}, ${process.platform}/${process.arch}`;
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** VmRSS and VmHWM of a process, in MB. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** CPU seconds (user + system) a process has used. */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces; the fields after it are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** The process and its children (cluster workers), read from /proc. */
function processTree(pid: number): number[] {
  const pids = [pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** RSS and peak RSS of a process and its children, in MB. */
function treeMemoryOf(pid: number): { rss: number; peak: number } {
  let rss = 0;
  let peak = 0;
  for (const p of processTree(pid)) {
    try {
      const m = memoryOf(p);
      rss += m.rss;
      peak += m.peak;
    } catch {
      // gone meanwhile
    }
  }
  return { rss, peak };
}

/** CPU seconds of a process and its children (those alive now). */
function treeCpuSecondsOf(pids: readonly number[]): number {
  let total = 0;
  for (const p of pids) {
    try {
      total += cpuSecondsOf(p);
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** Machine-wide busy CPU seconds (everything but idle and iowait), from /proc/stat. */
function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (v[3] ?? 0) - (v[4] ?? 0)) / CLK_TCK;
}

function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * Waits until the machine is quiet: less than 0.15 busy cores over a 1 s window (the method of
 * performance-baselines.md §0.2 waits for >= 90% idle). Gives up after `maxSeconds`.
 */
async function waitForQuiet(maxSeconds: number): Promise<{ quiet: boolean; busyCores: number }> {
  const deadline = Date.now() + maxSeconds * 1000;
  for (;;) {
    const b0 = machineBusySeconds();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const busyCores = (machineBusySeconds() - b0) / ((performance.now() - t0) / 1000);
    if (busyCores < 0.15) return { quiet: true, busyCores };
    if (Date.now() >= deadline) return { quiet: false, busyCores };
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(full));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

// ---------------------------------------------------------------------------------------------
// Data folders and configs

async function writeDataDir(
  lib: typeof Library,
  dir: string,
  kind: 'ec-p256' | 'rsa-2048',
  passwordHash: string,
): Promise<{ keyFile: string; configs: Record<ConfigName, string> }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = await lib.generateSigningKey({ kind, commonName: `sts bench ${kind}` });
  await writeFile(join(dir, 'token.key'), key.keyPem, { mode: 0o600 });
  await chmod(join(dir, 'token.key'), 0o600);
  await writeFile(join(dir, 'token.crt'), key.certPem);
  const lines = (extra: string[]) => [
    'server:',
    `  addr: "${HOST}:5001"   # replaced by STS_ADDR`,
    'token:',
    `  issuer: ${ISSUER}`,
    '  expiration: 300',
    '  certificate: token.crt',
    '  key: token.key',
    `  services: [${SERVICE}]`,
    'users:',
    '  "": {}',
    `  ${USER}:`,
    `    password: "${passwordHash}"`,
    'acl:',
    '  - match: {}',
    '    actions: [pull]',
    '    comment: everyone, anonymous included, may pull everything',
    ...extra,
    '',
  ].join('\n');
  const configs: Record<ConfigName, string> = { plain: join(dir, 'config.yml'), cold: join(dir, 'config-cold.yml'), store: join(dir, 'config-store.yml') };
  // The default credential cache (60 s); ttl 0 checks bcrypt on every request; a store for tokens.
  await writeFile(configs.plain, lines([]));
  await writeFile(configs.cold, lines(['credential_cache:', '  ttl: 0']));
  await writeFile(configs.store, lines(['store:', '  path: store.db']));
  return { keyFile: join(dir, 'token.key'), configs };
}

// ---------------------------------------------------------------------------------------------
// The server under test

async function freePort(): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((ok, fail) => {
    probe.once('error', fail);
    probe.listen(0, HOST, ok);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((ok) => probe.close(() => ok()));
  return port;
}

interface RunningServer {
  child: ChildProcess;
  pid: number;
  /** performance.now() just before the process was spawned. */
  spawnedAt: number;
  url: string;
  logFile: string;
  output: () => string;
}

/** The URL of the server's `{"msg":"listening","url":...}` line, when its log has one. */
function listeningUrl(logFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"listening"')) continue;
    try {
      const record = JSON.parse(line) as { msg?: unknown; url?: unknown };
      if (record.msg === 'listening' && typeof record.url === 'string') return record.url;
    } catch {
      // a partial line
    }
  }
  return undefined;
}

/**
 * Starts `node dist/cli/main.js serve --config FILE` with its stdout (the JSON log, audit trail
 * included) going to `logFile`: a file is a sink that does not depend on how fast the bench reads,
 * and it lets the bench count the audit lines afterwards.
 *
 * The "listening" line is logged at info, so with STS_LOG_LEVEL=warn it never appears: the bench
 * therefore picks a free loopback port itself, passes it in STS_ADDR, and waits for /healthz; it
 * uses the logged URL when there is one.
 */
async function startServer(
  launch: { target: 'sts'; configFile: string; workers: number } | { target: 'reference'; keyFile: string; alg: string; workers: number },
  logFile: string,
): Promise<RunningServer> {
  const port = await freePort();
  const stdout = openSync(logFile, 'w', 0o600);
  let child: ChildProcess;
  const spawnedAt = performance.now();
  try {
    child =
      launch.target === 'sts'
        ? spawn(process.execPath, [MAIN, 'serve', '--config', launch.configFile, '--workers', String(launch.workers)], {
            env: { ...process.env, STS_ADDR: `${HOST}:${port}`, STS_LOG_LEVEL: LOG_LEVEL },
            stdio: ['ignore', stdout, 'pipe'],
          })
        : spawn(process.execPath, [...process.execArgv, REFERENCE], {
            env: { ...process.env, REF_KEY: launch.keyFile, REF_ALG: launch.alg, REF_PORT: String(port), REF_HOST: HOST, REF_WORKERS: String(launch.workers) },
            stdio: ['ignore', stdout, 'pipe'],
          });
  } finally {
    closeSync(stdout);
  }
  running = child;
  if (child.pid === undefined) throw new Error('could not start the server process');
  const pid = child.pid;

  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const output = () => {
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8').slice(0, 4000);
    } catch {
      // none
    }
    return `${log}${stderr}`;
  };

  const fallbackUrl = `http://${HOST}:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before listening:\n${output()}`);
    }
    if (Date.now() > deadline) throw new Error(`the server did not answer /healthz within 15 s:\n${output()}`);
    try {
      const res = await fetch(`${fallbackUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return { child, pid, spawnedAt, url: listeningUrl(logFile) ?? fallbackUrl, logFile, output };
}

/** Lines of the audit trail (`"audit":"token"`) in a server log. */
async function countAuditLines(logFile: string): Promise<number> {
  let count = 0;
  const lines = createInterface({ input: createReadStream(logFile, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) if (line.includes('"audit":"token"')) count++;
  return count;
}

async function stopServer(server: RunningServer): Promise<void> {
  const { child, pid } = server;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
    process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 5000);
    await exited;
    clearTimeout(timer);
  }
  if (running === child) running = undefined;
}

// ---------------------------------------------------------------------------------------------
// One scenario

interface Measured {
  scenario: Scenario;
  check: string | undefined;
  requestsPerSec: number;
  total2xx: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  errorSamples: string[];
  rssMb: number;
  peakRssMb: number;
  serverCores: number;
  /** Server CPU (all its processes) per answered request of the measured run, in microseconds. */
  serverCpuUs: number;
  benchCores: number;
  otherCores: number;
  /** Requests answered (the sample check, the warm-up, the measured run) and sent. */
  answered: number;
  sent: number;
  /** Audit lines the server wrote to its log. */
  auditLines: number;
  /** From spawning the process to the first token received, ms. */
  firstTokenMs: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? NaN;
}

function decodeSegment(segment: string | undefined): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** How a scenario's requests look. */
interface RequestShape {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

/** One request by hand: the status, the algorithm and the granted scopes must be what we expect. */
async function checkOnce(request: RequestShape, scenario: Scenario): Promise<string | undefined> {
  const res = await fetch(request.url, {
    method: request.method,
    headers: request.headers,
    ...(request.body === undefined ? {} : { body: request.body }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) return `status ${res.status}: ${text.slice(0, 300)}`;
  const body = JSON.parse(text) as { token?: unknown };
  if (typeof body.token !== 'string') return 'no token in the response';
  const [header, payload] = body.token.split('.');
  const alg = decodeSegment(header).alg;
  if (alg !== scenario.expectAlg) return `token alg ${String(alg)}, expected ${scenario.expectAlg}`;
  const claims = decodeSegment(payload);
  const access = Array.isArray(claims.access) ? (claims.access as { actions?: unknown }[]) : [];
  if (access.length !== scenario.expectScopes) return `token has ${access.length} access entries, expected ${scenario.expectScopes}`;
  if (!access.every((a) => Array.isArray(a.actions) && a.actions.includes('pull'))) return 'a scope was not granted pull';
  const expectedSub = scenario.auth === 'none' ? '' : USER;
  if (claims.sub !== expectedSub) return `token sub ${JSON.stringify(claims.sub)}, expected ${JSON.stringify(expectedSub)}`;
  return undefined;
}

interface CannonRun {
  result: autocannon.Result;
  latencies: Float64Array;
  errorSamples: string[];
}

function cannon(request: RequestShape, connections: number, duration: number): Promise<CannonRun> {
  const latencies: number[] = [];
  const errorSamples = new Set<string>();
  const { url, method, headers, body } = request;
  return new Promise((ok, fail) => {
    const options = { url, method, connections, duration, pipelining: 1, timeout: 10, headers, ...(body === undefined ? {} : { body }) };
    const instance = autocannon(options, (err, result) => {
      if (err) fail(err);
      else ok({ result, latencies: Float64Array.from(latencies).sort(), errorSamples: [...errorSamples] });
    });
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
      else if (errorSamples.size < 5) errorSamples.add(`HTTP ${statusCode}`);
    });
    instance.on('reqError', (error) => {
      if (errorSamples.size < 5) errorSamples.add(error.message || error.name);
    });
  });
}

interface DataDir {
  keyFile: string;
  configs: Record<ConfigName, string>;
}

const basic = (user: string, secret: string) => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;

/** A refresh token for the static user, from a password login with offline_token=true. */
async function refreshTokenOf(serverUrl: string, password: string): Promise<string> {
  const res = await fetch(`${serverUrl}${ONE_SCOPE}&offline_token=true&client_id=bench`, {
    headers: { authorization: basic(USER, password) },
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await res.json()) as { refresh_token?: unknown };
  if (res.status !== 200 || typeof body.refresh_token !== 'string') throw new Error(`no refresh token: status ${res.status}`);
  return body.refresh_token;
}

async function runScenario(
  scenario: Scenario,
  data: DataDir,
  secrets: { password: string; accessToken: string },
  logDir: string,
): Promise<Measured> {
  if (QUIET_WAIT > 0) {
    const { quiet, busyCores } = await waitForQuiet(QUIET_WAIT);
    if (!quiet) process.stdout.write(`(machine not quiet after ${QUIET_WAIT} s: ${busyCores.toFixed(2)} busy cores) `);
  }
  const launch =
    scenario.target === 'sts'
      ? ({ target: 'sts', configFile: data.configs[scenario.config], workers: scenario.workers } as const)
      : ({ target: 'reference', keyFile: data.keyFile, alg: scenario.expectAlg, workers: scenario.workers } as const);
  const server = await startServer(launch, join(logDir, `${scenario.name}.log`));
  let measured: Omit<Measured, 'auditLines'>;
  try {
    let request: RequestShape;
    if (scenario.auth === 'refresh') {
      const refreshToken = await refreshTokenOf(server.url, secrets.password);
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        service: SERVICE,
        scope: 'repository:library/app:pull',
        client_id: 'bench',
      });
      request = {
        url: `${server.url}/auth/token`,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      };
    } else {
      const secret = scenario.auth === 'password' ? secrets.password : scenario.auth === 'access-token' ? secrets.accessToken : undefined;
      request = { url: `${server.url}${scenario.path}`, method: 'GET', headers: secret === undefined ? {} : { authorization: basic(USER, secret) } };
    }
    const check = await checkOnce(request, scenario);
    // The refresh scenario's first token came from the password login before it.
    const firstTokenMs = performance.now() - server.spawnedAt;
    if (check) console.error(`  !! ${scenario.name}: the sample response is wrong: ${check}`);

    const warmup = await cannon(request, scenario.connections, WARMUP);

    const pids = processTree(server.pid);
    const cpu0 = { server: treeCpuSecondsOf(pids), self: selfCpuSeconds(), machine: machineBusySeconds(), at: performance.now() };
    const run = await cannon(request, scenario.connections, scenario.duration ?? DURATION);
    const cpu1 = { server: treeCpuSecondsOf(pids), self: selfCpuSeconds(), machine: machineBusySeconds(), at: performance.now() };
    const memory = treeMemoryOf(server.pid);

    const wall = (cpu1.at - cpu0.at) / 1000;
    const serverCores = (cpu1.server - cpu0.server) / wall;
    const benchCores = (cpu1.self - cpu0.self) / wall;
    const machineCores = (cpu1.machine - cpu0.machine) / wall;
    const { result } = run;
    const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]));
    measured = {
      scenario,
      check,
      requestsPerSec: result.requests.average,
      total2xx: result['2xx'],
      p50: percentile(run.latencies, 50),
      p99: percentile(run.latencies, 99),
      non2xx: result.non2xx,
      errors: result.errors,
      timeouts: result.timeouts,
      statusCodes,
      errorSamples: run.errorSamples,
      rssMb: memory.rss,
      peakRssMb: memory.peak,
      serverCores,
      serverCpuUs: ((cpu1.server - cpu0.server) / Math.max(1, result.requests.total ?? 0)) * 1e6,
      benchCores,
      otherCores: Math.max(0, machineCores - serverCores - benchCores),
      // The refresh scenario's password login is one more audited request.
      answered: (scenario.auth === 'refresh' ? 2 : 1) + (warmup.result.requests.total ?? 0) + (result.requests.total ?? 0),
      sent: (scenario.auth === 'refresh' ? 2 : 1) + warmup.result.requests.sent + result.requests.sent,
      firstTokenMs,
    };
  } catch (err) {
    const output = server.output().trim();
    if (output) console.error(`server output:\n${output}`);
    throw err;
  } finally {
    await stopServer(server);
  }
  return { ...measured, auditLines: await countAuditLines(server.logFile) };
}

// ---------------------------------------------------------------------------------------------
// Output

function table(rows: string[][]): string {
  const [head, ...body] = rows;
  if (!head) return '';
  const widths = head.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}

/** Foreign load above this many cores marks a run as noisy. */
const NOISY_CORES = 0.3;
const fixed = (n: number, digits: number) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const thousands = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');

/** The issue's targets, each with the figure of this run and whether it is met. */
function targetsTable(byName: ReadonlyMap<string, Measured>, ratioOf: (r: Measured) => number): string {
  const rows: string[][] = [['target', 'this run', 'met']];
  const add = (target: string, scenario: string, value: (r: Measured) => number, shown: (n: number) => string, met: (n: number) => boolean) => {
    const r = byName.get(scenario);
    if (!r) {
      rows.push([target, `not measured (${scenario} not run)`, '—']);
      return;
    }
    const n = value(r);
    rows.push([target, `${shown(n)} (${scenario})`, Number.isFinite(n) ? (met(n) ? 'yes' : 'NO') : '—']);
  };
  const rps = (r: Measured) => r.requestsPerSec;
  add('ES256, cached user, cluster: >= 12,000 req/s', 'user-es256-cluster2', rps, thousands, (n) => n >= 12_000);
  add('ES256, cached user, one process: >= 9,000 req/s', 'user-es256', rps, thousands, (n) => n >= 9_000);
  add('RS256, cached user: >= 4,500 req/s', 'user-rs256', rps, thousands, (n) => n >= 4_500);
  for (const name of ['user-es256', 'user-rs256', 'user-es256-cluster2']) {
    add(`${name}: >= 0.85 of the reference`, name, ratioOf, (n) => fixed(n, 2), (n) => n >= 0.85);
  }
  add('p99 < 20 ms at 64 connections', 'user-es256', (r) => r.p99, (n) => `${fixed(n, 1)} ms`, (n) => n < 20);
  add('RSS < 120 MB after 5 min of load (BENCH_SOAK=1)', 'soak-user-es256', (r) => r.rssMb, (n) => `${fixed(n, 1)} MB`, (n) => n < 120);
  add('first token < 1 s after process start', 'user-es256', (r) => r.firstTokenMs, (n) => `${fixed(n, 0)} ms`, (n) => n < 1000);
  return table(rows);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (!existsSync(MAIN) || !existsSync(LIB)) {
    console.error(`${MAIN} is missing: the bench runs the built server. Run \`npm run build\` first, then \`npm run bench\`.`);
    return 2;
  }
  if (process.platform !== 'linux') {
    console.error('the bench reads /proc for the server\'s memory and CPU; it runs on Linux only');
    return 2;
  }
  const srcDir = join(ROOT, 'src');
  if (existsSync(srcDir) && newestMtime(srcDir) > statSync(MAIN).mtimeMs) {
    console.warn('warning: src/ has files newer than dist/cli/main.js; the bench measures dist/, so run `npm run build` if that is not what you want.\n');
  }
  const scenarios = SCENARIOS.filter((s) => ONLY.length === 0 || ONLY.includes(s.name));
  if (scenarios.length === 0) {
    console.error(`BENCH_ONLY=${ONLY.join(',')} names no scenario; known: ${SCENARIOS.map((s) => s.name).join(', ')}`);
    return 2;
  }

  console.log(machineLine());
  console.log(
    `settings: warm-up ${WARMUP} s + measured ${DURATION} s per scenario, autocannon 9 in-process, loopback ${HOST}, ` +
      `server STS_LOG_LEVEL=${LOG_LEVEL} with stdout to a file, one fresh server process per scenario\n`,
  );

  const lib = (await import(pathToFileURL(LIB).href)) as typeof Library;
  const root = await mkdtemp(join(tmpdir(), 'sts-bench-'));
  tempRoot = root;
  const password = randomBytes(18).toString('base64url');
  const passwordHash = await lib.hashPassword(password, 10);
  const data: Record<KeyName, DataDir> = {
    es256: await writeDataDir(lib, join(root, 'ec-p256'), 'ec-p256', passwordHash),
    rs256: await writeDataDir(lib, join(root, 'rsa-2048'), 'rsa-2048', passwordHash),
  };
  // An access token of the static user, in the ES256 store, made as an operator would.
  const accessToken = execFileSync(
    process.execPath,
    [MAIN, 'tokens', 'create', '--user', USER, '--name', 'bench', '--scope', 'repository:library/*:pull', '--config', data.es256.configs.store],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  ).trim();

  const results: Measured[] = [];
  for (const scenario of scenarios) {
    process.stdout.write(`running ${scenario.name} (${scenario.description}, -c ${scenario.connections}) ... `);
    const measured = await runScenario(scenario, data[scenario.key], { password, accessToken }, root);
    results.push(measured);
    console.log(`${thousands(measured.requestsPerSec)} req/s`);
  }

  const byName = new Map(results.map((r) => [r.scenario.name, r]));
  const ratioOf = (r: Measured): number => {
    const ref = r.scenario.reference === undefined ? undefined : byName.get(r.scenario.reference);
    return ref ? r.requestsPerSec / ref.requestsPerSec : NaN;
  };
  console.log('');
  console.log(
    table([
      ['scenario', 'workers', 'conns', 'req/s (mean)', 'ratio to ref', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'RSS MB after', 'first token ms'],
      ...results.map((r) => [
        r.scenario.name,
        String(r.scenario.workers),
        String(r.scenario.connections),
        r.requestsPerSec >= 100 ? thousands(r.requestsPerSec) : fixed(r.requestsPerSec, 1),
        r.scenario.reference === undefined ? '(ref)' : fixed(ratioOf(r), 2),
        fixed(r.p50, r.p50 >= 100 ? 0 : 2),
        fixed(r.p99, r.p99 >= 100 ? 0 : 2),
        String(r.non2xx),
        String(r.errors),
        fixed(r.rssMb, 1),
        fixed(r.firstTokenMs, 0),
      ]),
    ]),
  );
  console.log('\nratio to ref: req/s divided by the reference endpoint\'s with the same algorithm and workers, measured in this run.');
  // The steadier figure on a shared machine: the reference's CPU per request over ours (1 = as cheap).
  const cpuRatioOf = (r: Measured): number => {
    const ref = r.scenario.reference === undefined ? undefined : byName.get(r.scenario.reference);
    return ref ? ref.serverCpuUs / r.serverCpuUs : NaN;
  };
  console.log('');
  console.log('CPU during the measured run (cores = CPU seconds per wall second; "other" = the rest of the machine; CPU ratio = the reference\'s µs/req over this one\'s):');
  console.log(
    table([
      ['scenario', '2xx total', 'audit lines / answered', 'server cores', 'server CPU µs/req', 'CPU ratio to ref', 'autocannon cores', 'other cores', 'server peak RSS MB'],
      ...results.map((r) => [
        r.scenario.name,
        String(r.total2xx),
        `${r.auditLines} / ${r.answered}`,
        fixed(r.serverCores, 2),
        fixed(r.serverCpuUs, 0),
        r.scenario.reference === undefined ? '(ref)' : fixed(cpuRatioOf(r), 2),
        fixed(r.benchCores, 2),
        fixed(r.otherCores, 2) + (r.otherCores > NOISY_CORES ? ' (noisy)' : ''),
        fixed(r.peakRssMb, 1),
      ]),
    ]),
  );
  console.log('\nlatency: p50/p99 of the 2xx responses of the measured run, from autocannon\'s per-response timings (sub-ms).');

  const noisy = results.filter((r) => r.otherCores > NOISY_CORES);
  if (noisy.length > 0) {
    console.warn(
      `\nnote: other processes used more than ${NOISY_CORES} cores during ${noisy.map((r) => r.scenario.name).join(', ')}; ` +
        'those figures are low by an unknown amount (this box has 2 vCPUs). Rerun on a quiet machine.',
    );
  }

  console.log('');
  console.log(targetsTable(byName, ratioOf));

  const unaudited = results.filter((r) => r.scenario.target === 'sts' && (r.auditLines < r.answered || r.auditLines > r.sent));
  for (const r of unaudited) {
    console.warn(`\nnote: ${r.scenario.name}: ${r.auditLines} audit lines for ${r.answered} answered and ${r.sent} sent requests`);
  }

  const bad = results.filter((r) => r.non2xx > 0 || r.errors > 0 || r.timeouts > 0 || r.check !== undefined);
  if (bad.length > 0) {
    console.error('\n' + '!'.repeat(78));
    console.error('!! THE BENCH HAD FAILURES: the figures above are NOT valid for these scenarios');
    for (const r of bad) {
      const codes = Object.entries(r.statusCodes)
        .map(([code, count]) => `${code}: ${count}`)
        .join(', ');
      console.error(
        `!!  ${r.scenario.name}: non-2xx ${r.non2xx}, errors ${r.errors} (timeouts ${r.timeouts}); status codes {${codes}}` +
          (r.errorSamples.length ? `; e.g. ${r.errorSamples.join(' / ')}` : '') +
          (r.check ? `; sample check: ${r.check}` : ''),
      );
    }
    console.error('!'.repeat(78));
    return 1;
  }
  console.log('all measured requests answered 200.');
  return 0;
}

main().then(
  (code) => {
    cleanupSync();
    process.exit(code);
  },
  (err: unknown) => {
    console.error(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    cleanupSync();
    process.exit(1);
  },
);
