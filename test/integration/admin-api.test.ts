import { readFile } from 'node:fs/promises';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateOpenApi, OPENAPI_PATH } from '../../scripts/openapi.js';
import { AdminService } from '../../src/admin/service.js';
import type { LoadedConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { buildIssuer, createServer, prepareStore, type StsServer } from '../../src/server/app.js';
import { StoreUnavailableError, type Store } from '../../src/store/types.js';
import { baseConfig, decodeJwt, hash, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess } from '../helpers/server.js';

const REALM = 'Bearer realm="sts-docker-auth admin API"';
const API = '/api/v1';

let keys: KeyDir;
let loaded: LoadedConfig;
let server: StsServer;
let store: Store;
/** Works on the server's own store, as the CLI would: how the tests get their first admin token. */
let service: AdminService;
let admin: string;
/** Every admin API answer, checked at the end for secrets. */
const answers: string[] = [];

const config = (extra: Partial<ConfigInput> = {}): ConfigInput =>
  baseConfig({ store: { driver: 'sqlite', path: ':memory:' }, ...extra });

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  ({ server } = await startInProcess(keys, config()));
  loaded = server.config;
  if (!server.store) throw new Error('the test config names a store');
  store = server.store;
  service = new AdminService(store, loaded, buildIssuer(loaded, { store }).directory);
  await service.addUser({ name: 'root', password: null }, 'test');
  admin = (await service.createToken({ user: 'root', name: 'api', scopes: ['admin'], expiresIn: 3600 }, 'test')).secret;
});

afterAll(async () => {
  await server?.close();
  await keys?.cleanup();
});

async function call(
  method: InjectOptions['method'],
  path: string,
  options: {
    body?: unknown;
    token?: string | null;
    authorization?: string;
    headers?: Record<string, string>;
    target?: StsServer;
    prefix?: string;
  } = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...options.headers };
  const authorization = options.authorization ?? (options.token === null ? undefined : `Bearer ${options.token ?? admin}`);
  if (authorization !== undefined) headers.authorization = authorization;
  const res = await (options.target ?? server).app.inject({
    method,
    url: `${options.prefix ?? ''}${API}${path}`,
    headers,
    ...(options.body === undefined ? {} : { payload: options.body as object }),
  });
  answers.push(res.body);
  return res;
}

function expectError(res: LightMyRequestResponse, status: number, code: string, message?: RegExp): void {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json();
  expect(body.errors[0].code).toBe(code);
  expect(body.details).toBe(body.errors[0].message);
  if (message) expect(body.details).toMatch(message);
}

