import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary } from './require-binary.js';

export interface RegistryOptions {
  /** The token server's absolute URL (our `/auth`). */
  realm: string;
  /** The registry's `service`: the `aud` it expects in tokens. */
  service: string;
  /** The `iss` it expects. */
  issuer: string;
  /** PEM certificate(s) trusted to sign tokens (`rootcertbundle`). */
  certPem: string;
  /** An `auth:` block to use verbatim instead of the generated one (e.g. `registry-config` output). */
  authBlock?: string;
}

export interface RunningRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>`, the host part of image references. */
  host: string;
  /** The filesystem driver's root, to check what the registry really stored. */
  storageDir: string;
  /** Whether the registry's storage holds `repo:tag` (read from disk, so no auth is involved). */
  hasTag(repo: string, tag: string): Promise<boolean>;
  /** The registry's captured stdout and stderr, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 15_000;
const LOG_LIMIT = 64 * 1024;

export { freePort } from '../../helpers/free-port.js';
import { freePort } from '../../helpers/free-port.js';

/**
 * distribution reads every REGISTRY_* variable as configuration overriding its file (even skopeo's
 * REGISTRY_AUTH_FILE, which it would take as an unknown key), so the child must not inherit any.
 */
export function registryEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.toUpperCase().startsWith('REGISTRY_')));
}

function configYaml(dir: string, port: number, options: RegistryOptions): string {
  const q = (s: string) => JSON.stringify(s);
  return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${q(join(dir, 'storage'))}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${q(`127.0.0.1:${port}`)}
  secret: ${q(randomBytes(24).toString('hex'))}
${
  options.authBlock ??
  `auth:
  token:
    realm: ${q(options.realm)}
    service: ${q(options.service)}
    issuer: ${q(options.issuer)}
    rootcertbundle: ${q(join(dir, 'token-bundle.crt'))}
`
}`;
}

/** Whether the child exited within `ms` (true at once if it already has). */
export function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM to the child's own PID, SIGKILL after 5 s; resolves once it has exited. */
export async function killChild(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  if (await waitForExit(child, 5_000)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(child, 5_000);
}

/** Starts once on a given port; resolves when `GET /v2/` answers the 401 challenge. */
async function startOnce(binary: string, dir: string, options: RegistryOptions): Promise<RunningRegistry> {
  const port = await freePort();
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, configYaml(dir, port, options));
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;

  let output = '';
  const capture = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > LOG_LIMIT) output = output.slice(-LOG_LIMIT);
  };
  const child = spawn(binary, ['serve', configPath], {
    cwd: dir,
    env: registryEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  const storageDir = join(dir, 'storage');
  const registry: RunningRegistry = {
    url,
    host,
    storageDir,
    async hasTag(repo, tag) {
      const link = join(storageDir, 'docker/registry/v2/repositories', repo, '_manifests/tags', tag, 'current/link');
      try {
        await access(link);
        return true;
      } catch {
        return false;
      }
    },
    logs: () => output,
    stop: () => killChild(child),
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastStatus = 'no answer';
  while (Date.now() < deadline) {
    if (spawnError) throw new Error(`cannot start ${binary}: ${spawnError.message}`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw Object.assign(new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) during start:\n${output}`), {
        addressInUse: /address already in use/i.test(output),
      });
    }
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      lastStatus = `HTTP ${res.status}`;
      // 401 proves both that it listens and that token auth is on (a 200 would mean an open registry).
      if (res.status === 401) return registry;
    } catch (err) {
      lastStatus = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await killChild(child);
  throw new Error(`docker-registry did not answer GET /v2/ with 401 within ${START_TIMEOUT_MS} ms (last: ${lastStatus}):\n${output}`);
}

/**
 * Runs Debian's distribution 2.8 (`docker-registry serve`) with token auth against our server, in a
 * temporary folder that stop() removes.
 */
export async function startRegistry(options: RegistryOptions): Promise<RunningRegistry> {
  const binary = await requireBinary('docker-registry');
  const dir = await mkdtemp(join(tmpdir(), 'sts-e2e-registry-'));
  try {
    await writeFile(join(dir, 'token-bundle.crt'), options.certPem);
    // The free port can be taken between probing and binding; a few tries make that race harmless.
    for (let attempt = 1; ; attempt++) {
      try {
        const registry = await startOnce(binary, dir, options);
        return {
          ...registry,
          async stop() {
            await registry.stop();
            await rm(dir, { recursive: true, force: true });
          },
        };
      } catch (err) {
        if (attempt >= 3 || !(err as { addressInUse?: boolean }).addressInUse) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
