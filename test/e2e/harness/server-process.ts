import { spawn, type ChildProcess } from 'node:child_process';
import { access, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { generateSigningKey } from '../../../src/index.js';
import type { AuditEvent } from '../../../src/index.js';
import { redactArgs, type RunResult } from './clients.js';
import { waitForExit } from './registry.js';

/** The built CLI, `dist/cli/main.js` (`npm run build`; `npm test` builds first). */
export const CLI_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../../../dist/cli/main.js');

/** Throws, naming the fix, when the CLI has not been built. */
export async function requireBuiltCli(): Promise<string> {
  try {
    await access(CLI_PATH);
  } catch {
    throw new Error(`these e2e tests run the built CLI ${CLI_PATH}, which is missing: run \`npm run build\` first (\`npm test\` does)`);
  }
  return CLI_PATH;
}

/**
 * A module of the built package (`dist/…`), typed as its source. A test that shares a database
 * with server or CLI processes must use their code, not the source vitest compiles: the two differ
 * whenever src/ changed since the last build (a schema migration, say).
 */
export async function importBuilt<T>(distPath: string): Promise<T> {
  await requireBuiltCli();
  return (await import(pathToFileURL(resolve(dirname(CLI_PATH), '..', distPath)).href)) as T;
}

export interface ServerFiles {
  configPath: string;
  service: string;
  issuer: string;
  /** The signing certificate (for a registry's rootcertbundle, or to verify tokens). */
  certPem: string;
}

export interface ServerFilesOptions {
  /** The config's `store` section (a relative SQLite path is relative to the config file). */
  store: Record<string, unknown>;
  acl?: unknown[];
  users?: Record<string, unknown>;
  /** Extra `token:` keys (allow_post…). */
  token?: Record<string, unknown>;
  refreshTokens?: Record<string, unknown>;
  service?: string;
  issuer?: string;
}

/** Writes an EC signing key, its certificate and a config.yml into `dir`, for `serve --config`. */
export async function writeServerFiles(dir: string, options: ServerFilesOptions): Promise<ServerFiles> {
  const service = options.service ?? 'sts-e2e-registry';
  const issuer = options.issuer ?? 'sts-e2e-issuer';
  const key = await generateSigningKey({ kind: 'ec-p256' });
  await writeFile(join(dir, 'token.key'), key.keyPem, { mode: 0o600 });
  await writeFile(join(dir, 'token.crt'), key.certPem);
  const configPath = join(dir, 'config.yml');
  await writeFile(
    configPath,
    stringify({
      server: { addr: '127.0.0.1:0' },
      token: { issuer, expiration: 300, certificate: 'token.crt', key: 'token.key', services: [service], ...(options.token ?? {}) },
      ...(options.users ? { users: options.users } : {}),
      ...(options.acl ? { acl: options.acl } : {}),
      store: options.store,
      ...(options.refreshTokens ? { refresh_tokens: options.refreshTokens } : {}),
    }),
    { mode: 0o600 },
  );
  return { configPath, service, issuer, certPem: key.certPem };
}

/** The environment for our CLI: the caller's, without any STS_* setting of a developer's. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('STS_')));
  return { ...env, LANG: 'C.UTF-8', ...extra };
}

export interface ServerProcess {
  /** `http://127.0.0.1:<port>` as the server logged it. */
  url: string;
  /** The token endpoint. */
  realm: string;
  pid: number;
  /** The audit events the process has logged on stdout so far (one JSON line each). */
  audit(): AuditEvent[];
  /**
   * The audit events after the first `from`, once there are at least `count` of them. The log
   * line travels through a pipe and may arrive after the HTTP response it describes.
   */
  waitForAudit(from: number, count?: number, timeoutMs?: number): Promise<AuditEvent[]>;
  /** Everything it printed, for failure messages. */
  logs(): string;
  /** Whether the process has exited. */
  exited(): boolean;
  /** Sends `signal` to this PID and waits (up to 10 s) for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** SIGTERM, SIGKILL after 10 s if still running. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const LOG_LIMIT = 4 * 1024 * 1024;

/**
 * `node dist/cli/main.js serve --config <file>` with `STS_ADDR=127.0.0.1:0`: a real server
 * process, as an operator runs it. Resolves once it has logged `listening` with its URL.
 */
export async function startServerProcess(configPath: string, options: { name?: string } = {}): Promise<ServerProcess> {
  const cli = await requireBuiltCli();
  const child: ChildProcess = spawn(process.execPath, [cli, 'serve', '--config', configPath], {
    cwd: dirname(configPath),
    env: cliEnv({ STS_ADDR: '127.0.0.1:0', STS_LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const name = options.name ?? 'sts-docker-auth';
  let output = '';
  let pending = '';
  const events: AuditEvent[] = [];
  let url: string | undefined;
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    if (output.length < LOG_LIMIT) output += text;
    pending += text;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (parsed.msg === 'listening' && typeof parsed.url === 'string') url = parsed.url;
      if (parsed.audit === 'token') events.push(parsed as unknown as AuditEvent);
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    if (output.length < LOG_LIMIT) output += chunk.toString('utf8');
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  const pid = child.pid ?? -1;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const kill = async (signal: NodeJS.Signals) => {
    if (exited()) return;
    try {
      process.kill(pid, signal);
    } catch {
      return; // already gone
    }
    await waitForExit(child, 10_000);
  };
  const stop = async () => {
    await kill('SIGTERM');
    if (!exited()) await kill('SIGKILL');
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (url === undefined) {
    if (spawnError) throw new Error(`cannot start ${name}: ${spawnError.message}`);
    if (exited()) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) during start:\n${output.slice(-4000)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} did not log "listening" within ${START_TIMEOUT_MS} ms:\n${output.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const listening = url;
  return {
    url: listening,
    realm: `${listening}/auth`,
    pid,
    audit: () => [...events],
    async waitForAudit(from, count = 1, timeoutMs = 5_000) {
      const until = Date.now() + timeoutMs;
      while (events.length < from + count) {
        if (Date.now() > until || exited()) {
          throw new Error(`${name}: expected ${count} audit event(s) after #${from}, got ${events.length - from}:\n${output.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      return events.slice(from);
    },
    logs: () => output,
    exited,
    kill,
    stop,
  };
}

export interface CliRun {
  pid: number;
  /** What it printed on stdout so far (a killed run keeps what it printed before). */
  stdout(): string;
  /** Sends a signal to this run's PID (nothing if it has exited). */
  kill(signal: NodeJS.Signals): void;
  /** Resolves when it has exited; `code` is 128+n for a signal n, as a shell reports it. */
  done: Promise<RunResult & { signal: NodeJS.Signals | null }>;
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2 };

/** Starts `node dist/cli/main.js <args>`, stdin written then closed; the handle can kill it. */
export function spawnCli(args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): CliRun {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
  child.stdin.on('error', () => {
    // It may exit (or be killed) before reading stdin; its exit tells the story.
  });
  child.stdin.end(options.stdin ?? '');
  const command = ['sts-docker-auth', ...redactArgs(args)].join(' ');
  const timeoutMs = options.timeoutMs ?? 45_000;
  const done = new Promise<RunResult & { signal: NodeJS.Signals | null }>((resolvePromise) => {
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      stderr += `\n[could not run: ${err.message}]`;
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const exitCode = code ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 0) : 0);
      resolvePromise({ code: exitCode, stdout, stderr, command, signal });
    });
  });
  return {
    pid: child.pid ?? -1,
    stdout: () => stdout,
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(child.pid, signal);
        } catch {
          // exited meanwhile
        }
      }
    },
    done,
  };
}

/** Runs the built CLI to completion (`users add`, `tokens create`…). */
export async function runCli(args: readonly string[], options: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  await requireBuiltCli();
  return spawnCli(args, options).done;
}