describe('authentication', () => {
  it('answers 401 with a Bearer challenge without an Authorization header', async () => {
    const res = await call('GET', '/users', { token: null });
    expectError(res, 401, 'UNAUTHORIZED', /Bearer/);
    expect(res.headers['www-authenticate']).toBe(REALM);
  });

  it('answers 401 to another scheme or a malformed header', async () => {
    for (const authorization of [basic('root', admin), 'Bearer', `Bearer ${admin} extra`, `Token ${admin}`]) {
      const res = await call('GET', '/users', { authorization });
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="sts-docker-auth admin API"/);
    }
  });

  it('answers 401 to an unknown token, one that is not ours, and a refresh-token-shaped string', async () => {
    const unknown = await service.createToken({ user: 'root', name: 'soon-gone', scopes: ['admin'], expiresIn: 60 }, 'test');
    await store.users.create({ name: 'ghost', passwordHash: null }, 'test');
    // A well-formed secret whose record is gone with its owner.
    const ghost = await service.createToken({ user: 'ghost', name: 'x', scopes: ['admin'], expiresIn: 60 }, 'test');
    await service.removeUser('ghost', 'test');
    const tampered = `${unknown.secret.slice(0, -1)}${unknown.secret.endsWith('x') ? 'y' : 'x'}`;
    for (const token of [ghost.secret, 'not-a-token', tampered]) {
      const res = await call('GET', '/users', { token });
      expectError(res, 401, 'UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toBe(`${REALM}, error="invalid_token"`);
    }
  });

  it('answers 401 to a revoked token', async () => {
    const created = await service.createToken({ user: 'root', name: 'revoked', scopes: ['admin'], expiresIn: 3600 }, 'test');
    expect((await call('GET', '/users', { token: created.secret })).statusCode).toBe(200);
    await service.revokeToken(created.record.id, 'test');
    expectError(await call('GET', '/users', { token: created.secret }), 401, 'UNAUTHORIZED', /revoked/);
  });

  it('answers 401 to an expired token', async () => {
    const anHourAgo = new AdminService(store, loaded, buildIssuer(loaded, { store }).directory, () => Date.now() - 3_600_000);
    const created = await anHourAgo.createToken({ user: 'root', name: 'expired', scopes: ['admin'], expiresIn: 60 }, 'test');
    expectError(await call('GET', '/users', { token: created.secret }), 401, 'UNAUTHORIZED', /expired/);
  });

  it('answers 401 when the token owner is disabled', async () => {
    await service.addUser({ name: 'off-admin', password: null }, 'test');
    const created = await service.createToken({ user: 'off-admin', name: 'api', scopes: ['admin'], expiresIn: 3600 }, 'test');
    await service.setDisabled('off-admin', true, 'test');
    expectError(await call('GET', '/users', { token: created.secret }), 401, 'UNAUTHORIZED', /cannot sign in/);
  });

  it('answers 403 to a valid token without the admin scope', async () => {
    await service.addUser({ name: 'ci', password: null }, 'test');
    const created = await service.createToken({ user: 'ci', name: 'push', scopes: ['repository:ci/*:pull,push'], expiresIn: 3600 }, 'test');
    const res = await call('GET', '/users', { token: created.secret });
    expectError(res, 403, 'FORBIDDEN', /admin scope/);
    expect(res.headers['www-authenticate']).toBe(`${REALM}, error="insufficient_scope", scope="admin"`);
  });

  it('authenticates before it validates: a bad body from a stranger is 401, not 400', async () => {
    expectError(await call('POST', '/users', { token: null, body: { bogus: 1 } }), 401, 'UNAUTHORIZED');
  });

  it('records the use of the admin token', async () => {
    const before = Date.now();
    await call('GET', '/users');
    const record = (await store.accessTokens.list('root')).find((t) => t.name === 'api');
    expect(record?.lastUsedAt).toBeGreaterThanOrEqual(before);
    expect(record?.lastUsedIp).toBe('127.0.0.1');
  });
});

