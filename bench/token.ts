/**
 * Load benchmark of the token endpoint, run as `npm run bench` after `npm run build`.
 *
 * For each scenario it starts the built server (dist/cli/main.js) as a child process on
 * 127.0.0.1, checks one response by hand, drives it with autocannon (a warm-up, then a measured
 * run), samples the server's RSS and CPU from /proc, and stops it by PID. Everything lives in a
 * temporary folder that is removed at the end, also on failure or Ctrl-C.
 *
 * Environment:
 *   BENCH_DURATION   seconds of each measured run (default 10)
 *   BENCH_WARMUP     seconds of each warm-up run (default 2)
 *   BENCH_LOG_LEVEL  the server's STS_LOG_LEVEL (default warn). The audit trail (one JSON line
 *                    per token request) is written whatever the level (src/server/app.ts gives
 *                    the audit logger its own level, info); the server's stdout goes to a file
 *                    in the temp folder, and the bench counts the audit lines in it.
 *   BENCH_ONLY       comma-separated scenario names to run (default: all)
 *   BENCH_QUIET_WAIT seconds to wait, before each scenario, for the rest of the machine to go
 *                    quiet (< 0.15 busy cores for 1 s); default 10, 0 to skip. The run goes on
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

const DURATION = seconds('BENCH_DURATION', 10);
const WARMUP = seconds('BENCH_WARMUP', 2);
const QUIET_WAIT = process.env.BENCH_QUIET_WAIT === '0' ? 0 : seconds('BENCH_QUIET_WAIT', 10);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'warn';
const ONLY = (process.env.BENCH_ONLY ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');

// ---------------------------------------------------------------------------------------------
// Scenarios

type KeyName = 'es256' | 'rs256';

interface Scenario {
  name: string;
  description: string;
  key: KeyName;
  connections: number;
  path: string;
  basicAuth: boolean;
  expectAlg: 'ES256' | 'RS256';
  expectScopes: number;
}

const ONE_SCOPE = `/auth?service=${SERVICE}&scope=repository:library/app:pull`;
const FIVE_SCOPES =
  `/auth?service=${SERVICE}` +
  ['library/app', 'library/base', 'team/api', 'team/web', 'tools/ci'].map((n) => `&scope=repository:${n}:pull`).join('');

const SCENARIOS: Scenario[] = [
  {
    name: 'anon-es256',
    description: 'anonymous pull token, ES256, 1 scope',
    key: 'es256',
    connections: 50,
    path: ONE_SCOPE,
    basicAuth: false,
    expectAlg: 'ES256',
    expectScopes: 1,
  },
  {
    name: 'anon-rs256',
    description: 'anonymous pull token, RS256 (RSA-2048), 1 scope',
    key: 'rs256',
    connections: 50,
    path: ONE_SCOPE,
    basicAuth: false,
    expectAlg: 'RS256',
    expectScopes: 1,
  },
  {
    name: 'basic-bcrypt10-es256',
    description: 'static user, Basic auth, bcrypt cost 10 on every request, ES256',
    key: 'es256',
    connections: 16,
    path: ONE_SCOPE,
    basicAuth: true,
    expectAlg: 'ES256',
    expectScopes: 1,
  },
  {
    name: 'anon-es256-5scopes',
    description: 'anonymous pull token, ES256, 5 scopes',
    key: 'es256',
    connections: 50,
    path: FIVE_SCOPES,
    basicAuth: false,
    expectAlg: 'ES256',
    expectScopes: 5,
  },
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
const WATCHDOG_MS = (SCENARIOS.length * (WARMUP + DURATION + QUIET_WAIT + 20) + 60) * 1000;
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

async function writeDataDir(lib: typeof Library, dir: string, kind: 'ec-p256' | 'rsa-2048', passwordHash: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = await lib.generateSigningKey({ kind, commonName: `sts bench ${kind}` });
  await writeFile(join(dir, 'token.key'), key.keyPem, { mode: 0o600 });
  await chmod(join(dir, 'token.key'), 0o600);
  await writeFile(join(dir, 'token.crt'), key.certPem);
  const config = [
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
    '',
  ].join('\n');
  const file = join(dir, 'config.yml');
  await writeFile(file, config);
  return file;
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
async function startServer(configFile: string, logFile: string): Promise<RunningServer> {
  const port = await freePort();
  const stdout = openSync(logFile, 'w', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [MAIN, 'serve', '--config', configFile], {
      env: { ...process.env, STS_ADDR: `${HOST}:${port}`, STS_LOG_LEVEL: LOG_LEVEL },
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
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, pid, url: listeningUrl(logFile) ?? fallbackUrl, logFile, output };
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
  benchCores: number;
  otherCores: number;
  /** Requests answered (the sample check, the warm-up, the measured run) and sent. */
  answered: number;
  sent: number;
  /** Audit lines the server wrote to its log. */
  auditLines: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? NaN;
}

