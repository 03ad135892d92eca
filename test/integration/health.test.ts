import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer, prepareStore } from '../../src/server/app.js';
import { READINESS_CACHE_MS, signingKeyProblem } from '../../src/server/health-route.js';
import { baseConfig, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { MemoryAudit, startInProcess } from '../helpers/server.js';
import { signingKeyFromPem } from '../../src/token/keys.js';
import { BASE_DN, SERVICE_DN, startSlapd, type Slapd } from '../helpers/slapd.js';

let keys: KeyDir;
beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
});
afterAll(async () => {
  await keys.cleanup();
});

describe('/healthz and /readyz', () => {
  it('are ready with a store; a closed store makes /readyz 503 listing store, /healthz stays 200', async () => {
    let clock = Date.now();
    const loaded = await loadTestConfig(keys, baseConfig({ users: {}, acl: [], store: { path: 'health.db' } }));
    const store = await prepareStore(loaded);
    const server = await createServer(loaded, { store, logger: createLogger({ level: 'silent' }), audit: new MemoryAudit(), now: () => clock });
    try {
      const ready = await server.app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({ status: 'ok', checks: { config: 'ok', signing_key: 'ok', store: 'ok' } });

      await store?.close();
      // Probes within the cache window get the last answer: they cannot hammer the store.
      expect((await server.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      clock += READINESS_CACHE_MS + 1;
      const down = await server.app.inject({ method: 'GET', url: '/readyz' });
      expect(down.statusCode).toBe(503);
      expect(down.headers['cache-control']).toBe('no-store');
      expect(down.json()).toEqual({ status: 'unavailable', failed: ['store'], checks: { config: 'ok', signing_key: 'ok', store: 'failed' } });

      const alive = await server.app.inject({ method: 'GET', url: '/healthz' });
      expect(alive.statusCode).toBe(200);
      expect(alive.json()).toEqual({ status: 'ok' });
      const metrics = await server.app.inject({ method: 'GET', url: '/metrics' });
      expect(metrics.body).toMatch(/^sts_ready\{check="store"\} 0$/m);
    } finally {
      await server.close();
    }
  });

  it('live under path_prefix, and are ready without a store', async () => {
    const { server } = await startInProcess(keys, { ...baseConfig({ users: {}, acl: [] }), server: { addr: '127.0.0.1:0', path_prefix: '/sts' } });
    try {
      expect((await server.app.inject({ method: 'GET', url: '/sts/healthz' })).statusCode).toBe(200);
      const ready = await server.app.inject({ method: 'GET', url: '/sts/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json().checks).toEqual({ config: 'ok', signing_key: 'ok' });
      expect((await server.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('finds the signing key usable until its certificate expires', () => {
    const key = signingKeyFromPem(keys.keyPem, keys.certPem);
    expect(signingKeyProblem(key)).toBeUndefined();
    expect(signingKeyProblem(key, Date.parse(key.certificate.validTo) + 1000)).toMatch(/expired/);
  });
});

describe('/readyz with LDAP', () => {
  let slapd: Slapd;
  beforeAll(async () => {
    slapd = await startSlapd();
  });
  afterAll(async () => {
    await slapd?.close();
  });

  it('checks the directory through a pooled connection: 503 listing ldap when slapd is down', async () => {
    let clock = Date.now();
    const ldap_auth: NonNullable<ConfigInput['ldap_auth']> = {
      addr: `127.0.0.1:${slapd.port}`,
      base: BASE_DN,
      filter: '(&(objectClass=inetOrgPerson)(uid=${account}))',
      bind_dn: SERVICE_DN,
      bind_password_file: slapd.servicePasswordFile,
      cache_ttl: 0,
      timeout: '1s',
    };
    const { server } = await startInProcess(keys, baseConfig({ users: undefined, acl: [], ldap_auth, authn_order: ['ldap'] }), { now: () => clock });
    try {
      const ready = await server.app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.json()).toEqual({ status: 'ok', checks: { config: 'ok', signing_key: 'ok', ldap: 'ok' } });
      await slapd.stop();
      clock += READINESS_CACHE_MS + 1;
      const down = await server.app.inject({ method: 'GET', url: '/readyz' });
      expect(down.statusCode).toBe(503);
      expect(down.json().failed).toEqual(['ldap']);
      expect((await server.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await server.close();
    }
  });
});
