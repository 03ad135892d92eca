/**
 * Lockouts (security/lockout.ts) through the token endpoint, counted in memory, with a fake clock:
 * only bad passwords count, per (account, address) and per account, with a doubling lock answered
 * 429 + Retry-After; machine credentials, malformed requests and outages never count.
 */
import { createServer as createNetServer } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminService } from '../../src/admin/service.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { buildIssuer, createServer, type StsServer } from '../../src/server/app.js';
import { baseConfig, hash, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { MemoryAudit, basic } from '../helpers/server.js';

let keys: KeyDir;
let clock = Date.parse('2030-01-01T00:00:00Z');
const now = () => clock;
const servers: StsServer[] = [];
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function start(overrides: Partial<ConfigInput>, logs?: string[]): Promise<{ server: StsServer; audit: MemoryAudit }> {
  const audit = new MemoryAudit();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs?.push(chunk.toString());
      done();
    },
  });
  const logger = createLogger({ level: logs ? 'info' : 'silent' }, sink);
  const server = await createServer(await loadTestConfig(keys, baseConfig(overrides)), { logger, audit, now });
  await server.app.ready();
  servers.push(server);
  return { server, audit };
}

function token(server: StsServer, authorization: string | undefined, ip = '10.0.0.1', extra = '', headers: Record<string, string> = {}) {
  return server.app.inject({
    method: 'GET',
    url: `/auth?service=test-registry&scope=repository:team/app:pull${extra}`,
    headers: { ...headers, ...(authorization ? { authorization } : {}) },
    remoteAddress: ip,
  });
}

let users: NonNullable<ConfigInput['users']>;
const acl = [{ match: { account: '/.+/' }, actions: ['pull'] }];
let n = 0;
/** A different wrong password each time, so the POST/GET dedup does not merge them. */
const wrong = () => `wrong-${++n}`;

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  users = {
    alice: { password: await hash('alice-pw') },
    bob: { password: await hash('bob-pw') },
    carol: { password: await hash('carol-pw') },
    dave: { password: await hash('dave-pw') },
  };
});

afterAll(async () => {
  for (const server of servers) await server.close();
  await keys.cleanup();
});

describe('per (account, address)', () => {
  let server: StsServer;
  let audit: MemoryAudit;
  beforeAll(async () => {
    ({ server, audit } = await start({ users, acl, lockout: { threshold: 5, account_threshold: 50, max_delay: '8s' } }));
  });

  it('locks after the threshold with a doubling Retry-After, capped; the right password is refused meanwhile', async () => {
    for (let i = 0; i < 5; i++) expect((await token(server, basic('alice', wrong()))).statusCode).toBe(401);
    const locked = await token(server, basic('alice', 'alice-pw'));
    expect(locked.statusCode).toBe(429);
    expect(locked.headers['retry-after']).toBe('1');
    expect(locked.headers['content-type']).toMatch(/^application\/json/);
    expect(locked.json().errors[0].code).toBe('TOO_MANY_REQUESTS');
    expect(audit.last()).toMatchObject({ result: 'locked_out', account: 'alice' });
    // Refused before the password is checked: a wrong one during the lock is not counted either.
    expect((await token(server, basic('alice', wrong()))).statusCode).toBe(429);

    // Each failure after a lock ends doubles the next lock: 2 s, 4 s, then the 8 s cap.
    const steps = [
      { wait: 1, lock: 2 },
      { wait: 2, lock: 4 },
      { wait: 4, lock: 8 },
      { wait: 8, lock: 8 },
    ];
    for (const { wait, lock } of steps) {
      clock += wait * 1000;
      expect((await token(server, basic('alice', wrong()))).statusCode, 'a wrong password once the lock has ended').toBe(401);
      const next = await token(server, basic('alice', 'alice-pw'));
      expect(next.statusCode).toBe(429);
      expect(next.headers['retry-after']).toBe(String(lock));
    }
    clock += 3000;
    expect((await token(server, basic('alice', 'alice-pw'))).headers['retry-after']).toBe('5');
  });

  it('does not lock the same account from another address', async () => {
    expect((await token(server, basic('alice', 'alice-pw'), '10.0.0.2')).statusCode).toBe(200);
  });

  it('a success after the lock resets the counter of that address', async () => {
    clock += 5000;
    expect((await token(server, basic('alice', 'alice-pw'))).statusCode).toBe(200);
    for (let i = 0; i < 4; i++) expect((await token(server, basic('alice', wrong()))).statusCode).toBe(401);
    expect((await token(server, basic('alice', 'alice-pw'))).statusCode).toBe(200);
  });

  it('compares user names without case', async () => {
    for (let i = 0; i < 5; i++) expect((await token(server, basic(i % 2 ? 'BOB' : 'bob', wrong()), '10.0.0.3')).statusCode).toBe(401);
    expect((await token(server, basic('bob', 'bob-pw'), '10.0.0.3')).statusCode).toBe(429);
  });

  it('throttles unknown accounts the same way', async () => {
    for (let i = 0; i < 5; i++) expect((await token(server, basic('nobody', wrong()), '10.0.0.4')).statusCode).toBe(401);
    const res = await token(server, basic('nobody', wrong()), '10.0.0.4');
    expect(res.statusCode).toBe(429);
    expect(res.headers['retry-after']).toBe('1');
  });

  it('counts a POST retried as GET (same account, address and password) once', async () => {
    for (let i = 0; i < 4; i++) {
      const password = wrong();
      const post = await server.app.inject({
        method: 'POST',
        url: '/auth',
        headers: FORM,
        payload: `grant_type=password&service=test-registry&client_id=containerd-client&username=carol&password=${password}`,
        remoteAddress: '10.0.0.5',
      });
      expect(post.statusCode).toBe(401);
      expect((await token(server, basic('carol', password), '10.0.0.5')).statusCode).toBe(401);
    }
    // Eight failed calls, four attempts: still under the threshold of five.
    expect((await token(server, basic('carol', 'carol-pw'), '10.0.0.5')).statusCode).toBe(200);
    // The same wrong password again after the dedup window is a new attempt.
    const again = wrong();
    for (let i = 0; i < 5; i++) {
      if (i > 0) clock += 11_000;
      expect((await token(server, basic('carol', again), '10.0.0.5')).statusCode).toBe(401);
    }
    expect((await token(server, basic('carol', 'carol-pw'), '10.0.0.5')).statusCode).toBe(429);
  });

  it('never counts malformed requests (400) or anonymous ones', async () => {
    for (let i = 0; i < 10; i++) {
      expect((await token(server, basic('dave', wrong()), '10.0.0.6', '&scope=repository:Team/App:pull')).statusCode).toBe(400);
      const unknownService = await server.app.inject({ method: 'GET', url: '/auth?service=other', headers: { authorization: basic('dave', wrong()) }, remoteAddress: '10.0.0.6' });
      expect(unknownService.statusCode).toBe(400);
      expect((await token(server, undefined, '10.0.0.6')).statusCode).toBe(401);
    }
    expect((await token(server, basic('dave', 'dave-pw'), '10.0.0.6')).statusCode).toBe(200);
  });
});

