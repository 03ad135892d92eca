import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StsServer } from '../../src/server/app.js';
import { baseConfig, decodeJwt, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess, type MemoryAudit } from '../helpers/server.js';

let keys: KeyDir;
let server: StsServer;
let audit: MemoryAudit;
let anon: StsServer;

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  const users = {
    admin: { password: await hash('admin-pw') },
    alice: { password: await hash('alice:pw:with:colons'), labels: { team: ['dev'] } },
    reader: { password: await hash('reader-pw') },
  };
  const acl = [
    { match: { account: 'admin' }, actions: ['*'] },
    { match: { account: 'alice', name: 'alice/*' }, actions: ['*'] },
    { match: { account: '/.+/', type: 'repository' }, actions: ['pull'] },
    { match: { account: '' , name: 'public/*' }, actions: ['pull'] },
  ];
  ({ server, audit } = await startInProcess(keys, baseConfig({ users, acl })));
  ({ server: anon } = await startInProcess(keys, baseConfig({ users: { ...users, '': {} }, acl })));
});

afterAll(async () => {
  await server.app.close();
  await anon.app.close();
  await keys.cleanup();
});

function get(query: string, authorization?: string, target = server) {
  return target.app.inject({ method: 'GET', url: `/auth?${query}`, headers: authorization ? { authorization } : {} });
}

describe('GET', () => {
  it('issues a token with the granted actions and every response field clients read', async () => {
    const res = await get('service=test-registry&scope=repository:alice/app:pull,push&account=alice', basic('alice', 'alice:pw:with:colons'));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body.token).toBe(body.access_token);
    expect(Number.isInteger(body.expires_in)).toBe(true);
    expect(body.expires_in).toBe(300);
    expect(body.issued_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(body).not.toHaveProperty('scope');
    expect(body).not.toHaveProperty('refresh_token');
    const { claims } = decodeJwt(body.token);
    expect(claims).toMatchObject({ iss: 'test-issuer', aud: 'test-registry', sub: 'alice' });
    expect(claims.access).toEqual([{ type: 'repository', name: 'alice/app', actions: ['pull', 'push'] }]);
  });

  it('intersects: a pull-only user asking for push gets pull, never an error', async () => {
    const res = await get('service=test-registry&scope=repository:alice/app:push,pull', basic('reader', 'reader-pw'));
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().token).claims.access).toEqual([{ type: 'repository', name: 'alice/app', actions: ['pull'] }]);
  });

  it('merges repeated and space-separated scopes per resource', async () => {
    const res = await get(
      'service=test-registry&scope=repository:alice/a:pull&scope=repository:alice/a:push%20repository:alice/b:pull&scope=repository:alice/a:pull',
      basic('alice', 'alice:pw:with:colons'),
    );
    expect(decodeJwt(res.json().token).claims.access).toEqual([
      { type: 'repository', name: 'alice/a', actions: ['pull', 'push'] },
      { type: 'repository', name: 'alice/b', actions: ['pull'] },
    ]);
  });

  it('expands a requested * on a repository to the explicit actions granted', async () => {
    const admin = await get('service=test-registry&scope=repository:x/y:*', basic('admin', 'admin-pw'));
    expect(decodeJwt(admin.json().token).claims.access).toEqual([{ type: 'repository', name: 'x/y', actions: ['delete', 'pull', 'push'] }]);
    const reader = await get('service=test-registry&scope=repository:x/y:*', basic('reader', 'reader-pw'));
    expect(decodeJwt(reader.json().token).claims.access).toEqual([{ type: 'repository', name: 'x/y', actions: ['pull'] }]);
  });

  it('grants the catalog literally to admins only', async () => {
    const admin = await get('service=test-registry&scope=registry:catalog:*', basic('admin', 'admin-pw'));
    expect(decodeJwt(admin.json().token).claims.access).toEqual([{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    const reader = await get('service=test-registry&scope=registry:catalog:*', basic('reader', 'reader-pw'));
    expect(decodeJwt(reader.json().token).claims.access).toEqual([{ type: 'registry', name: 'catalog', actions: [] }]);
  });

  it('accepts host:port names and the resource class', async () => {
    const res = await get('service=test-registry&scope=repository(plugin):localhost:5000/alice/p:pull', basic('reader', 'reader-pw'));
    expect(decodeJwt(res.json().token).claims.access).toEqual([
      { type: 'repository', class: 'plugin', name: 'localhost:5000/alice/p', actions: ['pull'] },
    ]);
  });

  it('answers a login (no scope) with an empty access list', async () => {
    const res = await get('service=test-registry&account=alice&client_id=docker&offline_token=true', basic('alice', 'alice:pw:with:colons'));
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().token).claims.access).toEqual([]);
  });

  it('serves /auth/token as well', async () => {
    const res = await server.app.inject({ method: 'GET', url: '/auth/token?service=test-registry', headers: { authorization: basic('reader', 'reader-pw') } });
    expect(res.statusCode).toBe(200);
  });
});

