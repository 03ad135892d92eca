import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** How an external program ended. */
export interface ProgramResult {
  /** The exit status, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The start of what it wrote to stderr, for the log when it fails. */
  stderr: string;
  pid: number | undefined;
}

export interface RunOptions {
  /** The program is killed (its whole process group) when it runs longer than this. */
  timeoutMs: number;
  /** The most stdout kept; a program writing more is killed and the run fails. */
  maxStdout?: number;
  /** The environment; by default ours (never holding a secret: secrets travel on stdin only). */
  env?: NodeJS.ProcessEnv;
}

/** The program could not be run, ran too long, or wrote too much. */
export class ProgramError extends Error {
  override name = 'ProgramError';
  constructor(
    readonly kind: 'spawn' | 'timeout' | 'output',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const DEFAULT_MAX_STDOUT = 64 * 1024;
const MAX_STDERR = 4 * 1024;
/** How long the pipes may stay open after the program exits before its group is killed. */
const LINGER_MS = 100;
/** After SIGKILL the kernel ends the process at once; this only guards against a lost exit event. */
const REAP_GRACE_MS = 2_000;

/**
 * Runs `command args...` without a shell, writes `input` to its stdin and closes it, and collects
 * stdout. The program leads its own process group, so a timeout kills it together with anything
 * it started (a shell script's `sleep`, say), and the run settles only once the program has been
 * reaped: no stray process outlives the request.
 */
export function runProgram(command: string, args: readonly string[], input: string, options: RunOptions): Promise<ProgramResult> {
  const maxStdout = options.maxStdout ?? DEFAULT_MAX_STDOUT;
  return new Promise((resolvePromise, reject) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: options.env ?? process.env, shell: false });
    } catch (err) {
      reject(new ProgramError('spawn', `cannot run ${command}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    const pid = child.pid;
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let failure: ProgramError | undefined;
    let settled = false;

    const killGroup = () => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const finish = (result: ProgramResult | ProgramError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(reapTimer);
      if (result instanceof ProgramError) reject(result);
      else resolvePromise(result);
    };
    let reapTimer: NodeJS.Timeout | undefined;
    const fail = (error: ProgramError) => {
      if (failure) return;
      failure = error;
      if (child.exitCode !== null || child.signalCode !== null) {
        // Already reaped; only its pipes were open.
        killGroup();
        finish(error);
        return;
      }
      killGroup();
      // Settle when the exit event says the process is reaped; the grace timer is a backstop.
      reapTimer = setTimeout(() => finish(error), REAP_GRACE_MS);
      reapTimer.unref();
    };
    const timer = setTimeout(() => fail(new ProgramError('timeout', `${command} did not finish within ${options.timeoutMs} ms`)), options.timeoutMs);

    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxStdout) {
        fail(new ProgramError('output', `${command} wrote more than ${maxStdout} bytes to stdout`));
        return;
      }
      stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += chunk.toString('utf8').slice(0, MAX_STDERR - stderr.length);
    });
    // A program that exits without reading its stdin makes the write fail with EPIPE: its exit
    // status is what counts, not our write.
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => {
      // Spawning failed (ENOENT, EACCES); no exit event follows.
      if (failure) finish(failure);
      else finish(new ProgramError('spawn', `cannot run ${command}: ${err.message}`, { cause: err }));
    });
    let lingerTimer: NodeJS.Timeout | undefined;
    child.on('exit', () => {
      if (failure) {
        finish(failure);
        return;
      }
      // The pipes normally close right after the exit. If they stay open, something it left in its
      // group (a background job) holds them: that goes too, so that the run ends. While a member
      // holds them the group exists, so its id cannot have been reused by another process.
      lingerTimer = setTimeout(killGroup, LINGER_MS);
      lingerTimer.unref();
    });
    child.on('close', (code, signal) => {
      clearTimeout(lingerTimer);
      if (failure) finish(failure);
      else finish({ code, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr, pid });
    });
    child.stdin.end(input);
  });
}

/**
 * Finds the program a config names, as docker_auth's exec.LookPath does: a name with a slash is a
 * path (relative to the config file's folder here), a bare name is searched on PATH. Done at start,
 * so that `check-config` reports a missing or non-executable program.
 */
export async function resolveCommand(command: string, baseDir: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (command.includes('/')) {
    const full = isAbsolute(command) ? command : resolve(baseDir, command);
    await checkExecutable(full);
    return full;
  }
  const dirs = (env.PATH ?? '').split(delimiter).filter((d) => d !== '' && isAbsolute(d));
  for (const dir of dirs) {
    const full = join(dir, command);
    try {
      await checkExecutable(full);
      return full;
    } catch {
      // Try the next folder.
    }
  }
  throw new Error(`${JSON.stringify(command)} was not found on PATH (${dirs.join(delimiter) || 'empty'})`);
}

async function checkExecutable(path: string): Promise<void> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
  if (!info.isFile()) throw new Error(`${path} is not a file`);
  try {
    await access(path, constants.X_OK);
  } catch (err) {
    throw new Error(`${path} is not executable`, { cause: err });
  }
}