describe('per account', () => {
  it('locks every address once the account-wide threshold trips', async () => {
    const { server } = await start({ users, acl, lockout: { threshold: 3, account_threshold: 6 } });
    for (let i = 1; i <= 6; i++) expect((await token(server, basic('alice', wrong()), `10.1.0.${i}`)).statusCode).toBe(401);
    const res = await token(server, basic('alice', 'alice-pw'), '10.1.0.99');
    expect(res.statusCode).toBe(429);
    expect(res.headers['retry-after']).toBe('1');
    expect((await token(server, basic('bob', 'bob-pw'), '10.1.0.99')).statusCode).toBe(200);
    clock += 1000;
    expect((await token(server, basic('alice', 'alice-pw'), '10.1.0.99')).statusCode).toBe(200);
  });

  it('is off with enabled: false', async () => {
    const { server } = await start({ users, acl, lockout: { enabled: false } });
    for (let i = 0; i < 8; i++) expect((await token(server, basic('alice', wrong()))).statusCode).toBe(401);
    expect((await token(server, basic('alice', 'alice-pw'))).statusCode).toBe(200);
  });

  it('refuses an account threshold under the address threshold, and a bad duration, naming the key', async () => {
    const error = (await loadTestConfig(keys, baseConfig({ users, acl, lockout: { threshold: 10, account_threshold: 5, window: '15 minutes' as unknown as number } })).catch(
      (e: unknown) => e,
    )) as { issues: { path: string; message: string }[] };
    expect(error.issues.map((i) => i.path).sort()).toEqual(['lockout.window']);
    const second = (await loadTestConfig(keys, baseConfig({ users, acl, lockout: { threshold: 10, account_threshold: 5 } })).catch((e: unknown) => e)) as {
      issues: { path: string; message: string }[];
    };
    expect(second.issues).toContainEqual({ path: 'lockout.account_threshold', message: 'must be at least threshold' });
    const third = (await loadTestConfig(keys, baseConfig({ users, acl, lockout: { redis: { url_file: 'missing.url' } } })).catch((e: unknown) => e)) as {
      issues: { path: string; message: string }[];
    };
    expect(third.issues).toContainEqual({ path: 'lockout.redis.url_file', message: expect.stringMatching(/no such file/) });
    const fourth = (await loadTestConfig(keys, baseConfig({ users, acl, lockout: { redis: { url: 'http://redis:6379' } } })).catch((e: unknown) => e)) as {
      issues: { path: string; message: string }[];
    };
    expect(fourth.issues).toContainEqual({ path: 'lockout.redis.url', message: 'must be a redis:// or rediss:// URL' });
  });
});