describe('POST (OAuth2 form)', () => {
  it('issues a token for grant_type=password with scope and access_token in the body', async () => {
    const res = await server.app.inject({
      method: 'POST',
      url: '/auth',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      payload: 'grant_type=password&username=alice&password=alice%3Apw%3Awith%3Acolons&service=test-registry&client_id=containerd-client&scope=repository%3Aalice%2Fapp%3Apull%2Cpush&scope=repository%3Aother%2Fx%3Apull%2Cpush',
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.access_token).toBe(body.token);
    expect(body.scope).toBe('repository:alice/app:pull,push repository:other/x:pull');
    expect(Number.isInteger(body.expires_in)).toBe(true);
    expect(audit.last()).toMatchObject({ method: 'POST', client_id: 'containerd-client', account: 'alice', result: 'issued' });
  });

  it('reads a space-separated scope field', async () => {
    const res = await server.app.inject({
      method: 'POST',
      url: '/auth',
      headers: FORM,
      payload: new URLSearchParams({ grant_type: 'password', username: 'reader', password: 'reader-pw', service: 'test-registry', scope: 'repository:a/b:pull repository:c/d:pull' }).toString(),
    });
    expect(res.json().scope).toBe('repository:a/b:pull repository:c/d:pull');
  });

  it('answers 401 with the OAuth2 error for a wrong password', async () => {
    const res = await server.app.inject({
      method: 'POST',
      url: '/auth',
      headers: FORM,
      payload: 'grant_type=password&username=alice&password=nope&service=test-registry',
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: 'invalid_grant', errors: [{ code: 'UNAUTHORIZED' }] });
  });

  it.each([
    ['an unknown grant type', 'grant_type=client_credentials&service=test-registry', 'UNSUPPORTED_GRANT_TYPE'],
    ['a refresh grant without refresh_token', 'grant_type=refresh_token&service=test-registry', 'INVALID_REQUEST'],
    ['a password grant without a password', 'grant_type=password&username=alice&service=test-registry', 'INVALID_REQUEST'],
    ['no service', 'grant_type=password&username=alice&password=x', 'INVALID_REQUEST'],
  ])('answers 400 for %s', async (_why, payload, code) => {
    const res = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].code).toBe(code);
    expect(res.json().error).toBeDefined();
  });

  it('answers a refresh grant with 401 when no store issues refresh tokens', async () => {
    const res = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: 'grant_type=refresh_token&refresh_token=stsrt_x&service=test-registry' });
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toBe('invalid_grant');
  });

  it('answers 400, not 415 or 500, for a JSON body', async () => {
    const res = await server.app.inject({ method: 'POST', url: '/auth', headers: { 'content-type': 'application/json' }, payload: '{"a":1}' });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('takes form credentials on a POST without grant_type, as docker_auth does', async () => {
    const ok = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: 'service=test-registry&username=reader&password=reader-pw' });
    expect(ok.statusCode).toBe(200);
    expect(decodeJwt(ok.json().token).claims.sub).toBe('reader');
    const bad = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: 'service=test-registry&username=reader&password=nope' });
    expect(bad.statusCode).toBe(401);
  });

  it('takes Basic credentials on a POST without grant_type, as docker_auth does', async () => {
    const res = await server.app.inject({ method: 'POST', url: '/auth', headers: { ...FORM, authorization: basic('reader', 'reader-pw') }, payload: 'service=test-registry' });
    expect(res.statusCode).toBe(200);
  });
});

