/**
 * The credential cache through the token endpoint of two server instances on one SQLite store
 * (two replicas): a password change or a disablement made through one counts on the other's next
 * request, although the other remembers the old password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminService } from '../../src/admin/service.js';
import { buildIssuer, type StsServer } from '../../src/server/app.js';
import { baseConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess } from '../helpers/server.js';

let keys: KeyDir;
let replicaA: StsServer;
let replicaB: StsServer;
let admin: AdminService;

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  const config = baseConfig({
    store: { driver: 'sqlite', path: 'store.db' },
    credential_cache: { ttl: 600 },
    acl: [{ match: { account: 'carol' }, actions: ['pull'] }],
  });
  ({ server: replicaA } = await startInProcess(keys, config));
  ({ server: replicaB } = await startInProcess(keys, config));
  const storeB = replicaB.store;
  if (!storeB) throw new Error('the test config names a store');
  admin = new AdminService(storeB, replicaB.config, buildIssuer(replicaB.config, { store: storeB }).directory);
  await admin.addUser({ name: 'carol', password: 'first-password' }, 'test');
});

afterAll(async () => {
  await replicaA?.close();
  await replicaB?.close();
  await keys?.cleanup();
});

const token = (server: StsServer, password: string) =>
  server.app.inject({
    method: 'GET',
    url: '/auth?service=test-registry&scope=repository:app:pull',
    headers: { authorization: basic('carol', password) },
  });

describe('credential cache across replicas', () => {
  it('serves the remembered password, then refuses it once it is changed on the other replica', async () => {
    expect((await token(replicaA, 'first-password')).statusCode).toBe(200);
    expect((await token(replicaA, 'first-password')).statusCode).toBe(200);
    await admin.setPassword('carol', 'second-password', 'test');
    expect((await token(replicaA, 'first-password')).statusCode).toBe(401);
    expect((await token(replicaA, 'second-password')).statusCode).toBe(200);
  });

  it('refuses a remembered password once the account is disabled on the other replica', async () => {
    expect((await token(replicaA, 'second-password')).statusCode).toBe(200);
    await admin.setDisabled('carol', true, 'test');
    expect((await token(replicaA, 'second-password')).statusCode).toBe(401);
    await admin.setDisabled('carol', false, 'test');
    expect((await token(replicaA, 'second-password')).statusCode).toBe(200);
  });
});
