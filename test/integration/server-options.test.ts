import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseConfig, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess } from '../helpers/server.js';
import { createServer } from '../../src/server/app.js';
import { createLogger } from '../../src/observability/logger.js';
import { loadTestConfig } from '../helpers/fixtures.js';

let keys: KeyDir;
beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
});
afterAll(() => keys.cleanup());

describe('path_prefix', () => {
  it('serves the token endpoint under the prefix only', async () => {
    const { server } = await startInProcess(keys, baseConfig({ server: { path_prefix: '/sts/' }, users: { '': {} } }));
    expect((await server.app.inject({ url: '/sts/auth?service=test-registry' })).statusCode).toBe(200);
    expect((await server.app.inject({ url: '/sts/auth/token?service=test-registry' })).statusCode).toBe(200);
    expect((await server.app.inject({ url: '/auth?service=test-registry' })).statusCode).toBe(404);
    await server.close();
  });
});

describe('real_ip_header', () => {
  const acl = [
    { match: { ip: '10.1.0.0/16' }, actions: ['pull'] },
    { match: {}, actions: [] },
  ];

  it('takes the client address from the configured entry of the header', async () => {
    const { server, audit } = await startInProcess(
      keys,
      baseConfig({ server: { real_ip_header: 'X-Forwarded-For', real_ip_pos: -1 }, users: { '': {} }, acl }),
    );
    const res = await server.app.inject({
      url: '/auth?service=test-registry&scope=repository:a:pull',
      headers: { 'x-forwarded-for': '192.0.2.7, 10.1.2.3' },
    });
    expect(res.statusCode).toBe(200);
    expect(audit.last().ip).toBe('10.1.2.3');
    expect(audit.last().granted).toEqual(['repository:a:pull']);
    const spoofed = await server.app.inject({
      url: '/auth?service=test-registry&scope=repository:a:pull',
      headers: { 'x-forwarded-for': '10.1.2.3, 192.0.2.7' },
    });
    expect(audit.last().ip).toBe('192.0.2.7');
    expect(spoofed.json().token).toBeDefined();
    expect(audit.last().granted).toEqual([]);
    await server.close();
  });

  it('answers 400 when the header is missing or not an address', async () => {
    const { server } = await startInProcess(keys, baseConfig({ server: { real_ip_header: 'X-Real-IP' }, users: { '': {} } }));
    expect((await server.app.inject({ url: '/auth?service=test-registry' })).statusCode).toBe(400);
    expect((await server.app.inject({ url: '/auth?service=test-registry', headers: { 'x-real-ip': 'not-an-ip' } })).statusCode).toBe(400);
    expect((await server.app.inject({ url: '/auth?service=test-registry', headers: { 'x-real-ip': '2001:db8::1' } })).statusCode).toBe(200);
    await server.close();
  });

  it('ignores a client-supplied header when none is configured', async () => {
    const { server, audit } = await startInProcess(keys, baseConfig({ users: { '': {} }, acl }));
    await server.app.inject({ url: '/auth?service=test-registry&scope=repository:a:pull', headers: { 'x-forwarded-for': '10.1.2.3' } });
    expect(audit.last().ip).toBe('127.0.0.1');
    expect(audit.last().granted).toEqual([]);
    await server.close();
  });
});

describe('hsts', () => {
  it('adds Strict-Transport-Security when enabled', async () => {
    const { server } = await startInProcess(keys, baseConfig({ server: { hsts: true }, users: { '': {} } }));
    const res = await server.app.inject({ url: '/auth?service=test-registry' });
    expect(res.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains');
    await server.close();
  });
});

describe('HTTPS', () => {
  it('serves TLS with server.certificate and server.key', async () => {
    const loaded = await loadTestConfig(keys, baseConfig({ server: { addr: '127.0.0.1:0', certificate: 'token.crt', key: 'token.key' }, users: { '': {} } }));
    const server = await createServer(loaded, { logger: createLogger({ level: 'silent' }) });
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const status = await new Promise<number>((resolve, reject) => {
      // The self-signed certificate names no host; trust it and skip the name check for this test only.
      const req = httpsRequest(`${url}/auth?service=test-registry`, { ca: keys.certPem, checkServerIdentity: () => undefined }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    await server.close();
  });
});

describe('password timing', () => {
  it('spends about as long on an unknown user as on a wrong password', async () => {
    const { server } = await startInProcess(keys, baseConfig({ users: { alice: { password: await hash('right', 9) } } }));
    const time = async (user: string) => {
      const start = process.hrtime.bigint();
      const res = await server.app.inject({ url: '/auth?service=test-registry', headers: { authorization: basic(user, 'wrong') } });
      expect(res.statusCode).toBe(401);
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    await time('alice'); // warm the dummy hash
    await time('nobody');
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 6; i++) {
      known.push(await time('alice'));
      unknown.push(await time('nobody'));
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const ratio = median(unknown) / median(known);
    // bcrypt at cost 9 takes ~25 ms; without the dummy check an unknown user would answer in ~0.1 ms.
    expect(ratio).toBeGreaterThan(0.6);
    expect(ratio).toBeLessThan(1.6);
    await server.close();
  });
});
