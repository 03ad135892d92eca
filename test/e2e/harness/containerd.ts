import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from './clients.js';
import { killChild } from './registry.js';
import { requireBinaries, requireRoot } from './require-binary.js';

export interface ContainerdDaemon {
  /** The daemon's temporary folder (root, state, socket, config). */
  dir: string;
  /** The gRPC socket, for `ctr --address`. */
  address: string;
  /** The daemon's PID, the only process stop() signals. */
  pid: number;
  /** `ctr --address <socket> --namespace sts-e2e …`. */
  ctr(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** The daemon's captured output, for failure messages. */
  logs(): string;
  /** SIGTERM (then SIGKILL) to the daemon's PID, then removes its folder. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 20_000;
const LOG_LIMIT = 64 * 1024;
export const CTR_NAMESPACE = 'sts-e2e';

/**
 * A private containerd (Debian's 1.6): its own root, state, socket and config in a temporary
 * folder, the CRI plugin disabled (no kubelet, no CNI), so it neither touches nor sees the
 * machine's containerd. Must run as root.
 */
export async function startContainerd(): Promise<ContainerdDaemon> {
  requireRoot('a private containerd daemon');
  const bins = await requireBinaries(['containerd', 'ctr']);
  const containerd = bins.containerd as string;
  const ctrBinary = bins.ctr as string;
  const dir = await mkdtemp(join(tmpdir(), 'sts-e2e-containerd-'));
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const address = join(dir, 'containerd.sock');
  const configPath = join(dir, 'config.toml');
  const q = (s: string) => JSON.stringify(s);
  await writeFile(
    configPath,
    `version = 2
root = ${q(root)}
state = ${q(state)}
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = ${q(address)}

[ttrpc]
  address = ${q(`${address}.ttrpc`)}

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(dir, 'opt'))}
`,
  );

  let output = '';
  const child = spawn(containerd, ['--config', configPath, '--root', root, '--state', state, '--address', address], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const capture = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > LOG_LIMIT) output = output.slice(-LOG_LIMIT);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  const ctrEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: dir, LANG: 'C.UTF-8' };
  const daemon: ContainerdDaemon = {
    dir,
    address,
    pid: child.pid ?? -1,
    ctr: (args, options = {}) => run(ctrBinary, ['--address', address, '--namespace', CTR_NAMESPACE, ...args], ctrEnv, options),
    logs: () => output,
    async stop() {
      await killChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    let last = 'no answer';
    for (;;) {
      if (spawnError) throw new Error(`cannot start ${containerd}: ${spawnError.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`containerd exited (${child.exitCode ?? child.signalCode}) during start:\n${output.slice(-4000)}`);
      }
      if (/containerd successfully booted/.test(output)) {
        const version = await daemon.ctr(['version'], { timeoutMs: 5_000 });
        if (version.code === 0) return daemon;
        last = version.stderr.trim();
      }
      if (Date.now() > deadline) throw new Error(`containerd did not answer within ${START_TIMEOUT_MS} ms (last: ${last}):\n${output.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await daemon.stop();
    throw err;
  }
}
