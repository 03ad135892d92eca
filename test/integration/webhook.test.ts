/**
 * webhook_auth and webhook_authz against a real HTTP server started here on 127.0.0.1, through the
 * real token endpoint: the body and its signature (checked by the server), the answers and what
 * they mean, retries on 5xx but never on 4xx, timeouts, caching, and the intersection of granted
 * actions with those asked for.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ConfigError } from '../../src/config/errors.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StsServer } from '../../src/server/app.js';
import { baseConfig, decodeJwt, hash, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess, type MemoryAudit } from '../helpers/server.js';

interface Seen {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  json: Record<string, unknown>;
  signatureValid: boolean;
}

type Handler = (seen: Seen, res: ServerResponse) => void;

const SECRET = 'a-shared-secret-of-enough-length-0123456789';

let keys: KeyDir;
let http: Server;
let baseUrl: string;
let handler: Handler;
let seen: Seen[];
const servers: StsServer[] = [];

function verifySignature(header: string | string[] | undefined, body: string): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const expected = createHmac('sha256', SECRET).update(body).digest();
  const given = Buffer.from(header.slice('sha256='.length), 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' }).end(text);
}

beforeAll(async () => {
  keys = await makeKeyDir();
  await writeFile(join(keys.dir, 'webhook.secret'), `${SECRET}\n`);
  http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {
        // Left empty; the test looks at `body`.
      }
      const entry: Seen = { path: req.url ?? '', headers: req.headers, body, json, signatureValid: verifySignature(req.headers['x-sts-signature'], body) };
      seen.push(entry);
      handler(entry, res);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});

beforeEach(() => {
  seen = [];
  handler = (_s, res) => send(res, 500);
});

afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.app.close();
  http.closeAllConnections();
});

afterAll(async () => {
  await new Promise((resolve) => http.close(resolve));
  await keys.cleanup();
});

async function start(overrides: Partial<ConfigInput>, options: { now?: () => number } = {}): Promise<{ server: StsServer; audit: MemoryAudit }> {
  const started = await startInProcess(keys, baseConfig(overrides), options);
  servers.push(started.server);
  return started;
}

function token(server: StsServer, scope: string, authorization?: string) {
  return server.app.inject({
    method: 'GET',
    url: `/auth?service=test-registry${scope ? `&scope=${encodeURIComponent(scope)}` : ''}`,
    headers: authorization ? { authorization } : {},
  });
}

const webhookAuth = (extra: Record<string, unknown> = {}) => ({ url: `${baseUrl}/authn`, secret_file: 'webhook.secret', retries: 0, ...extra });
const webhookAuthz = (extra: Record<string, unknown> = {}) => ({ url: `${baseUrl}/authz`, secret_file: 'webhook.secret', retries: 0, ...extra });

describe('webhook_auth', () => {
  it('POSTs signed JSON with the password in the body only; allow true with labels signs in', async () => {
    handler = (s, res) => {
      if (!s.signatureValid) return send(res, 401, { error: 'bad signature' });
      if (s.json.account === 'alice' && s.json.password === 'pw with spaces') return send(res, 200, { allow: true, labels: { team: ['x'] } });
      return send(res, 200, { allow: false });
    };
    const acl = [{ match: { labels: { team: 'x' } }, actions: ['pull'] }];
    const { server, audit } = await start({ webhook_auth: webhookAuth({ headers: { 'X-Api-Key': 'k1' } }), acl });
    const res = await token(server, 'repository:app:pull,push', basic('alice', 'pw with spaces'));
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().token).claims.access).toEqual([{ type: 'repository', name: 'app', actions: ['pull'] }]);
    expect(audit.last()).toMatchObject({ account: 'alice', backend: 'webhook' });

    expect(seen).toHaveLength(1);
    const [request] = seen;
    expect(request?.path).toBe('/authn');
    expect(request?.signatureValid).toBe(true);
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['x-api-key']).toBe('k1');
    expect(request?.body).toBe(JSON.stringify({ account: 'alice', password: 'pw with spaces', ip: '127.0.0.1', service: 'test-registry' }));
    expect(request?.path).not.toContain('pw');
  });

  it('allow false is a wrong password: 401, and the chain stops', async () => {
    handler = (_s, res) => send(res, 200, { allow: false });
    const users = { bob: { password: await hash('bob-pw') } };
    const { server, audit } = await start({ webhook_auth: webhookAuth(), users, authn_order: ['webhook', 'users'] });
    const res = await token(server, '', basic('bob', 'bob-pw'));
    expect(res.statusCode).toBe(401);
    expect(audit.last().reason).toBe('refused by webhook_auth');
  });

  it.each([
    ['404', (res: ServerResponse) => send(res, 404)],
    ['match false', (res: ServerResponse) => send(res, 200, { match: false })],
  ])('%s is no match: the next backend is asked', async (_name, answer) => {
    handler = (_s, res) => answer(res);
    const users = { bob: { password: await hash('bob-pw') } };
    const { server, audit } = await start({ webhook_auth: webhookAuth(), users, authn_order: ['webhook', 'users'] });
    expect((await token(server, '', basic('bob', 'bob-pw'))).statusCode).toBe(200);
    expect(audit.last()).toMatchObject({ account: 'bob', backend: 'static' });
    expect((await token(server, '', basic('carol', 'x'))).statusCode).toBe(401);
    expect(audit.last().reason).toBe('unknown account');
  });

  it('retries a 503 with backoff, then succeeds', async () => {
    handler = (_s, res) => (seen.length < 3 ? send(res, 503) : send(res, 200, { allow: true }));
    const { server } = await start({ webhook_auth: webhookAuth({ retries: 2 }) });
    expect((await token(server, '', basic('alice', 'pw'))).statusCode).toBe(200);
    expect(seen).toHaveLength(3);
    expect(seen.every((s) => s.signatureValid)).toBe(true);
  });

  it('never retries a 4xx: 400 is answered 503 after one request', async () => {
    handler = (_s, res) => send(res, 400, { error: 'bad' });
    const { server, audit } = await start({ webhook_auth: webhookAuth({ retries: 3 }) });
    const res = await token(server, '', basic('alice', 'pw'));
    expect(res.statusCode).toBe(503);
    expect(audit.last().reason).toMatch(/answered 400/);
    expect(seen).toHaveLength(1);
  });

  it('5xx after every retry is 503 with Retry-After', async () => {
    handler = (_s, res) => send(res, 502);
    const { server, audit } = await start({ webhook_auth: webhookAuth({ retries: 1 }) });
    const res = await token(server, '', basic('alice', 'pw'));
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json().errors[0].code).toBe('UNAVAILABLE');
    expect(audit.last().reason).toMatch(/answered 502 \(2 attempts\)/);
    expect(seen).toHaveLength(2);
  });

  it('a webhook that does not answer in time is 503 within the timeout', async () => {
    handler = () => undefined; // never answers
    const { server, audit } = await start({ webhook_auth: webhookAuth({ timeout: '500ms' }) });
    const started = Date.now();
    const res = await token(server, '', basic('alice', 'pw'));
    const elapsed = Date.now() - started;
    expect(res.statusCode).toBe(503);
    expect(audit.last().reason).toMatch(/no answer within 500 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(1_500);
  });

  it.each([
    ['not JSON', (res: ServerResponse) => send(res, 200, 'this is not json')],
    ['no allow', (res: ServerResponse) => send(res, 200, { ok: true })],
    ['bad labels', (res: ServerResponse) => send(res, 200, { allow: true, labels: { team: 'x' } })],
    ['a redirect', (res: ServerResponse) => res.writeHead(307, { location: 'http://127.0.0.1:1/elsewhere' }).end()],
  ])('%s is 503', async (_name, answer) => {
    handler = (_s, res) => answer(res);
    const { server } = await start({ webhook_auth: webhookAuth() });
    expect((await token(server, '', basic('alice', 'pw'))).statusCode).toBe(503);
  });

  it('a webhook that is down is 503', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const { server, audit } = await start({ webhook_auth: webhookAuth({ url: `http://127.0.0.1:${port}/authn`, retries: 1 }) });
    expect((await token(server, '', basic('alice', 'pw'))).statusCode).toBe(503);
    expect(audit.last().reason).toMatch(/ECONNREFUSED/);
  });

  it('anonymous requests never reach the webhook', async () => {
    const { server } = await start({ webhook_auth: webhookAuth() });
    expect((await token(server, '')).statusCode).toBe(401);
    expect(seen).toHaveLength(0);
  });

  it('sends no signature without a secret_file', async () => {
    handler = (_s, res) => send(res, 200, { allow: true });
    const { server } = await start({ webhook_auth: { url: `${baseUrl}/authn` } });
    expect((await token(server, '', basic('alice', 'pw'))).statusCode).toBe(200);
    expect(seen[0]?.headers['x-sts-signature']).toBeUndefined();
  });

  it('cache_ttl: a second login does not reach the server; another password does; expiry asks again', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    handler = (s, res) => send(res, 200, { allow: s.json.password === 'right' });
    const { server } = await start({ webhook_auth: webhookAuth({ cache_ttl: 60 }) }, { now: () => now });
    expect((await token(server, '', basic('alice', 'right'))).statusCode).toBe(200);
    expect((await token(server, '', basic('alice', 'right'))).statusCode).toBe(200);
    expect(seen).toHaveLength(1);
    expect((await token(server, '', basic('alice', 'wrong'))).statusCode).toBe(401);
    expect((await token(server, '', basic('alice', 'wrong'))).statusCode).toBe(401);
    expect(seen).toHaveLength(3);
    now += 61_000;
    expect((await token(server, '', basic('alice', 'right'))).statusCode).toBe(200);
    expect(seen).toHaveLength(4);
  });
});

describe('webhook_authz', () => {
  const users = async () => ({ alice: { password: await hash('alice-pw'), labels: { team: ['x'] } } });

  it('receives the request info with Go field names and grants only what was asked', async () => {
    handler = (s, res) => {
      if (!s.signatureValid) return send(res, 401);
      return send(res, 200, { actions: ['pull', 'delete', 'other'] });
    };
    const { server } = await start({ users: await users(), webhook_authz: webhookAuthz() });
    const res = await token(server, 'repository:team/app:pull,push', basic('alice', 'alice-pw'));
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().token).claims.access).toEqual([{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.signatureValid).toBe(true);
    expect(seen[0]?.body).toBe(
      '{"Account":"alice","Type":"repository","Name":"team/app","Service":"test-registry","IP":"127.0.0.1","Actions":["pull","push"],"Labels":{"team":["x"]}}',
    );
  });

  it('runs after the config ACL; a 404 is no rule (nothing granted); "*" grants what was asked', async () => {
    handler = (s, res) => (s.json.Name === 'star/app' ? send(res, 200, { actions: ['*'] }) : send(res, 404));
    const acl = [{ match: { name: 'acl/*' }, actions: ['pull'] }];
    const { server } = await start({ users: await users(), acl, webhook_authz: webhookAuthz() });
    const res = await token(server, 'repository:acl/app:pull repository:none/app:pull repository:star/app:pull,push', basic('alice', 'alice-pw'));
    expect(decodeJwt(res.json().token).claims.access).toEqual([
      { type: 'repository', name: 'acl/app', actions: ['pull'] },
      { type: 'repository', name: 'none/app', actions: [] },
      { type: 'repository', name: 'star/app', actions: ['pull', 'push'] },
    ]);
    expect(seen.map((s) => s.json.Name)).toEqual(['none/app', 'star/app']);
  });

  it.each([
    ['500', (res: ServerResponse) => send(res, 500)],
    ['403', (res: ServerResponse) => send(res, 403)],
    ['no actions', (res: ServerResponse) => send(res, 200, { allow: true })],
  ])('%s fails the request with 503', async (_name, answer) => {
    handler = (_s, res) => answer(res);
    const { server } = await start({ users: await users(), webhook_authz: webhookAuthz() });
    expect((await token(server, 'repository:team/app:pull', basic('alice', 'alice-pw'))).statusCode).toBe(503);
  });

  it('cache_ttl reuses an answer for the same request info only', async () => {
    handler = (_s, res) => send(res, 200, { actions: ['pull'] });
    const { server } = await start({ users: await users(), webhook_authz: webhookAuthz({ cache_ttl: '1m' }) });
    for (let i = 0; i < 3; i++) await token(server, 'repository:team/app:pull', basic('alice', 'alice-pw'));
    expect(seen).toHaveLength(1);
    await token(server, 'repository:team/app:pull,push', basic('alice', 'alice-pw'));
    await token(server, 'repository:team/other:pull', basic('alice', 'alice-pw'));
    expect(seen).toHaveLength(3);
  });

  it('comes after ext_authz, which ends the chain', async () => {
    const config = baseConfig({ users: await users(), ext_authz: { command: 'true' }, webhook_authz: webhookAuthz() });
    const { server } = await start(config);
    const res = await token(server, 'repository:team/app:pull', basic('alice', 'alice-pw'));
    expect(decodeJwt(res.json().token).claims.access).toEqual([{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
    expect(seen).toHaveLength(0);
  });
});

describe('configuration', () => {
  it('reads secret_file at start and refuses a short or missing one, with its key path', async () => {
    await writeFile(join(keys.dir, 'short.secret'), 'abc\n');
    const error = (await loadTestConfig(
      keys,
      baseConfig({ webhook_auth: { url: baseUrl, secret_file: 'short.secret' }, webhook_authz: { url: baseUrl, secret_file: 'missing.secret' } }),
    ).catch((err: unknown) => err)) as ConfigError;
    expect(error.issues).toContainEqual({ path: 'webhook_auth.secret_file', message: expect.stringMatching(/at least 16/) });
    expect(error.issues).toContainEqual({ path: 'webhook_authz.secret_file', message: expect.stringMatching(/no such file/) });
  });

  it('rejects a non-http URL, a port fetch refuses, and headers the server sets itself', async () => {
    const error = (await loadTestConfig(
      keys,
      baseConfig({
        webhook_auth: { url: 'ftp://example.com/x', headers: { 'Content-Type': 'text/plain', 'X-Ok': 'fine' } },
        webhook_authz: { url: 'http://127.0.0.1:6000/authz' },
      }),
    ).catch((err: unknown) => err)) as ConfigError;
    const withCredentials = (await loadTestConfig(
      keys,
      baseConfig({ webhook_authz: { url: 'https://user:pw@example.com/authz' } }),
    ).catch((err: unknown) => err)) as ConfigError;
    const paths = error.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['webhook_auth.url', 'webhook_auth.headers["Content-Type"]', 'webhook_authz.url']));
    expect(paths).not.toContain('webhook_auth.headers["X-Ok"]');
    expect(withCredentials.issues).toContainEqual({ path: 'webhook_authz.url', message: expect.stringMatching(/credentials/) });
  });
});
