import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminService } from '../../src/admin/service.js';
import type { StsServer } from '../../src/server/app.js';
import { buildIssuer } from '../../src/server/app.js';
import { baseConfig, decodeJwt, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess, type MemoryAudit } from '../helpers/server.js';

let keys: KeyDir;
let server: StsServer;
let audit: MemoryAudit;
let admin: AdminService;
let clock = Date.now();

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  ({ server, audit } = await startInProcess(
    keys,
    baseConfig({
      users: { static: { password: await hash('static-pw') } },
      acl: [
        { match: { account: 'static' }, actions: ['*'] },
        { match: { labels: { groups: 'devs' }, name: 'team/*' }, actions: ['pull', 'push'] },
      ],
      store: { driver: 'sqlite', path: 'store.db' },
      refresh_tokens: { idle_timeout: '1d', max_age: '7d' },
    }),
    { now: () => clock },
  ));
  const store = server.store;
  if (!store) throw new Error('no store');
  admin = new AdminService(store, server.config, buildIssuer(server.config, { store }).directory, () => clock);
  await admin.addUser({ name: 'alice', password: 'alice-pw' }, 'test');
  await admin.addGroup('devs', {}, 'test');
  await admin.addMember('devs', 'alice', 'test');
  await admin.addUser({ name: 'robot', password: null }, 'test');
  await admin.addRule({ match: { account: 'robot' }, actions: ['pull', 'push'] }, undefined, 'test');
});

afterAll(async () => {
  await server.close();
  await keys.cleanup();
});

const get = (query: string, authorization?: string) =>
  server.app.inject({ method: 'GET', url: `/auth?service=test-registry&${query}`, headers: authorization ? { authorization } : {} });
const access = (res: { json(): { token: string } }) => decodeJwt(res.json().token).claims.access as Array<{ actions: string[] }>;

describe('store users', () => {
  it('sign in with their password and get their group rules', async () => {
    const res = await get('scope=repository:team/app:push', basic('alice', 'alice-pw'));
    expect(res.statusCode).toBe(200);
    expect(access(res)).toEqual([{ type: 'repository', name: 'team/app', actions: ['push'] }]);
    expect(audit.last()).toMatchObject({ backend: 'store', account: 'alice' });
  });

  it('are refused with a wrong password, when disabled, and as robots with a password', async () => {
    expect((await get('', basic('alice', 'nope'))).statusCode).toBe(401);
    await admin.setDisabled('alice', true, 'test');
    expect((await get('', basic('alice', 'alice-pw'))).statusCode).toBe(401);
    expect(audit.last().reason).toBe('account disabled');
    await admin.setDisabled('alice', false, 'test');
    expect((await get('', basic('robot', 'anything'))).statusCode).toBe(401);
  });

  it('are authorized by stored rules after the config rules, without a restart', async () => {
    const before = await get('scope=repository:other/x:pull', basic('alice', 'alice-pw'));
    expect(access(before)).toEqual([{ type: 'repository', name: 'other/x', actions: [] }]);
    const rule = await admin.addRule({ match: { account: 'alice', name: 'other/*' }, actions: ['pull'] }, undefined, 'test');
    const after = await get('scope=repository:other/x:pull', basic('alice', 'alice-pw'));
    expect(access(after)).toEqual([{ type: 'repository', name: 'other/x', actions: ['pull'] }]);
    expect(audit.last().reason).toContain(`store rule ${rule.id}`);
    await admin.removeRule(rule.id, 'test');
    expect(access(await get('scope=repository:other/x:pull', basic('alice', 'alice-pw')))[0]?.actions).toEqual([]);
  });
});