describe('users', () => {
  it('creates, shows, lists, changes and deletes a user', async () => {
    const created = await call('POST', '/users', { body: { name: 'alice', password: 'alice-pw', labels: { team: ['web'] } } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    expect(created.json()).toMatchObject({ name: 'alice', robot: false, disabled: false, labels: { team: ['web'] }, groups: [] });
    expect(created.json().created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const shown = await call('GET', '/users/alice');
    expect(shown.statusCode).toBe(200);
    expect(shown.json()).toEqual(created.json());

    const listed = await call('GET', '/users');
    expect(listed.json().users.map((u: { name: string }) => u.name)).toEqual(expect.arrayContaining(['alice', 'root']));

    const patched = await call('PATCH', '/users/alice', { body: { disabled: true, labels: { team: ['ops'] }, password: 'new-pw' } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json()).toMatchObject({ name: 'alice', disabled: true, labels: { team: ['ops'] } });
    // The new password is in force, and the disabled flag with it.
    const user = await store.users.get('alice');
    expect(user?.disabled).toBe(true);
    await call('PATCH', '/users/alice', { body: { disabled: false } });
    const signIn = await server.app.inject({ method: 'GET', url: '/auth?service=test-registry', headers: { authorization: basic('alice', 'new-pw') } });
    expect(signIn.statusCode).toBe(200);

    const deleted = await call('DELETE', '/users/alice');
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    expectError(await call('GET', '/users/alice'), 404, 'NOT_FOUND', /alice/);
  });

  it('creates a robot account when the password is null or absent', async () => {
    for (const [name, body] of [['robot-a', { name: 'robot-a', password: null }], ['robot-b', { name: 'robot-b' }]] as const) {
      const res = await call('POST', '/users', { body });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json()).toMatchObject({ name, robot: true });
    }
  });

  it('answers 409 to a name that is taken', async () => {
    await call('POST', '/users', { body: { name: 'dup' } });
    expectError(await call('POST', '/users', { body: { name: 'dup', password: 'x' } }), 409, 'CONFLICT', /dup/);
  });

  it('answers 400 to bad bodies, with a message saying what is wrong', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ name: 'bob', admin: true }, /unknown field "admin"/],
      [{ name: 42 }, /body\.name/],
      [{ name: 'bob', password: 123 }, /body\.password/],
      [{ name: 'bob', labels: { team: 'web' } }, /body\.labels\.team/],
      [{ name: 'bad name!' }, /user name "bad name!" is not valid/],
      [{ name: 'bob', password: '' }, /password is empty/],
      [{ name: 'bob', labels: { 'bad key': ['x'] } }, /label name "bad key"/],
      [['bob'], /body/],
    ];
    for (const [body, message] of cases) expectError(await call('POST', '/users', { body }), 400, 'INVALID_REQUEST', message);
    expect(await store.users.get('bob')).toBeUndefined();
  });

  it('answers 400 to a missing or unparsable body', async () => {
    expectError(await call('POST', '/users'), 400, 'INVALID_REQUEST', /JSON body is required/);
    const res = await server.app.inject({
      method: 'POST',
      url: `${API}/users`,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      payload: '{"name": ',
    });
    expectError(res, 400, 'INVALID_REQUEST');
    const json = { 'content-type': 'application/json' };
    expectError(await call('POST', '/users', { headers: json, body: '' }), 400, 'INVALID_REQUEST', /JSON body is required/);
    const text = await call('POST', '/users', { headers: { 'content-type': 'text/plain' }, body: '{"name": "tx"}' });
    expectError(text, 415, 'INVALID_REQUEST', /application\/json/);
  });

  it('takes requests without a body that are labelled application/json', async () => {
    await call('POST', '/users', { body: { name: 'labelled' } });
    expect((await call('DELETE', '/users/labelled', { headers: { 'content-type': 'application/json' } })).statusCode).toBe(204);
  });

  it('answers 400 to a patch with nothing to change or a wrong type, and 404 to an unknown user', async () => {
    await call('POST', '/users', { body: { name: 'patchy', password: 'pw' } });
    expectError(await call('PATCH', '/users/patchy', { body: {} }), 400, 'INVALID_REQUEST', /nothing to change/);
    expectError(await call('PATCH', '/users/patchy', { body: { disabled: 'yes' } }), 400, 'INVALID_REQUEST', /body\.disabled/);
    expectError(await call('PATCH', '/users/patchy', { body: { password: '', disabled: true } }), 400, 'INVALID_REQUEST', /empty/);
    expect((await store.users.get('patchy'))?.disabled).toBe(false);
    expectError(await call('PATCH', '/users/nobody', { body: { disabled: true } }), 404, 'NOT_FOUND');
    expectError(await call('DELETE', '/users/nobody'), 404, 'NOT_FOUND');
  });
});

describe('groups', () => {
  it('creates, lists and deletes groups and manages members', async () => {
    await call('POST', '/users', { body: { name: 'carol' } });
    const created = await call('POST', '/groups', { body: { name: 'devs', labels: { team: ['dev'] } } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ name: 'devs', labels: { team: ['dev'] }, members: [] });

    expect((await call('PUT', '/groups/devs/members/carol')).statusCode).toBe(204);
    // A PUT is idempotent: again is no error and no second change.
    expect((await call('PUT', '/groups/devs/members/carol')).statusCode).toBe(204);
    expect((await store.changes.list({ target: 'devs' })).filter((c) => c.action === 'group.add_member')).toHaveLength(1);
    expect((await call('GET', '/groups')).json().groups).toEqual([expect.objectContaining({ name: 'devs', members: ['carol'] })]);
    expect((await call('GET', '/users/carol')).json().groups).toEqual(['devs']);

    expect((await call('DELETE', '/groups/devs/members/carol')).statusCode).toBe(204);
    expect((await call('GET', '/groups')).json().groups[0].members).toEqual([]);

    expect((await call('DELETE', '/groups/devs')).statusCode).toBe(204);
    expect((await call('GET', '/groups')).json().groups).toEqual([]);
  });

  it('answers 400, 404 and 409 where they belong', async () => {
    await call('POST', '/groups', { body: { name: 'ops' } });
    expectError(await call('POST', '/groups', { body: { name: 'ops' } }), 409, 'CONFLICT');
    expectError(await call('POST', '/groups', { body: { name: 'a/b' } }), 400, 'INVALID_REQUEST', /group name/);
    expectError(await call('POST', '/groups', { body: { name: 'x', members: [] } }), 400, 'INVALID_REQUEST', /unknown field "members"/);
    expectError(await call('PUT', '/groups/ops/members/nobody'), 404, 'NOT_FOUND', /nobody/);
    expectError(await call('PUT', '/groups/nogroup/members/root'), 404, 'NOT_FOUND', /nogroup/);
    expectError(await call('DELETE', '/groups/nogroup'), 404, 'NOT_FOUND');
  });
});

