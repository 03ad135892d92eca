import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { certificateExpiry, warnIfCertificateExpiresSoon } from '../../src/observability/metrics.js';
import { createServer, type StsServer } from '../../src/server/app.js';
import { baseConfig, hash, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, MemoryAudit, startInProcess } from '../helpers/server.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const TOKEN = 'metrics-bearer-token-0123456789';

let keys: KeyDir;
let server: StsServer;

/** Every sample of a metric in Prometheus text: labels (as parsed) and value. */
function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const match = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const m of (match[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1] as string] = m[2] as string;
    out.push({ labels, value: Number(match[2]) });
  }
  return out;
}

function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const found = samples(text, name).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found?.value ?? 0;
}

async function scrape(target: StsServer = server): Promise<string> {
  const res = await target.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain/);
  return res.body;
}

const get = (query: string, authorization?: string) =>
  server.app.inject({ method: 'GET', url: `/auth?${query}`, headers: authorization ? { authorization } : {} });
const post = (payload: string) => server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload });

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  const users = { alice: { password: await hash('alice-pw') } };
  const acl = [{ match: { account: 'alice', name: 'team/*' }, actions: ['pull'] }];
  ({ server } = await startInProcess(keys, baseConfig({ users, acl, store: { path: 'store.db' } })));
});

afterAll(async () => {
  await server.close();
  await keys.cleanup();
});

