import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { FastifyInstance, FastifyRequest, onResponseHookHandler } from 'fastify';
import { z } from 'zod';
import { IpPatternError, ipRuleMatches, parseClientIp, parseIpRule, type IpRule } from '../authz/acl/ip.js';
import type { ConfigIssue } from '../config/errors.js';
import type { AuditEvent, AuditSink } from '../observability/audit.js';
import type { GrantLabel, Metrics, RouteLabel } from '../observability/metrics.js';

/** The `metrics` section: who may read `<path_prefix>/metrics`. */
export const metricsSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('serve Prometheus metrics at <path_prefix>/metrics'),
    token_file: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe('a file holding a bearer token that lets any address read /metrics (Authorization: Bearer <token>)'),
    allow: z
      .array(z.string().min(1, 'must not be empty'))
      .default(['127.0.0.0/8', '::1'])
      .describe('addresses or CIDRs that may read /metrics without the token; default loopback only; [] for none'),
  })
  .superRefine((section, ctx) => {
    section.allow.forEach((entry, i) => {
      try {
        parseIpRule(entry);
      } catch (err) {
        if (!(err instanceof IpPatternError)) throw err;
        ctx.addIssue({ code: 'custom', path: ['allow', i], message: err.message });
      }
    });
  });

export type MetricsConfig = z.output<typeof metricsSchema>;

/** The metrics section with its token read at start (check-config reports an unreadable file). */
export interface PreparedMetrics {
  /** SHA-256 of the bearer token: compared in constant time, and the token itself is not kept. */
  tokenDigest?: Buffer;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

export async function prepareMetrics(section: MetricsConfig, baseDir: string, issues: ConfigIssue[]): Promise<PreparedMetrics> {
  if (!section.enabled || section.token_file === undefined) return {};
  const file = isAbsolute(section.token_file) ? section.token_file : resolve(baseDir, section.token_file);
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    issues.push({ path: 'metrics.token_file', message: `cannot read ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}` });
    return {};
  }
  if (token.length < 16) {
    issues.push({ path: 'metrics.token_file', message: `${file} must hold a token of at least 16 characters` });
    return {};
  }
  return { tokenDigest: sha256(token) };
}

export interface MetricsRouteOptions {
  pathPrefix: string;
  metrics: Metrics;
  section: MetricsConfig;
  prepared: PreparedMetrics;
}

/**
 * `GET <prefix>/metrics`: Prometheus text. An address in `allow` (the socket's peer, never a
 * header a client could write) reads it as it is; any other needs the bearer token. A refusal says
 * nothing more than 401 or 403.
 */
export async function metricsRoutes(app: FastifyInstance, options: MetricsRouteOptions): Promise<void> {
  const rules: IpRule[] = options.section.allow.map((entry) => parseIpRule(entry));
  const { tokenDigest } = options.prepared;

  const allowed = (request: FastifyRequest): boolean => {
    const peer = parseClientIp(request.socket.remoteAddress);
    return peer !== null && rules.some((rule) => ipRuleMatches(rule, peer));
  };
  const tokenMatches = (header: string | undefined): boolean => {
    if (!tokenDigest || header === undefined) return false;
    const match = /^Bearer +(\S+) *$/i.exec(header);
    // Digests of equal length: the comparison takes the same time whatever the token's length.
    return match !== null && timingSafeEqual(sha256(match[1] as string), tokenDigest);
  };

  app.get(`${options.pathPrefix}/metrics`, async (request, reply) => {
    if (!allowed(request) && !tokenMatches(request.headers.authorization)) {
      reply.header('cache-control', 'no-store');
      if (tokenDigest) return reply.code(401).header('www-authenticate', 'Bearer realm="metrics"').send({ error: 'unauthorized' });
      return reply.code(403).send({ error: 'forbidden' });
    }
    const text = await options.metrics.text();
    return reply.header('content-type', options.metrics.contentType).header('cache-control', 'no-store').send(text);
  });
}

/** Which route a Fastify route pattern is, for the `route` label; computed once per pattern. */
function routeLabelOf(pattern: string, prefix: string): RouteLabel {
  const path = pattern.startsWith(prefix) ? pattern.slice(prefix.length) : pattern;
  if (path === '/auth' || path === '/auth/token') return 'token';
  if (path === '/healthz') return 'healthz';
  if (path === '/readyz') return 'readyz';
  if (path === '/metrics') return 'metrics';
  if (path.startsWith('/api/')) return 'admin';
  if (path === '/login' || path.startsWith('/login/') || path === '/logout') return 'login';
  return 'other';
}

/**
 * The docker grant type of a token request, as the audit line names it: GET and a POST without
 * grant_type are `none`; an unsupported one is `other` (never the client's text).
 */
function grantOf(request: FastifyRequest): GrantLabel {
  if (request.method !== 'POST' || !(request.body instanceof URLSearchParams)) return 'none';
  const grant = request.body.get('grant_type');
  if (grant === null) return 'none';
  return grant === 'password' || grant === 'refresh_token' ? grant : 'other';
}

/**
 * Counts every answered request by route, status and grant type. Each route gets its own
 * onResponse hook with its label worked out once, when the route is added (Fastify's
 * `request.routeOptions` builds a new object at every read); a root hook counts what no route
 * matched. Called on the root instance before any route is registered.
 */
export function countRequests(app: FastifyInstance, metrics: Metrics, pathPrefix: string): void {
  app.addHook('onRoute', (route) => {
    const label = routeLabelOf(route.url, pathPrefix);
    const count: onResponseHookHandler = (request, reply, done) => {
      metrics.countRequest(label, reply.statusCode, label === 'token' ? grantOf(request) : 'none');
      done();
    };
    const existing = route.onResponse;
    route.onResponse = existing === undefined ? [count] : Array.isArray(existing) ? [...existing, count] : [existing, count];
  });
  app.addHook('onResponse', (request, reply, done) => {
    if (request.is404) metrics.countRequest('not_found', reply.statusCode, 'none');
    done();
  });
}

/** An audit sink that also observes each token request's duration by result, then passes it on. */
export function meteredAudit(sink: AuditSink, metrics: Metrics): AuditSink {
  return {
    write(event: AuditEvent): void {
      metrics.observeToken(event.result, event.duration_ms / 1000);
      sink.write(event);
    },
  };
}