describe('authentication failures', () => {
  it.each([
    ['a wrong password', basic('alice', 'wrong')],
    ['an unknown user', basic('mallory', 'whatever')],
    ['a password cut at the first colon', basic('alice', 'alice')],
  ])('answers 401 with the JSON body and a challenge for %s', async (_why, auth) => {
    const res = await get('service=test-registry&scope=repository:alice/app:pull', auth);
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['www-authenticate']).toBe('Basic realm="test-issuer", charset="UTF-8"');
    expect(res.json()).toEqual({
      errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }],
      details: 'invalid username or password',
    });
  });

  it('never falls back to anonymous on a wrong password, even where anonymous is enabled', async () => {
    const res = await get('service=test-registry&scope=repository:public/app:pull', basic('alice', 'wrong'), anon);
    expect(res.statusCode).toBe(401);
  });

  it('refuses anonymous callers unless "" is configured', async () => {
    const res = await get('service=test-registry&scope=repository:public/app:pull');
    expect(res.statusCode).toBe(401);
    expect(res.json().errors[0].message).toBe('authentication required');
  });

  it('lets anonymous callers in with their own rules when "" is configured', async () => {
    const res = await get('service=test-registry&scope=repository:public/app:pull&scope=repository:alice/app:pull', undefined, anon);
    expect(res.statusCode).toBe(200);
    const { claims } = decodeJwt(res.json().token);
    expect(claims.sub).toBe('');
    expect(claims.access).toEqual([
      { type: 'repository', name: 'public/app', actions: ['pull'] },
      { type: 'repository', name: 'alice/app', actions: [] },
    ]);
  });

  it('treats an empty user and password as anonymous', async () => {
    expect((await get('service=test-registry', basic('', ''), anon)).statusCode).toBe(200);
  });
});

describe('malformed requests', () => {
  it.each([
    ['no service', 'scope=repository:a:pull', 'INVALID_REQUEST'],
    ['an unknown service', 'service=other&scope=repository:a:pull', 'UNKNOWN_SERVICE'],
    ['two different services', 'service=test-registry&service=x', 'INVALID_REQUEST'],
    ['a malformed scope', 'service=test-registry&scope=repository:A:pull', 'INVALID_SCOPE'],
    ['a scope without actions', 'service=test-registry&scope=repository:a', 'INVALID_SCOPE'],
    ['an account that is not the user', 'service=test-registry&account=admin', 'INVALID_REQUEST'],
  ])('answers 400 for %s', async (_why, query, code) => {
    const res = await get(query, basic('reader', 'reader-pw'));
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].code).toBe(code);
    expect(res.json()).not.toHaveProperty('error'); // the OAuth2 fields are for POST
  });

  it.each([
    ['a Bearer header', 'Bearer abc'],
    ['broken base64', 'Basic !!!'],
    ['no colon', `Basic ${Buffer.from('alice').toString('base64')}`],
  ])('answers 400 for %s', async (_why, auth) => {
    const res = await get('service=test-registry', auth);
    expect(res.statusCode).toBe(400);
  });

  it('answers 404 (never 405) for other methods and paths', async () => {
    expect((await server.app.inject({ method: 'PUT', url: '/auth' })).statusCode).toBe(404);
    expect((await server.app.inject({ method: 'GET', url: '/nope' })).statusCode).toBe(404);
  });

  it('answers 413 for an oversized body, not 500', async () => {
    const res = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: `scope=${'a'.repeat(70_000)}` });
    expect(res.statusCode).toBe(413);
  });
});

describe('audit', () => {
  it('records one event per decision with no secret in it', async () => {
    const before = audit.events.length;
    await get('service=test-registry&scope=repository:alice/app:push', basic('alice', 'alice:pw:with:colons'));
    await get('service=test-registry&scope=repository:alice/app:push', basic('alice', 'secret-guess'));
    expect(audit.events.length).toBe(before + 2);
    const [ok, bad] = audit.events.slice(-2);
    expect(ok).toMatchObject({ result: 'issued', account: 'alice', service: 'test-registry', requested: ['repository:alice/app:push'], granted: ['repository:alice/app:push'] });
    expect(ok?.reason).toContain('acl[1]');
    expect(bad).toMatchObject({ result: 'unauthorized', account: 'alice', reason: 'wrong password', granted: [] });
    expect(typeof ok?.duration_ms).toBe('number');
    expect(JSON.stringify(audit.events)).not.toMatch(/secret-guess|alice:pw|eyJ/);
  });
});