describe('/metrics counters', () => {
  it('move as expected after token requests of each grant type', async () => {
    const before = await scrape();
    const tokenReq = (grant: string, status: string) => value(before, 'sts_http_requests_total', { route: 'token', grant_type: grant, status });
    const start = {
      get200: tokenReq('none', '200'),
      get401: tokenReq('none', '401'),
      password: tokenReq('password', '200'),
      refresh: tokenReq('refresh_token', '200'),
      other: tokenReq('other', '400'),
    };

    expect((await get('service=test-registry&scope=repository:team/app:pull', basic('alice', 'alice-pw'))).statusCode).toBe(200);
    expect((await get('service=test-registry', basic('alice', 'wrong'))).statusCode).toBe(401);
    expect((await get('service=test-registry')).statusCode).toBe(401);
    const login = await post('grant_type=password&username=alice&password=alice-pw&service=test-registry&access_type=offline&client_id=t');
    expect(login.statusCode).toBe(200);
    const refreshToken = login.json().refresh_token as string;
    expect(refreshToken).toBeTruthy();
    const refreshed = await post(`grant_type=refresh_token&refresh_token=${encodeURIComponent(refreshToken)}&service=test-registry&client_id=t&scope=repository:team/app:pull`);
    expect(refreshed.statusCode).toBe(200);
    expect((await post('grant_type=authorization_code&code=x&service=test-registry&client_id=t')).statusCode).toBe(400);
    // Asked for push where the rules give pull only: denied by the acl; no rule for other/x.
    await get('service=test-registry&scope=repository:team/app:push', basic('alice', 'alice-pw'));
    await get('service=test-registry&scope=repository:other/x:pull', basic('alice', 'alice-pw'));
    expect((await server.app.inject({ method: 'GET', url: '/no/such/path' })).statusCode).toBe(404);

    const after = await scrape();
    const now = (grant: string, status: string) => value(after, 'sts_http_requests_total', { route: 'token', grant_type: grant, status });
    expect(now('none', '200') - start.get200).toBe(3);
    expect(now('none', '401') - start.get401).toBe(2);
    expect(now('password', '200') - start.password).toBe(1);
    expect(now('refresh_token', '200') - start.refresh).toBe(1);
    expect(now('other', '400') - start.other).toBe(1);
    expect(value(after, 'sts_http_requests_total', { route: 'not_found', status: '404' })).toBeGreaterThanOrEqual(1);
    expect(value(after, 'sts_http_requests_total', { route: 'metrics', status: '200' })).toBeGreaterThanOrEqual(1);

    // Authentication by backend and outcome.
    expect(value(after, 'sts_authn_results_total', { backend: 'static', outcome: 'identity' })).toBeGreaterThanOrEqual(4);
    expect(value(after, 'sts_authn_results_total', { backend: 'static', outcome: 'denied' })).toBeGreaterThanOrEqual(1);
    expect(value(after, 'sts_authn_results_total', { backend: 'refresh-token', outcome: 'identity' })).toBeGreaterThanOrEqual(1);
    expect(value(after, 'sts_backend_duration_seconds_count', { kind: 'authn', backend: 'static' })).toBeGreaterThanOrEqual(5);
    expect(value(after, 'sts_backend_duration_seconds_count', { kind: 'authz', backend: 'acl' })).toBeGreaterThanOrEqual(3);

    // Authorization denials: one by the acl rule (push asked, pull given), one by no rule at all.
    expect(value(after, 'sts_authz_denials_total', { authorizer: 'acl' }) - value(before, 'sts_authz_denials_total', { authorizer: 'acl' })).toBe(1);
    expect(value(after, 'sts_authz_denials_total', { authorizer: 'none' }) - value(before, 'sts_authz_denials_total', { authorizer: 'none' })).toBe(1);

    // Token latency histogram, by result.
    expect(value(after, 'sts_token_request_duration_seconds_count', { result: 'issued' }) - value(before, 'sts_token_request_duration_seconds_count', { result: 'issued' })).toBe(5);
    expect(value(after, 'sts_token_request_duration_seconds_count', { result: 'unauthorized' })).toBeGreaterThanOrEqual(2);

    // Static users' passwords are remembered: the same password again is a cache hit.
    expect(value(after, 'sts_credential_cache_lookups_total', { backend: 'static', result: 'hit' })).toBeGreaterThanOrEqual(1);
    expect(value(after, 'sts_credential_cache_lookups_total', { backend: 'static', result: 'miss' })).toBeGreaterThanOrEqual(1);
  });

  it('report the signing certificate expiry, readiness, lockouts and process metrics', async () => {
    const text = await scrape();
    expect(value(text, 'sts_signing_certificate_expiry_timestamp_seconds', { kid: server.signer.key.libtrustKid })).toBe(certificateExpiry(server.signer.key));
    expect(value(text, 'sts_ready', { check: 'store' })).toBe(1);
    expect(value(text, 'sts_ready', { check: 'signing_key' })).toBe(1);
    expect(text).toContain('# TYPE sts_lockouts_total counter');
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('keeps label cardinality fixed whatever clients send', async () => {
    for (let i = 0; i < 15; i++) {
      const junk = `x${i}-${Math.random().toString(36).slice(2)}`;
      await server.app.inject({ method: 'GET', url: `/${junk}` });
      await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: `grant_type=${junk}&service=test-registry` });
      await server.app.inject({ method: 'GET', url: `/auth?service=test-registry&scope=repository:${junk}:pull`, headers: { authorization: basic(junk, junk) } });
    }
    const text = await scrape();
    expect(text).not.toMatch(/x\d+-[a-z0-9]{5,}/);
    const requests = samples(text, 'sts_http_requests_total');
    for (const s of requests) {
      expect(['token', 'healthz', 'readyz', 'metrics', 'admin', 'login', 'other', 'not_found']).toContain(s.labels.route);
      expect(['password', 'refresh_token', 'none', 'other']).toContain(s.labels.grant_type);
      expect(s.labels.status).toMatch(/^(\d{3}|[1-5]xx)$/);
    }
    expect(requests.length).toBeLessThan(30);
    const authn = samples(text, 'sts_authn_results_total');
    for (const s of authn) expect(['access-token', 'refresh-token', 'static', 'store']).toContain(s.labels.backend);
  });
});

