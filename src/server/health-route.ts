import { sign, verify } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from '../authn/types.js';
import type { Logger } from '../observability/logger.js';
import type { Store } from '../store/types.js';
import type { SigningKey } from '../token/keys.js';

/** Probes closer together than this are answered from the last result: they cannot hammer the store. */
export const READINESS_CACHE_MS = 2000;
/** The most a store ping may take before the store counts as unreachable. */
export const STORE_PING_TIMEOUT_MS = 1000;
/** The most a backend's own check may take (each backend also has its own timeout). */
export const BACKEND_CHECK_TIMEOUT_MS = 3000;

export interface ReadinessReport {
  ready: boolean;
  /** Each check and whether it passed; a check's reason goes to the log only. */
  checks: Record<string, 'ok' | 'failed'>;
  failed: string[];
}

class TimeoutError extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Signs and verifies a few bytes: the key is usable (and the certificate still valid). The test
 * signature is made once per key: a keyring moves on to a new key while the process runs.
 */
export function signingKeyProblem(key: SigningKey, nowMs: number = Date.now()): string | undefined {
  try {
    const data = Buffer.from('sts-docker-auth readiness');
    const hash = key.alg === 'ES384' ? 'sha384' : key.alg === 'ES512' ? 'sha512' : 'sha256';
    const signature = sign(hash, data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    if (!verify(hash, data, { key: key.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) return 'a test signature did not verify';
  } catch (err) {
    return `cannot sign: ${(err as Error).message}`;
  }
  if (Date.parse(key.certificate.validTo) <= nowMs) return `the signing certificate expired on ${key.certificate.validTo}`;
  return undefined;
}

export interface ReadinessOptions {
  /** The key that signs now. */
  signingKey: () => SigningKey;
  store: Store | undefined;
  /** The authenticators; those with `ready()` are checked. */
  authenticators: readonly Authenticator[];
  logger: Logger;
  now?: () => number;
}

/** The readiness checks, each result kept for READINESS_CACHE_MS. */
export class Readiness {
  private tested: { key: SigningKey; problem: string | undefined } | undefined;
  private last: { at: number; report: Promise<ReadinessReport> } | undefined;
  private readonly failing = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly options: ReadinessOptions) {
    this.now = options.now ?? Date.now;
    this.keyProblem();
  }

  private keyProblem(): string | undefined {
    const key = this.options.signingKey();
    if (this.tested?.key !== key) this.tested = { key, problem: signingKeyProblem(key, this.now()) };
    if (this.tested.problem) return this.tested.problem;
    return Date.parse(key.certificate.validTo) <= this.now() ? `the signing certificate expired on ${key.certificate.validTo}` : undefined;
  }

  check(): Promise<ReadinessReport> {
    const now = this.now();
    if (this.last && now - this.last.at < READINESS_CACHE_MS) return this.last.report;
    const report = this.run();
    this.last = { at: now, report };
    return report;
  }

  private async run(): Promise<ReadinessReport> {
    const probes: Array<[string, () => Promise<void>]> = [];
    const { store } = this.options;
    if (store) probes.push(['store', () => withTimeout(store.ping(), STORE_PING_TIMEOUT_MS, 'the store')]);
    for (const backend of this.options.authenticators) {
      const ready = backend.ready?.bind(backend);
      if (ready) probes.push([backend.name, () => withTimeout(ready(), BACKEND_CHECK_TIMEOUT_MS, `backend ${backend.name}`)]);
    }
    const results = await Promise.all(
      probes.map(async ([name, probe]) => {
        try {
          await probe();
          return [name, undefined] as const;
        } catch (err) {
          return [name, err instanceof Error ? err.message : String(err)] as const;
        }
      }),
    );
    const problems: Array<readonly [string, string | undefined]> = [['config', undefined], ['signing_key', this.keyProblem()], ...results];
    const checks: Record<string, 'ok' | 'failed'> = {};
    const failed: string[] = [];
    for (const [name, problem] of problems) {
      checks[name] = problem === undefined ? 'ok' : 'failed';
      if (problem === undefined) {
        if (this.failing.delete(name)) this.options.logger.info({ check: name }, 'readiness check passes again');
        continue;
      }
      failed.push(name);
      // Logged when a check starts failing, not at every probe.
      if (!this.failing.has(name)) this.options.logger.warn({ check: name, reason: problem }, 'readiness check failed');
      this.failing.add(name);
    }
    return { ready: failed.length === 0, checks, failed };
  }
}

/** `<prefix>/healthz` (the process answers) and `<prefix>/readyz` (it can issue tokens). */
export async function healthRoutes(app: FastifyInstance, options: { pathPrefix: string; readiness: Readiness }): Promise<void> {
  app.get(`${options.pathPrefix}/healthz`, async () => ({ status: 'ok' }));
  app.get(`${options.pathPrefix}/readyz`, async (_request, reply) => {
    const report = await options.readiness.check();
    reply.header('cache-control', 'no-store');
    if (report.ready) return { status: 'ok', checks: report.checks };
    return reply.code(503).send({ status: 'unavailable', failed: report.failed, checks: report.checks });
  });
}