function decodeSegment(segment: string | undefined): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** One request by hand: the status, the algorithm and the granted scopes must be what we expect. */
async function checkOnce(url: string, headers: Record<string, string>, scenario: Scenario): Promise<string | undefined> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
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
  const expectedSub = scenario.basicAuth ? USER : '';
  if (claims.sub !== expectedSub) return `token sub ${JSON.stringify(claims.sub)}, expected ${JSON.stringify(expectedSub)}`;
  return undefined;
}

interface CannonRun {
  result: autocannon.Result;
  latencies: Float64Array;
  errorSamples: string[];
}

function cannon(url: string, connections: number, duration: number, headers: Record<string, string>): Promise<CannonRun> {
  const latencies: number[] = [];
  const errorSamples = new Set<string>();
  return new Promise((ok, fail) => {
    const instance = autocannon({ url, connections, duration, pipelining: 1, timeout: 10, headers }, (err, result) => {
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

async function runScenario(scenario: Scenario, configFile: string, password: string, logDir: string): Promise<Measured> {
  if (QUIET_WAIT > 0) {
    const { quiet, busyCores } = await waitForQuiet(QUIET_WAIT);
    if (!quiet) process.stdout.write(`(machine not quiet after ${QUIET_WAIT} s: ${busyCores.toFixed(2)} busy cores) `);
  }
  const server = await startServer(configFile, join(logDir, `${scenario.name}.log`));
  let measured: Omit<Measured, 'auditLines'>;
  try {
    const url = `${server.url}${scenario.path}`;
    const headers: Record<string, string> = scenario.basicAuth
      ? { authorization: `Basic ${Buffer.from(`${USER}:${password}`).toString('base64')}` }
      : {};
    const check = await checkOnce(url, headers, scenario);
    if (check) console.error(`  !! ${scenario.name}: the sample response is wrong: ${check}`);

    const warmup = await cannon(url, scenario.connections, WARMUP, headers);

    const cpu0 = { server: cpuSecondsOf(server.pid), self: selfCpuSeconds(), machine: machineBusySeconds(), at: performance.now() };
    const run = await cannon(url, scenario.connections, DURATION, headers);
    const cpu1 = { server: cpuSecondsOf(server.pid), self: selfCpuSeconds(), machine: machineBusySeconds(), at: performance.now() };
    const memory = memoryOf(server.pid);

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
      benchCores,
      otherCores: Math.max(0, machineCores - serverCores - benchCores),
      answered: 1 + (warmup.result.requests.total ?? 0) + (result.requests.total ?? 0),
      sent: 1 + warmup.result.requests.sent + result.requests.sent,
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
  const configs: Record<KeyName, string> = {
    es256: await writeDataDir(lib, join(root, 'ec-p256'), 'ec-p256', passwordHash),
    rs256: await writeDataDir(lib, join(root, 'rsa-2048'), 'rsa-2048', passwordHash),
  };

  const results: Measured[] = [];
  for (const scenario of scenarios) {
    process.stdout.write(`running ${scenario.name} (${scenario.description}, -c ${scenario.connections}) ... `);
    const measured = await runScenario(scenario, configs[scenario.key], password, root);
    results.push(measured);
    console.log(`${thousands(measured.requestsPerSec)} req/s`);
  }

  console.log('');
  console.log(
    table([
      ['scenario', 'conns', 'req/s (mean)', 'p50 ms', 'p99 ms', 'non-2xx', 'errors', 'server RSS MB'],
      ...results.map((r) => [
        r.scenario.name,
        String(r.scenario.connections),
        r.requestsPerSec >= 100 ? thousands(r.requestsPerSec) : fixed(r.requestsPerSec, 1),
        fixed(r.p50, r.p50 >= 100 ? 0 : 2),
        fixed(r.p99, r.p99 >= 100 ? 0 : 2),
        String(r.non2xx),
        String(r.errors),
        fixed(r.rssMb, 1),
      ]),
    ]),
  );
  console.log('');
  console.log('CPU during the measured run (cores = CPU seconds per wall second; "other" = the rest of the machine):');
  console.log(
    table([
      ['scenario', '2xx total', 'audit lines / answered', 'server cores', 'autocannon cores', 'other cores', 'server peak RSS MB'],
      ...results.map((r) => [
        r.scenario.name,
        String(r.total2xx),
        `${r.auditLines} / ${r.answered}`,
        fixed(r.serverCores, 2),
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

  const unaudited = results.filter((r) => r.auditLines < r.answered || r.auditLines > r.sent);
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
