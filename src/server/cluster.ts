import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../observability/logger.js';

/**
 * Cluster mode: one primary process forks `server.workers` workers, each running the whole server
 * on the same listening socket (node:cluster hands incoming connections out round-robin), so that
 * every core signs tokens. The primary serves nothing itself: it keeps the workers running
 * (restarting a crashed one after a back-off), and on SIGTERM or SIGINT asks each to finish its
 * requests in flight and exits once all have.
 *
 * Everything a worker needs is in the config file and the store; workers share nothing in memory
 * (each has its own credential cache, which is safe: a store user's cached password is checked
 * against the store's current row on every request).
 */

/** The environment variable naming, for a worker, the config file the primary loaded. */
export const WORKER_CONFIG_ENV = 'STS_CLUSTER_CONFIG';
/** Set to 1, each worker adds `x-sts-worker-pid` to its responses (for tests and debugging). */
export const WORKER_HEADER_ENV = 'STS_DEBUG_WORKER_HEADER';

/** The message a worker sends the primary once it listens. */
export interface ListeningMessage {
  type: 'sts:listening';
  url: string;
}

export function isListeningMessage(message: unknown): message is ListeningMessage {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'sts:listening';
}

/** How many workers `server.workers` (or `--workers`) asks for: `auto` is one per CPU. */
export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

export interface PrimaryOptions {
  workers: number;
  /** The config file the workers load (the primary has loaded and checked it). */
  configPath: string;
  logger: Logger;
  /** Called once, with the URL, when the first worker listens. */
  onFirstListening?: (url: string) => void;
  /** How long a graceful shutdown may take before the workers are killed; 15 s by default. */
  shutdownTimeoutMs?: number;
}

/** The first restart waits this long; each quick crash doubles it, up to the maximum. */
const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that ran this long before it died is not crash-looping: the back-off starts over. */
const HEALTHY_RUN_MS = 30_000;

/**
 * Runs the primary: forks the workers and looks after them until a signal stops them all, then
 * exits the process (0 when every worker finished cleanly).
 */
export function runPrimary(options: PrimaryOptions): void {
  const { logger } = options;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 15_000;
  let stopping = false;
  let failures = 0;
  let firstListening = true;
  let unclean = false;
  const started = new Map<Worker, number>();

  const fork = () => {
    const worker = cluster.fork({ [WORKER_CONFIG_ENV]: options.configPath });
    started.set(worker, Date.now());
    worker.on('message', (message: unknown) => {
      if (!isListeningMessage(message)) return;
      if (firstListening) {
        firstListening = false;
        options.onFirstListening?.(message.url);
      }
    });
  };

  cluster.on('exit', (worker, code, signal) => {
    const ranMs = Date.now() - (started.get(worker) ?? Date.now());
    started.delete(worker);
    if (stopping) {
      // A worker still starting has no handler yet and dies of the very signal we sent it: it
      // had no requests in flight, so that is a clean stop too.
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGINT') unclean = true;
      logger.info({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker finished');
      if (started.size === 0) process.exit(unclean ? 1 : 0);
      return;
    }
    if (firstListening) {
      // No worker has ever listened: the next one would fail the same way (a port in use, say).
      logger.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'a worker died before listening; stopping');
      stopping = true;
      for (const other of started.keys()) other.process.kill('SIGKILL');
      process.exit(1);
    }
    failures = ranMs >= HEALTHY_RUN_MS ? 1 : failures + 1;
    const delay = Math.min(RESTART_DELAY_MS * 2 ** (failures - 1), MAX_RESTART_DELAY_MS);
    logger.error({ worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker died; starting another');
    setTimeout(() => {
      if (!stopping) fork();
    }, delay).unref();
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers: started.size }, 'shutting down: the workers finish their requests in flight');
    if (started.size === 0) process.exit(0);
    for (const worker of started.keys()) worker.process.kill(signal);
    setTimeout(() => {
      logger.error('the workers did not finish in time; killing them');
      for (const worker of started.keys()) worker.process.kill('SIGKILL');
      process.exit(1);
    }, shutdownTimeoutMs).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // logrotate's SIGUSR2: each worker reopens its audit file. The primary only passes it on (its
  // default action would end the primary).
  process.on('SIGUSR2', () => {
    for (const worker of started.keys()) worker.process.kill('SIGUSR2');
  });
  // SIGHUP reloads the config. Each worker also watches the file itself (as one process does), so
  // the primary needs no copy of the config and no message protocol: it only passes SIGHUP on.
  process.on('SIGHUP', () => {
    for (const worker of started.keys()) worker.process.kill('SIGHUP');
  });

  logger.info({ workers: options.workers, pid: process.pid }, 'cluster primary: starting workers');
  for (let i = 0; i < options.workers; i++) fork();
}