describe('ACL rules', () => {
  it('adds, lists and deletes rules, at a position when asked', async () => {
    const first = await call('POST', '/acl', { body: { rule: { match: { account: 'x1' }, actions: ['pull'], comment: 'one' } } });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({ rule: { match: { account: 'x1' }, actions: ['pull'], comment: 'one' } });
    const second = await call('POST', '/acl', { body: { rule: { match: { account: 'x2' }, actions: ['push'] }, position: 0 } });
    expect(second.statusCode, second.body).toBe(201);

    const listed = (await call('GET', '/acl')).json().rules as Array<{ id: string; rule: { match: { account: string } } }>;
    expect(listed.map((r) => r.rule.match.account)).toEqual(['x2', 'x1']);

    expect((await call('DELETE', `/acl/${first.json().id}`)).statusCode).toBe(204);
    expect((await call('DELETE', `/acl/${second.json().id}`)).statusCode).toBe(204);
    expect((await call('GET', '/acl')).json().rules).toEqual([]);
    expectError(await call('DELETE', `/acl/${first.json().id}`), 404, 'NOT_FOUND');
  });

  it('answers 400 to bad rules', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ rule: { match: { acount: 'x' }, actions: ['pull'] } }, /body\.rule\.match: unknown field "acount"/],
      [{ rule: { match: {}, actions: 'pull' } }, /body\.rule\.actions/],
      [{ rule: { match: { ip: 'not-an-ip' }, actions: ['pull'] } }, /rule/],
      [{ rule: { match: { name: '/[/' }, actions: ['pull'] } }, /rule/],
      [{ rule: { match: {}, actions: ['pull'] }, position: -1 }, /body\.position/],
      [{ match: {}, actions: ['pull'] }, /unknown field/],
    ];
    for (const [body, message] of cases) expectError(await call('POST', '/acl', { body }), 400, 'INVALID_REQUEST', message);
    expect((await call('GET', '/acl')).json().rules).toEqual([]);
  });
});