describe('access tokens', () => {
  it('work as the password, granting the intersection of their scopes and the owner rules', async () => {
    const { secret, record } = await admin.createToken({ user: 'robot', name: 'ci', scopes: ['repository:ci/*:pull'], expiresIn: 3600 }, 'test');
    const res = await get('scope=repository:ci/app:pull,push&scope=repository:other/app:pull', basic('robot', secret));
    expect(res.statusCode).toBe(200);
    expect(access(res)).toEqual([
      { type: 'repository', name: 'ci/app', actions: ['pull'] },
      { type: 'repository', name: 'other/app', actions: [] },
    ]);
    expect(audit.last()).toMatchObject({ backend: `access-token:${record.id}`, account: 'robot' });
    await new Promise((r) => setTimeout(r, 50));
    const [listed] = await admin.listTokens('robot');
    expect(listed?.lastUsedAt).not.toBeNull();
    expect(listed?.lastUsedIp).toBe('127.0.0.1');
  });

  it('are refused once revoked, expired, or for another user name', async () => {
    const { secret, record } = await admin.createToken({ user: 'robot', name: 'short', scopes: ['repository:*:pull'], expiresIn: 60 }, 'test');
    expect((await get('', basic('robot', secret))).statusCode).toBe(200);
    expect((await get('', basic('', secret))).statusCode).toBe(200);
    expect((await get('', basic('alice', secret))).statusCode).toBe(401);
    clock += 61_000;
    expect((await get('', basic('robot', secret))).statusCode).toBe(401);
    expect(audit.last().reason).toMatch(/has expired/);
    clock -= 61_000;
    await admin.revokeToken(record.id, 'test');
    expect((await get('', basic('robot', secret))).statusCode).toBe(401);
    expect(audit.last().reason).toMatch(/is revoked/);
  });

  it('stop working when the owner is disabled or removed', async () => {
    await admin.addUser({ name: 'temp', password: 'temp-pw' }, 'test');
    const { secret } = await admin.createToken({ user: 'temp', name: 't', scopes: ['repository:*:pull'], expiresIn: null }, 'test');
    expect((await get('', basic('temp', secret))).statusCode).toBe(200);
    await admin.setDisabled('temp', true, 'test');
    expect((await get('', basic('temp', secret))).statusCode).toBe(401);
    await admin.setDisabled('temp', false, 'test');
    await admin.removeUser('temp', 'test');
    expect((await get('', basic('temp', secret))).statusCode).toBe(401);
  });

  it('can belong to a config user', async () => {
    const { secret } = await admin.createToken({ user: 'static', name: 'ci', scopes: ['repository:a/*:pull,push'], expiresIn: 3600 }, 'test');
    const res = await get('scope=repository:a/b:push,delete', basic('static', secret));
    expect(access(res)).toEqual([{ type: 'repository', name: 'a/b', actions: ['push'] }]);
  });

  it('never trade for a refresh token', async () => {
    const { secret } = await admin.createToken({ user: 'robot', name: 'login', scopes: ['repository:*:pull'], expiresIn: 3600 }, 'test');
    const res = await get('offline_token=true&client_id=docker', basic('robot', secret));
    expect(res.statusCode).toBe(200);
    expect(res.json()).not.toHaveProperty('refresh_token');
  });

  it('reject a well-formed token that does not exist with 401, a mistyped one as a password', async () => {
    const { secret } = await admin.createToken({ user: 'robot', name: 'x', scopes: ['repository:*:pull'], expiresIn: 3600 }, 'test');
    const other = `${secret.slice(0, 10)}${secret[10] === 'A' ? 'B' : 'A'}${secret.slice(11)}`;
    expect((await get('', basic('robot', other))).statusCode).toBe(401);
  });
});

