import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The command line with passwords masked, for failure messages. */
  command: string;
}

export interface RunOptions {
  /** Written to the child's stdin, then closed (podman/skopeo login --password-stdin). */
  stdin?: string;
  /** Another auth file than the session's own (e.g. a second user's login). */
  authFile?: string;
  timeoutMs?: number;
}

export interface ClientSession {
  /** The session's temporary folder. */
  dir: string;
  /** The session's default auth file (REGISTRY_AUTH_FILE / --authfile). */
  authFile: string;
  /** A fresh auth file path in the session folder, for a second identity. */
  authFileFor(name: string): string;
  skopeo(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  podman(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  cleanup(): Promise<void>;
}

// Below the per-case timeouts, so a hung client is killed and reported rather than left behind.
const DEFAULT_TIMEOUT_MS = 45_000;
// Flags whose next argument is a secret, and `user:password` pairs (ctr's --user too).
const SECRET_FLAGS = new Set(['--creds', '--src-creds', '--dest-creds', '-p', '--password', '--user', '--refresh']);
const PAIR_FLAGS = new Set(['--creds', '--src-creds', '--dest-creds', '--user']);

/** The command line with every password replaced, for failure messages. */
export function redactArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const previous = i > 0 ? (args[i - 1] ?? '') : '';
    const eq = arg.indexOf('=');
    if (SECRET_FLAGS.has(previous)) out.push(PAIR_FLAGS.has(previous) ? arg.replace(/:.*$/, ':***') : '***');
    else if (eq > 0 && SECRET_FLAGS.has(arg.slice(0, eq))) out.push(`${arg.slice(0, eq)}=***`);
    else out.push(arg);
  }
  return out;
}

/** What ran and how it ended, without secrets: the message for `expect(result.code, explain(result))`. */
export function explain(result: RunResult): string {
  return `${result.command} → exit ${result.code}\nstdout: ${result.stdout.trim()}\nstderr: ${result.stderr.trim()}`;
}

/** Runs a binary without a shell and always resolves with its exit code and output. */
export function run(binary: string, args: readonly string[], env: NodeJS.ProcessEnv, options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      [...args],
      { env, timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) {
          const raw = (error as NodeJS.ErrnoException & { code?: unknown }).code;
          // A number is the exit status; a string (ENOENT…) means it never ran; a kill has neither.
          code = typeof raw === 'number' ? raw : 127;
          if (error.killed) stderr += `\n[killed after ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms]`;
          else if (typeof raw === 'string') stderr += `\n[could not run ${binary}: ${raw}]`;
        }
        resolve({ code, stdout, stderr, command: [binary, ...redactArgs(args)].join(' ') });
      },
    );
    child.stdin?.on('error', () => {
      // The child may exit before reading stdin; its exit code tells the story.
    });
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
    else child.stdin?.end();
  });
}

/**
 * A private world for skopeo and podman: auth files, signature policy, podman's storage and HOME
 * all live in one temporary folder, so tests never read or write the machine's credentials or
 * images. (Both clients still share the root-only blob-location cache under
 * /var/lib/containers/cache; its entries are keyed by registry host:port, which is new per test.)
 */
export async function createClientSession(): Promise<ClientSession> {
  const dir = await mkdtemp(join(tmpdir(), 'sts-e2e-clients-'));
  const authFile = join(dir, 'auth.json');
  const policy = join(dir, 'policy.json');
  const home = join(dir, 'home');
  const podmanDirs = { root: join(dir, 'podman-root'), runroot: join(dir, 'podman-run'), tmp: join(dir, 'podman-tmp') };
  await Promise.all([home, ...Object.values(podmanDirs)].map((d) => mkdir(d, { recursive: true })));
  // The test images are unsigned; this policy is what the machine's default usually says anyway.
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));

  const env = (auth: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    TMPDIR: podmanDirs.tmp,
    XDG_RUNTIME_DIR: podmanDirs.runroot,
    XDG_CONFIG_HOME: join(home, '.config'),
    REGISTRY_AUTH_FILE: auth,
    LANG: 'C.UTF-8',
  });

  return {
    dir,
    authFile,
    authFileFor: (name) => join(dir, `auth-${name.replace(/[^A-Za-z0-9_-]/g, '_')}.json`),
    skopeo(args, options = {}) {
      const auth = options.authFile ?? authFile;
      return run('skopeo', ['--policy', policy, '--tmpdir', podmanDirs.tmp, ...args], env(auth), options);
    },
    podman(args, options = {}) {
      const auth = options.authFile ?? authFile;
      const global = [
        '--root', podmanDirs.root,
        '--runroot', podmanDirs.runroot,
        '--tmpdir', podmanDirs.tmp,
        '--storage-driver', 'vfs',
        '--cgroup-manager', 'cgroupfs',
        '--events-backend', 'file',
      ];
      // pull and push take the signature policy as a (hidden) subcommand flag, not a global one.
      const [command, ...rest] = args;
      const withPolicy = command === 'pull' || command === 'push' ? [command, '--signature-policy', policy, ...rest] : [...args];
      return run('podman', [...global, ...withPolicy], env(auth), options);
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