describe('machine credentials and outages', () => {
  it('an access token keeps working while its owner is locked out, and bad tokens never lock', async () => {
    const { server } = await start({ users, acl, store: { driver: 'sqlite', path: 'lockout-store.db' }, lockout: { threshold: 3 } });
    const store = server.store;
    if (!store) throw new Error('no store');
    const admin = new AdminService(store, server.config, buildIssuer(server.config, { store }).directory, now);
    const created = await admin.createToken({ user: 'alice', name: 'ci', scopes: ['repository:team/*:pull'], expiresIn: null }, 'test');
    for (let i = 0; i < 3; i++) expect((await token(server, basic('alice', wrong()))).statusCode).toBe(401);
    expect((await token(server, basic('alice', 'alice-pw'))).statusCode).toBe(429);
    expect((await token(server, basic('alice', created.secret))).statusCode).toBe(200);
    expect((await token(server, basic('', created.secret))).statusCode).toBe(200);
    // A wrong access token is denied but never counted against the account or the address.
    const fake = `stsat_${'A'.repeat(49)}`;
    for (let i = 0; i < 5; i++) expect((await token(server, basic('bob', fake))).statusCode).toBe(401);
    expect((await token(server, basic('bob', 'bob-pw'))).statusCode).toBe(200);
  });

  it('never counts a backend outage (503)', async () => {
    const closed = await new Promise<number>((resolve) => {
      const probe = createNetServer().listen(0, '127.0.0.1', () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const { server } = await start({
      users,
      acl,
      webhook_auth: { url: `http://127.0.0.1:${closed}/authn`, retries: 0, timeout: '1s' },
      lockout: { threshold: 2 },
    });
    for (let i = 0; i < 4; i++) {
      const res = await token(server, basic('hook', wrong()), '10.2.0.1');
      expect(res.statusCode).toBe(503);
    }
    // Still not locked: the next answer is the backend's again (503), not 429.
    expect((await token(server, basic('hook', wrong()), '10.2.0.1')).statusCode).toBe(503);
  });
});

describe('client address behind proxies', () => {
  it('reads real_ip_header only from trusted proxies', async () => {
    const { server, audit } = await start({
      users,
      acl,
      server: { addr: '127.0.0.1:0', real_ip_header: 'X-Real-IP', trusted_proxies: ['10.9.0.0/16', '192.0.2.7'] },
      lockout: { threshold: 2 },
    });
    await token(server, basic('alice', 'alice-pw'), '10.9.3.4', '', { 'x-real-ip': '203.0.113.5' });
    expect(audit.last().ip).toBe('203.0.113.5');
    await token(server, basic('alice', 'alice-pw'), '::ffff:192.0.2.7', '', { 'x-real-ip': '203.0.113.6' });
    expect(audit.last().ip).toBe('203.0.113.6');
    // A client talking to us directly cannot pick its address (and so dodge its lockout).
    await token(server, basic('alice', 'alice-pw'), '198.51.100.1', '', { 'x-real-ip': '203.0.113.7' });
    expect(audit.last().ip).toBe('198.51.100.1');
    for (let i = 0; i < 2; i++) {
      expect((await token(server, basic('alice', wrong()), '198.51.100.1', '', { 'x-real-ip': `203.0.113.${20 + i}` })).statusCode).toBe(401);
    }
    expect((await token(server, basic('alice', 'alice-pw'), '198.51.100.1', '', { 'x-real-ip': '203.0.113.30' })).statusCode).toBe(429);
    // Behind the proxy, each real client has its own counter.
    expect((await token(server, basic('alice', 'alice-pw'), '10.9.0.1', '', { 'x-real-ip': '203.0.113.31' })).statusCode).toBe(200);
  });

  it('without trusted_proxies reads the header from everyone (docker_auth) and warns at start', async () => {
    const logs: string[] = [];
    const { server, audit } = await start({ users, acl, server: { addr: '127.0.0.1:0', real_ip_header: 'X-Real-IP' } }, logs);
    expect(logs.join('')).toMatch(/real_ip_header is read from every connection.*trusted_proxies/);
    await token(server, basic('alice', 'alice-pw'), '198.51.100.2', '', { 'x-real-ip': '203.0.113.8' });
    expect(audit.last().ip).toBe('203.0.113.8');
  });

  it('with no header configured never reads client-supplied headers, and does not warn', async () => {
    const logs: string[] = [];
    const { server, audit } = await start({ users, acl }, logs);
    expect(logs.join('')).not.toMatch(/real_ip_header/);
    await token(server, basic('alice', 'alice-pw'), '198.51.100.3', '', { 'x-real-ip': '203.0.113.9', 'x-forwarded-for': '203.0.113.10' });
    expect(audit.last().ip).toBe('198.51.100.3');
  });

  it('refuses a trusted_proxies entry that is not an address or CIDR, naming the key', async () => {
    const error = (await loadTestConfig(keys, baseConfig({ server: { addr: ':0', trusted_proxies: ['10.0.0.0/33'] } })).catch((e: unknown) => e)) as {
      issues: { path: string; message: string }[];
    };
    expect(error.issues).toContainEqual({ path: 'server.trusted_proxies[0]', message: expect.stringMatching(/not a valid CIDR/) });
  });
});
