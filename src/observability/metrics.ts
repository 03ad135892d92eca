import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuthnCallRecorder } from '../authn/chain.js';
import { BackendUnavailableError } from '../authn/errors.js';
import type { AuthnResult } from '../authn/types.js';
import type { AuthzCallRecorder } from '../authz/chain.js';
import { observeCredentialCaches } from '../security/credential-cache.js';
import { StoreUnavailableError } from '../store/types.js';
import type { SigningKey } from '../token/keys.js';
import { CountBuffer, LocalHistogram } from './hot-metrics.js';
import type { Logger } from './logger.js';

/**
 * The Prometheus metrics of one server (docs/monitoring.md lists them). Each server has its own
 * registry, so two servers in one process (tests, embedding) never mix their counts.
 *
 * Every label takes its values from a small fixed set: the route names below, HTTP statuses, the
 * grant types, and the backend names the config produced at start. Nothing a client sends
 * becomes a label value as it is, so a scan of random URLs cannot grow the series without bound.
 * Label children are resolved once and kept, and the series a token request touches count in
 * plain numbers that reach prom-client at the next scrape (hot-metrics.ts), so the hot path does
 * no label hashing.
 */

/** What `/metrics` reports the routes as. */
export type RouteLabel = 'token' | 'healthz' | 'readyz' | 'metrics' | 'admin' | 'login' | 'other' | 'not_found';

/** The grant types of the token endpoint; `none` for GET (and POST without grant_type) and other routes. */
export type GrantLabel = 'password' | 'refresh_token' | 'none' | 'other';

export type AuthnOutcomeLabel = 'identity' | 'no_match' | 'denied' | 'unavailable' | 'error';

export type BackendKind = 'authn' | 'authz';

/** Only these statuses are labelled as they are; any other is reported as its class (`2xx`…`5xx`). */
const KNOWN_STATUSES = new Set([200, 201, 204, 302, 303, 304, 400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 502, 503, 504]);

export function statusLabel(status: number): string {
  if (KNOWN_STATUSES.has(status)) return String(status);
  if (status >= 100 && status < 600) return `${Math.floor(status / 100)}xx`;
  return 'other';
}

function isUnavailable(err: unknown): boolean {
  return err instanceof BackendUnavailableError || err instanceof StoreUnavailableError;
}

/** The seconds since the epoch at which a certificate stops being valid. */
export function certificateExpiry(key: SigningKey): number {
  return Math.floor(Date.parse(key.certificate.validTo) / 1000);
}

/** Warn this long before the signing certificate expires: time to rotate (the registry trusts it). */
export const CERTIFICATE_WARNING_DAYS = 30;

/** Logs a warning at start when the signing certificate expires within 30 days (or has expired). */
export function warnIfCertificateExpiresSoon(key: SigningKey, logger: Logger, nowMs: number = Date.now()): boolean {
  const expiresMs = certificateExpiry(key) * 1000;
  const days = (expiresMs - nowMs) / 86_400_000;
  if (days >= CERTIFICATE_WARNING_DAYS) return false;
  const when = new Date(expiresMs).toISOString();
  logger.warn(
    { kid: key.libtrustKid, expires: when, days_left: Math.max(0, Math.floor(days)) },
    days <= 0
      ? 'the signing certificate has expired: registries reject every token; rotate the key now'
      : `the signing certificate expires in less than ${CERTIFICATE_WARNING_DAYS} days; rotate the key before it does`,
  );
  return true;
}

interface Inc {
  inc(value?: number): void;
}
interface Observe {
  observe(value: number): void;
}

export class Metrics {
  readonly registry = new Registry();

  /** The buffered series of the counters below; a scrape of any of them moves every count in. */
  private readonly counts = new CountBuffer();
  private readonly flushCounts = () => this.counts.flush();

  readonly requests = new Counter({
    name: 'sts_http_requests_total',
    help: 'HTTP requests answered, by route, status and grant type',
    labelNames: ['route', 'status', 'grant_type'] as const,
    registers: [this.registry],
    collect: this.flushCounts,
  });