describe('access tokens', () => {
  it('creates a token that works at the token endpoint until it is revoked', async () => {
    await call('POST', '/users', { body: { name: 'deployer' } });
    await call('POST', '/acl', { body: { rule: { match: { account: 'deployer', name: 'apps/*' }, actions: ['pull', 'push'] } } });
    const created = await call('POST', '/tokens', {
      body: { user: 'deployer', name: 'ci', scopes: ['repository:apps/*:pull'], expires_in: 3600 },
    });
    expect(created.statusCode, created.body).toBe(201);
    const token = created.json();
    expect(token.token).toMatch(/^stsat_/);
    expect(token).toMatchObject({ user: 'deployer', name: 'ci', scopes: ['repository:apps/*:pull'], revoked_at: null, last_used_at: null, warnings: [] });
    expect(Date.parse(token.expires_at) - Date.now()).toBeGreaterThan(3_500_000);

    const auth = (user: string) =>
      server.app.inject({
        method: 'GET',
        url: '/auth?service=test-registry&scope=repository:apps/web:pull,push',
        headers: { authorization: basic(user, token.token) },
      });
    const ok = await auth('deployer');
    expect(ok.statusCode, ok.body).toBe(200);
    // The token's scopes cap what the owner's rule allows.
    expect(decodeJwt(ok.json().token).claims.access).toEqual([{ type: 'repository', name: 'apps/web', actions: ['pull'] }]);

    const listed = (await call('GET', '/tokens?user=deployer')).json().tokens;
    expect(listed).toEqual([expect.objectContaining({ id: token.id, name: 'ci' })]);
    expect(listed[0]).not.toHaveProperty('token');
    expect(listed[0].last_used_at).not.toBeNull();

    expect((await call('DELETE', `/tokens/${token.id}`)).statusCode).toBe(204);
    expect((await auth('deployer')).statusCode).toBe(401);
    expect((await call('GET', '/tokens?user=deployer')).json().tokens[0].revoked_at).not.toBeNull();
    // Revoking again changes nothing; an unknown id is 404.
    expect((await call('DELETE', `/tokens/${token.id}`)).statusCode).toBe(204);
    expectError(await call('DELETE', '/tokens/at_nosuchtoken'), 404, 'NOT_FOUND');
  });

  it('creates a token that never expires, with a warning, and an admin token that can call the API', async () => {
    const res = await call('POST', '/tokens', { body: { user: 'root', name: 'forever', scopes: ['admin'], expires_in: null } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().expires_at).toBeNull();
    expect(res.json().warnings).toEqual([expect.stringMatching(/never expires/)]);
    expect((await call('GET', '/users', { token: res.json().token })).statusCode).toBe(200);
    const defaulted = await call('POST', '/tokens', { body: { user: 'root', name: 'default-expiry', scopes: ['repository:a/*:pull'] } });
    expect(defaulted.statusCode, defaulted.body).toBe(201);
    expect(Date.parse(defaulted.json().expires_at) - Date.now()).toBeGreaterThan(89 * 86_400_000);
    expect(Date.parse(defaulted.json().expires_at) - Date.now()).toBeLessThanOrEqual(90 * 86_400_000);
    const all = (await call('GET', '/tokens')).json().tokens as Array<{ user: string }>;
    expect(new Set(all.map((t) => t.user))).toEqual(new Set(['root', 'off-admin', 'ci', 'deployer']));
  });

  it('answers 400 to bad tokens and 409 to a duplicate name', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ user: 'root', name: 'x', scopes: ['repository:a:pull'], extra: 1 }, /unknown field "extra"/],
      [{ user: 'root', name: 'x', scopes: 'admin' }, /body\.scopes/],
      [{ user: 'root', name: 'x', scopes: ['repository:a:pull'], expires_in: '30d' }, /body\.expires_in/],
      [{ user: 'root', name: 'x', scopes: ['repository:a:pull'], expires_in: 0 }, /body\.expires_in/],
      [{ user: 'root', name: 'x', scopes: [] }, /at least one scope/],
      [{ user: 'root', name: 'x', scopes: ['repository'] }, /scope "repository"/],
      [{ user: 'root', name: 'x', scopes: ['repository:a:PULL'] }, /bad action/],
      [{ user: 'root', name: 'bad name', scopes: ['admin'] }, /token name/],
      [{ user: 'nobody', name: 'x', scopes: ['admin'] }, /does not exist/],
      [{ name: 'x', scopes: ['admin'] }, /body\.user/],
    ];
    for (const [body, message] of cases) expectError(await call('POST', '/tokens', { body }), 400, 'INVALID_REQUEST', message);
    expectError(await call('POST', '/tokens', { body: { user: 'root', name: 'api', scopes: ['admin'] } }), 409, 'CONFLICT');
  });

  it('answers 400 to an unknown query parameter', async () => {
    expectError(await call('GET', '/tokens?usr=root'), 400, 'INVALID_REQUEST', /unknown field "usr"/);
  });
});