describe('/metrics access', () => {
  let locked: StsServer;
  let open: StsServer;
  let off: StsServer;

  beforeAll(async () => {
    await writeFile(join(keys.dir, 'metrics.token'), `${TOKEN}\n`);
    const base = baseConfig({ users: {}, acl: [] });
    ({ server: locked } = await startInProcess(keys, { ...base, metrics: { token_file: 'metrics.token', allow: [] } }));
    ({ server: open } = await startInProcess(keys, { ...base, metrics: { allow: ['10.0.0.0/8', '::1', '127.0.0.1'] } }));
    ({ server: off } = await startInProcess(keys, { ...base, metrics: { enabled: false } }));
  });
  afterAll(async () => {
    await Promise.all([locked.close(), open.close(), off.close()]);
  });

  it('needs the bearer token from an address not allowed: 401 with no details', async () => {
    const none = await locked.app.inject({ method: 'GET', url: '/metrics' });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toEqual({ error: 'unauthorized' });
    expect(none.headers['www-authenticate']).toBe('Bearer realm="metrics"');
    for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
      const wrong = await locked.app.inject({ method: 'GET', url: '/metrics', headers: { authorization } });
      expect(wrong.statusCode, authorization).toBe(401);
      expect(wrong.body).not.toContain('sts_');
    }
    const right = await locked.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(right.statusCode).toBe(200);
    expect(right.body).toContain('sts_http_requests_total');
  });

  it('refuses an address outside allow with 403 when no token is configured; allows one inside', async () => {
    const outside = await open.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7' });
    expect(outside.statusCode).toBe(403);
    expect(outside.json()).toEqual({ error: 'forbidden' });
    // A forwarded header is never believed for /metrics.
    const spoofed = await open.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '192.0.2.7', headers: { 'x-forwarded-for': '10.1.2.3' } });
    expect(spoofed.statusCode).toBe(403);
    expect((await open.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.1.2.3' })).statusCode).toBe(200);
    expect((await open.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '::ffff:10.1.2.3' })).statusCode).toBe(200);
  });

  it('allows loopback only by default', async () => {
    expect((await server.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '127.0.0.1' })).statusCode).toBe(200);
    expect((await server.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '::1' })).statusCode).toBe(200);
    expect((await server.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.1.2.3' })).statusCode).toBe(403);
  });

  it('is not served when disabled', async () => {
    expect((await off.app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(404);
    expect(off.metrics).toBeUndefined();
  });

  it('reports a bad allow entry and an unreadable token file at load, with the key path', async () => {
    const base = baseConfig({ users: {}, acl: [] });
    await expect(startInProcess(keys, { ...base, metrics: { allow: ['not-an-ip'] } })).rejects.toThrow(/metrics\.allow\[0\]/);
    await expect(startInProcess(keys, { ...base, metrics: { token_file: 'missing.token' } })).rejects.toThrow(/metrics\.token_file/);
  });
});

describe('lockouts', () => {
  it('are counted by scope when a locked-out address is refused', async () => {
    const users = { bob: { password: await hash('bob-pw') } };
    const { server: guarded } = await startInProcess(keys, { ...baseConfig({ users, acl: [] }), lockout: { threshold: 2, dedup_window: 0, base_delay: 60 } });
    try {
      const statuses: number[] = [];
      for (const password of ['w1', 'w2', 'w3', 'bob-pw']) {
        const res = await guarded.app.inject({ method: 'GET', url: '/auth?service=test-registry', headers: { authorization: basic('bob', password) } });
        statuses.push(res.statusCode);
      }
      expect(statuses.slice(-1)).toEqual([429]);
      const text = await scrape(guarded);
      expect(value(text, 'sts_lockouts_total', { scope: 'address' })).toBe(statuses.filter((s) => s === 429).length);
      expect(value(text, 'sts_http_requests_total', { route: 'token', status: '429', grant_type: 'none' })).toBe(statuses.filter((s) => s === 429).length);
    } finally {
      await guarded.close();
    }
  });
});

describe('signing certificate expiry warning', () => {
  function capture() {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    return { lines, logger: createLogger({ level: 'info' }, stream) };
  }

  it('warns at start when the certificate expires within 30 days, not before', () => {
    const key = server.signer.key;
    const expires = certificateExpiry(key) * 1000;
    const early = capture();
    expect(warnIfCertificateExpiresSoon(key, early.logger, expires - 31 * 86_400_000)).toBe(false);
    expect(early.lines).toEqual([]);
    const late = capture();
    expect(warnIfCertificateExpiresSoon(key, late.logger, expires - 10 * 86_400_000)).toBe(true);
    const line = JSON.parse(late.lines[0] as string) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 40, kid: key.libtrustKid, days_left: 10 });
    expect(String(line.msg)).toMatch(/less than 30 days/);
  });

  it('warns while running, when the 30 days begin, without a restart or reload', async () => {
    const key = server.signer.key;
    const thirtyDaysBefore = certificateExpiry(key) * 1000 - 30 * 86_400_000;
    // A clock that runs, 1.5 s short of the 30 days before expiry.
    const offset = thirtyDaysBefore - 1_500 - Date.now();
    const { lines, logger } = capture();
    const running = await createServer(await loadTestConfig(keys, baseConfig({ users: { '': {} } })), { logger, audit: new MemoryAudit(), now: () => Date.now() + offset });
    try {
      const warned = () => lines.some((l) => /less than 30 days/.test(l));
      expect(warned()).toBe(false);
      for (let waited = 0; !warned() && waited < 10_000; waited += 100) await new Promise((r) => setTimeout(r, 100));
      expect(warned()).toBe(true);
    } finally {
      await running.close();
    }
  });
});