describe('refresh tokens', () => {
  async function login(extra = 'offline_token=true&client_id=docker&account=alice') {
    const res = await get(extra, basic('alice', 'alice-pw'));
    expect(res.statusCode).toBe(200);
    return res.json().refresh_token as string;
  }

  it('are returned only when asked for', async () => {
    expect((await get('', basic('alice', 'alice-pw'))).json()).not.toHaveProperty('refresh_token');
    expect(await login()).toMatch(/^stsrt_[A-Za-z0-9_-]{49}$/);
    const post = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: 'grant_type=password&username=alice&password=alice-pw&service=test-registry&access_type=offline&client_id=containerd-client' });
    expect(post.json().refresh_token).toMatch(/^stsrt_/);
  });

  it('mint access tokens on the POST refresh grant and come back unchanged', async () => {
    const refresh = await login();
    const res = await server.app.inject({
      method: 'POST',
      url: '/auth',
      headers: FORM,
      payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh, service: 'test-registry', client_id: 'docker', scope: 'repository:team/app:pull,push' }).toString(),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().refresh_token).toBe(refresh);
    expect(res.json().scope).toBe('repository:team/app:pull,push');
    expect(decodeJwt(res.json().access_token).claims.sub).toBe('alice');
  });

  it('work as the Basic password of a GET (containerd fallback with an identity token)', async () => {
    const refresh = await login();
    const res = await get('scope=repository:team/app:pull', basic('', refresh));
    expect(res.statusCode).toBe(200);
    expect(res.json()).not.toHaveProperty('refresh_token');
  });

  it('are bound to their service', async () => {
    const refresh = await login();
    const res = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: `grant_type=refresh_token&refresh_token=${refresh}&service=another` });
    expect(res.statusCode).toBe(400); // unknown service: test-registry is the only one
  });

  it('stop working when revoked, idle too long, too old, or the user is disabled', async () => {
    const refresh = await login();
    const grant = () => server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: `grant_type=refresh_token&refresh_token=${refresh}&service=test-registry` });
    expect((await grant()).statusCode).toBe(200);
    await admin.setDisabled('alice', true, 'test');
    expect((await grant()).statusCode).toBe(401);
    await admin.setDisabled('alice', false, 'test');
    await new Promise((r) => setTimeout(r, 50)); // let the last use be recorded
    clock += 2 * 86_400_000; // idle for two days, the limit is one
    expect((await grant()).statusCode).toBe(401);
    expect(audit.last().reason).toMatch(/idle too long/);
    clock -= 2 * 86_400_000;
    const [record] = (await admin.listRefreshTokens('alice')).filter((r) => r.revokedAt === null).slice(-1);
    expect(record).toBeDefined();
    const revoked = await admin.revokeRefreshTokens({ user: 'alice' }, 'test');
    expect(revoked).toBeGreaterThan(0);
    expect((await grant()).statusCode).toBe(401);
  });

  it('are issued to config users too', async () => {
    const res = await get('offline_token=true&client_id=docker', basic('static', 'static-pw'));
    expect(res.statusCode).toBe(200);
    const refresh = res.json().refresh_token as string;
    const again = await get('scope=repository:x/y:push', basic('', refresh));
    expect(access(again)).toEqual([{ type: 'repository', name: 'x/y', actions: ['push'] }]);
  });

  it('answer a missing refresh_token with 400 and an unknown one with 401', async () => {
    const missing = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: 'grant_type=refresh_token&service=test-registry' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error).toBe('invalid_request');
    const unknown = await server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: 'grant_type=refresh_token&refresh_token=stsrt_nope&service=test-registry' });
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json().error).toBe('invalid_grant');
  });
});

describe('config users and store users', () => {
  it('refuses to start when a name is in both', async () => {
    const store = server.store;
    if (!store) throw new Error('no store');
    // alice lives in the store (above); a config that also defines her must not start.
    const config = baseConfig({
      users: { alice: { password: await hash('x') } },
      store: { driver: 'sqlite', path: 'store.db' },
    });
    await expect(startInProcess(keys, config)).rejects.toThrow(/users\.alice: is also a user in the store/);
  });

  it('accept a store-first authn_order', async () => {
    await admin.addUser({ name: 'ordered', password: 'store-pw' }, 'test');
    const { server: other } = await startInProcess(
      keys,
      baseConfig({ users: {}, store: { driver: 'sqlite', path: 'store.db' }, authn_order: ['store', 'users'], acl: [{ match: {}, actions: ['pull'] }] }),
    );
    const res = await other.app.inject({ url: '/auth?service=test-registry', headers: { authorization: basic('ordered', 'store-pw') } });
    expect(res.statusCode).toBe(200);
    await other.close();
  });
});