describe('refresh tokens', () => {
  async function login(user: string, password: string): Promise<string> {
    const res = await server.app.inject({
      method: 'GET',
      url: '/auth?service=test-registry&offline_token=true&client_id=docker',
      headers: { authorization: basic(user, password) },
    });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().refresh_token as string;
  }

  it('lists and revokes refresh tokens by id, by user and all at once', async () => {
    await call('POST', '/users', { body: { name: 'dave', password: 'dave-pw' } });
    await call('POST', '/users', { body: { name: 'erin', password: 'erin-pw' } });
    const first = await login('dave', 'dave-pw');
    await login('dave', 'dave-pw');
    await login('erin', 'erin-pw');
    expect(first).toMatch(/^stsrt_/);

    const listed = (await call('GET', '/refresh-tokens?user=dave')).json().refresh_tokens;
    expect(listed).toHaveLength(2);
    expect(listed[0]).toMatchObject({ user: 'dave', service: 'test-registry', client_id: 'docker', revoked_at: null });

    expect((await call('DELETE', `/refresh-tokens/${listed[0].id}`)).statusCode).toBe(204);
    expectError(await call('DELETE', '/refresh-tokens/rt_nosuchtoken'), 404, 'NOT_FOUND');

    const byUser = await call('POST', '/refresh-tokens/revoke', { body: { user: 'dave' } });
    expect(byUser.statusCode, byUser.body).toBe(200);
    expect(byUser.json()).toEqual({ revoked: 1 });
    expect((await call('POST', '/refresh-tokens/revoke', { body: { all: true } })).json()).toEqual({ revoked: 1 });
    const all = (await call('GET', '/refresh-tokens')).json().refresh_tokens as Array<{ revoked_at: string | null }>;
    expect(all).toHaveLength(3);
    expect(all.every((t) => t.revoked_at !== null)).toBe(true);
  });

  it('answers 400 unless exactly one of user and all: true is given, and 404 to an unknown user', async () => {
    for (const body of [{}, { all: false }, { user: 'dave', all: true }, { everyone: true }]) {
      expectError(await call('POST', '/refresh-tokens/revoke', { body }), 400, 'INVALID_REQUEST');
    }
    expectError(await call('POST', '/refresh-tokens/revoke', { body: { user: 'nobody' } }), 404, 'NOT_FOUND');
  });
});

describe('changes', () => {
  it('lists the changes made through the API, naming the token that made them', async () => {
    await call('POST', '/users', { body: { name: 'frank' } });
    const res = await call('GET', '/changes?target=frank');
    expect(res.statusCode, res.body).toBe(200);
    const adminId = (await store.accessTokens.list('root')).find((t) => t.name === 'api')?.id;
    expect(res.json().changes).toEqual([expect.objectContaining({ action: 'user.create', target: 'frank', actor: `api:${adminId}` })]);
    expect(res.json().changes[0].at).toMatch(/Z$/);
  });

  it('limits the list to the newest changes', async () => {
    const res = await call('GET', '/changes?limit=2');
    expect(res.json().changes).toHaveLength(2);
    expect(res.json().changes[0].target).toBe('frank');
    expectError(await call('GET', '/changes?limit=0'), 400, 'INVALID_REQUEST', /query\.limit/);
    expectError(await call('GET', '/changes?limit=abc'), 400, 'INVALID_REQUEST', /query\.limit/);
  });
});