  readonly tokenDuration = new LocalHistogram({
    name: 'sts_token_request_duration_seconds',
    help: 'Time to answer a token request (parse, authenticate, authorize, sign), by result',
    labelNames: ['result'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly authnResults = new Counter({
    name: 'sts_authn_results_total',
    help: 'Answers of the authentication backends, by backend and outcome',
    labelNames: ['backend', 'outcome'] as const,
    registers: [this.registry],
    collect: this.flushCounts,
  });

  readonly authzDenials = new Counter({
    name: 'sts_authz_denials_total',
    help: 'Requested scopes for which nothing was granted, by the authorizer that decided (none: no rule matched)',
    labelNames: ['authorizer'] as const,
    registers: [this.registry],
  });

  readonly backendDuration = new LocalHistogram({
    name: 'sts_backend_duration_seconds',
    help: 'Time a backend took to answer one call, by kind (authn, authz) and backend',
    labelNames: ['kind', 'backend'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly backendErrors = new Counter({
    name: 'sts_backend_errors_total',
    help: 'Backend calls that threw, by kind, backend and error (unavailable: the upstream is down or slow)',
    labelNames: ['kind', 'backend', 'error'] as const,
    registers: [this.registry],
  });

  readonly cacheLookups = new Counter({
    name: 'sts_credential_cache_lookups_total',
    help: 'Credential cache lookups, by backend and result (hit, miss)',
    labelNames: ['backend', 'result'] as const,
    registers: [this.registry],
    collect: this.flushCounts,
  });

  /**
   * Password requests refused (429) because of earlier bad passwords, by what is locked: `address`
   * (the account from that address) or `account` (the account from every address). The lockout
   * calls `metrics.lockouts.labels(scope).inc()` through its `onRefused` hook.
   */
  readonly lockouts = new Counter({
    name: 'sts_lockouts_total',
    help: 'Password requests refused (429) by a lockout, by scope (address: the account from that address; account: from every address)',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });

  readonly certificateExpiry = new Gauge({
    name: 'sts_signing_certificate_expiry_timestamp_seconds',
    help: 'When the signing certificate expires, in seconds since the epoch, by kid',
    labelNames: ['kid'] as const,
    registers: [this.registry],
  });

  private readinessProbe: (() => Promise<Record<string, 'ok' | 'failed'>>) | undefined;

  /** Asked at each scrape (the checks keep their result for 2 s, so scrapes cannot hammer the store). */
  readonly ready = new Gauge({
    name: 'sts_ready',
    help: 'Whether each readiness check (config, signing_key, store, a backend) passes (1) or fails (0), by check',
    labelNames: ['check'] as const,
    registers: [this.registry],
    collect: async () => {
      const checks = await this.readinessProbe?.();
      for (const [check, state] of Object.entries(checks ?? {})) this.ready.labels(check).set(state === 'ok' ? 1 : 0);
    },
  });

  private readonly requestChildren = new Map<RouteLabel, Map<GrantLabel, Map<number, Inc>>>();
  private readonly durationChildren = new Map<string, Observe>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Counts one answered request; the label child is looked up in nested maps, not hashed. */
  countRequest(route: RouteLabel, status: number, grant: GrantLabel): void {
    let byGrant = this.requestChildren.get(route);
    if (!byGrant) this.requestChildren.set(route, (byGrant = new Map()));
    let byStatus = byGrant.get(grant);
    if (!byStatus) byGrant.set(grant, (byStatus = new Map()));
    let child = byStatus.get(status);
    if (!child) byStatus.set(status, (child = this.counts.of(this.requests, route, statusLabel(status), grant)));
    child.inc();
  }

  observeToken(result: string, seconds: number): void {
    let child = this.durationChildren.get(result);
    if (!child) this.durationChildren.set(result, (child = this.tokenDuration.labels(result)));
    child.observe(seconds);
  }

  /** The children of one authentication backend's series, resolved once. */
  authnRecorder(backend: string): AuthnCallRecorder {
    const outcomes: Record<AuthnResult['outcome'], Inc> = {
      identity: this.counts.of(this.authnResults, backend, 'identity'),
      'no-match': this.counts.of(this.authnResults, backend, 'no_match'),
      denied: this.counts.of(this.authnResults, backend, 'denied'),
    };
    const unavailable = this.authnResults.labels(backend, 'unavailable');
    const error = this.authnResults.labels(backend, 'error');
    const duration = this.backendDuration.labels('authn', backend);
    const errors = { unavailable: this.backendErrors.labels('authn', backend, 'unavailable'), internal: this.backendErrors.labels('authn', backend, 'internal') };
    return {
      answered(outcome, seconds) {
        outcomes[outcome].inc();
        duration.observe(seconds);
      },
      failed(err, seconds) {
        const down = isUnavailable(err);
        (down ? unavailable : error).inc();
        (down ? errors.unavailable : errors.internal).inc();
        duration.observe(seconds);
      },
    };
  }

  /** The children of one authorizer's series, resolved once. */
  authzRecorder(authorizer: string): AuthzCallRecorder {
    const duration = this.backendDuration.labels('authz', authorizer);
    const errors = { unavailable: this.backendErrors.labels('authz', authorizer, 'unavailable'), internal: this.backendErrors.labels('authz', authorizer, 'internal') };
    const denials = this.authzDenials.labels(authorizer);
    return {
      answered: (seconds) => duration.observe(seconds),
      failed(err, seconds) {
        (isUnavailable(err) ? errors.unavailable : errors.internal).inc();
        duration.observe(seconds);
      },
      denied: () => denials.inc(),
    };
  }

  /**
   * Counts the lookups of every credential cache in the process under the backend that asked;
   * a name not in `backends` counts as `other`. Returns the function that stops counting.
   */
  countCacheLookups(backends: Iterable<string>): () => void {
    const children = new Map<string, { hit: Inc; miss: Inc }>();
    const childrenOf = (name: string) => ({ hit: this.counts.of(this.cacheLookups, name, 'hit'), miss: this.counts.of(this.cacheLookups, name, 'miss') });
    for (const name of backends) children.set(name, childrenOf(name));
    const other = childrenOf('other');
    return observeCredentialCaches({
      lookup(backend, hit) {
        // Some backends key their cache by name, then \0 and more (the webhook adds the service and address).
        const cut = backend.indexOf('\0');
        const series = children.get(cut < 0 ? backend : backend.slice(0, cut)) ?? other;
        (hit ? series.hit : series.miss).inc();
      },
    });
  }

  /** Where `sts_ready` comes from: the readiness checks of /readyz. */
  watchReadiness(probe: () => Promise<Record<string, 'ok' | 'failed'>>): void {
    this.readinessProbe = probe;
  }

  /** The signing key's certificate; a key that no longer signs leaves the gauge. */
  setCertificate(key: SigningKey): void {
    this.certificateExpiry.reset();
    this.certificateExpiry.labels(key.libtrustKid).set(certificateExpiry(key));
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