describe('a server with a path prefix, a token lifetime limit and a failing store', () => {
  let broken: StsServer;
  let own: Store;
  let fail: Error;
  let admin2: string;

  beforeAll(async () => {
    const brokenConfig = await loadTestConfig(keys, config({
        server: { addr: '127.0.0.1:0', path_prefix: '/sts' },
        access_tokens: { max_lifetime: '1h' },
        users: { static: { password: await hash('static-pw') } },
      }));
    own = (await prepareStore(brokenConfig)) as Store;
    const users = { ...own.users, list: () => Promise.reject(fail) };
    const wrapped: Store = Object.assign(Object.create(own) as Store, { users });
    broken = await createServer(brokenConfig, { store: wrapped, logger: createLogger({ level: 'silent' }) });
    await own.users.create({ name: 'root', passwordHash: null }, 'test');
    const ownService = new AdminService(own, brokenConfig, buildIssuer(brokenConfig, { store: own }).directory);
    admin2 = (await ownService.createToken({ user: 'root', name: 'api', scopes: ['admin'], expiresIn: 3600 }, 'test')).secret;
  });

  afterAll(async () => {
    await broken?.close();
    await own?.close();
  });

  it('serves the API under the path prefix', async () => {
    fail = new StoreUnavailableError('down');
    expect((await call('GET', '/groups', { target: broken, prefix: '/sts', token: admin2 })).statusCode).toBe(200);
    expect((await call('GET', '/groups', { target: broken, token: admin2 })).statusCode).toBe(404);
  });

  it('gives new tokens at most access_tokens.max_lifetime', async () => {
    const opts = { target: broken, prefix: '/sts', token: admin2 };
    const defaulted = await call('POST', '/tokens', { ...opts, body: { user: 'root', name: 'short', scopes: ['admin'] } });
    expect(defaulted.statusCode, defaulted.body).toBe(201);
    expect(Date.parse(defaulted.json().expires_at) - Date.now()).toBeLessThanOrEqual(3_600_000);
    const forever = await call('POST', '/tokens', { ...opts, body: { user: 'root', name: 'long', scopes: ['admin'], expires_in: null } });
    expectError(forever, 400, 'INVALID_REQUEST', /max_lifetime/);
  });

  it('leaves config-file users to the file, but gives them tokens', async () => {
    const opts = { target: broken, prefix: '/sts', token: admin2 };
    expectError(await call('POST', '/users', { ...opts, body: { name: 'static' } }), 400, 'INVALID_REQUEST', /config file/);
    expectError(await call('PATCH', '/users/static', { ...opts, body: { disabled: true } }), 400, 'INVALID_REQUEST', /config file/);
    const created = await call('POST', '/tokens', { ...opts, body: { user: 'static', name: 'ci', scopes: ['repository:a/*:pull'] } });
    expect(created.statusCode, created.body).toBe(201);
  });

  it('answers 503 with Retry-After when the store is unavailable', async () => {
    fail = new StoreUnavailableError('connection refused');
    const res = await call('GET', '/users', { target: broken, prefix: '/sts', token: admin2 });
    expectError(res, 503, 'UNAVAILABLE');
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body).not.toContain('connection refused');
  });

  it('answers 500 without details to a bug', async () => {
    fail = new TypeError('secret internals');
    const res = await call('GET', '/users', { target: broken, prefix: '/sts', token: admin2 });
    expectError(res, 500, 'INTERNAL', /^internal error$/);
  });
});

describe('without a store', () => {
  it('has no admin API', async () => {
    const { server: plain } = await startInProcess(keys, baseConfig());
    try {
      expect((await plain.app.inject({ method: 'GET', url: `${API}/users`, headers: { authorization: `Bearer ${admin}` } })).statusCode).toBe(404);
    } finally {
      await plain.close();
    }
  });
});

describe('secrets', () => {
  it('never answers with a password hash or a token digest', async () => {
    const digests = [...(await store.accessTokens.list()), ...(await store.refreshTokens.list())].map((t) => t.digest);
    expect(digests.length).toBeGreaterThan(5);
    expect(answers.length).toBeGreaterThan(50);
    for (const body of answers) {
      expect(body).not.toMatch(/\$2[aby]\$/);
      expect(body).not.toMatch(/digest|password_?hash/i);
      for (const digest of digests) expect(body).not.toContain(digest);
    }
  });
});

describe('docs/openapi.json', () => {
  it('is what scripts/openapi.ts generates from the routes now (npm run openapi)', async () => {
    const committed = JSON.parse(await readFile(OPENAPI_PATH, 'utf8'));
    expect(committed).toEqual(await generateOpenApi());
  });

  it('describes every route with its security and error answers', async () => {
    const document = (await generateOpenApi()) as {
      paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>>;
      security: unknown;
    };
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    expect(operations).toHaveLength(20);
    expect(operations).toEqual(expect.arrayContaining(['POST /api/v1/tokens', 'PUT /api/v1/groups/{name}/members/{user}', 'GET /api/v1/changes']));
    expect(document.security).toEqual([{ adminToken: [] }]);
    for (const methods of Object.values(document.paths)) {
      for (const operation of Object.values(methods)) expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '403', '503']));
    }
  });
});
