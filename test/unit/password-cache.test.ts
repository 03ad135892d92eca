/**
 * The credential cache on the password path of static and store users: a verified password is
 * remembered for the TTL, a wrong one never, concurrent checks share one bcrypt, and a password
 * change, disablement or removal made through any replica counts on the next request.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StaticAuthenticator } from '../../src/authn/static.js';
import { StoreUserAuthenticator } from '../../src/authn/store-users.js';
import { credentialCacheSchema, type PasswordVerifier } from '../../src/authn/password-cache.js';
import type { AuthnResult } from '../../src/authn/types.js';
import { AdminService } from '../../src/admin/service.js';
import { directoryOf } from '../../src/authn/directory.js';
import { verifyPassword } from '../../src/security/password.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/types.js';
import { baseConfig, hash, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';

const cache = credentialCacheSchema.parse({ ttl: 60 });

/** The real bcrypt check, counted. */
function countingVerifier(): { verify: PasswordVerifier; calls: () => number } {
  let calls = 0;
  return {
    verify: (password, hashed) => {
      calls += 1;
      return verifyPassword(password, hashed);
    },
    calls: () => calls,
  };
}

const outcome = (result: AuthnResult): string => (result.outcome === 'denied' ? `denied: ${result.reason}` : result.outcome);

describe('credential_cache section', () => {
  it.each([
    [{}, { ttl: 60, max_entries: 10_000 }],
    [{ ttl: 0 }, { ttl: 0, max_entries: 10_000 }],
    [{ ttl: '5m', max_entries: 5 }, { ttl: 300, max_entries: 5 }],
  ])('parses %j', (input, expected) => {
    expect(credentialCacheSchema.parse(input)).toEqual(expected);
  });

  it.each([[{ ttl: -1 }], [{ ttl: '2h' }], [{ ttl: '10 minutes' }], [{ max_entries: 0 }], [{ size: 5 }]])('refuses %j', (input) => {
    expect(credentialCacheSchema.safeParse(input).success).toBe(false);
  });
});

describe('static users with the credential cache', () => {
  let clock = 1_000_000;
  const now = () => clock;

  it('remembers a verified password for the TTL, and checks again after it', async () => {
    const counter = countingVerifier();
    const authn = new StaticAuthenticator({ alice: { password: await hash('right') } }, { cache, verify: counter.verify, now });
    const alice = { username: 'alice', password: 'right' };
    expect(outcome(await authn.authenticate(alice))).toBe('identity');
    expect(counter.calls()).toBe(1);
    clock += 59_000;
    const hit = await authn.authenticate(alice);
    expect(hit).toMatchObject({ outcome: 'identity', identity: { account: 'alice', via: 'password' } });
    expect(counter.calls()).toBe(1);
    clock += 2_000;
    expect(outcome(await authn.authenticate(alice))).toBe('identity');
    expect(counter.calls()).toBe(2);
  });

  it('never remembers a wrong password', async () => {
    const counter = countingVerifier();
    const authn = new StaticAuthenticator({ alice: { password: await hash('right') } }, { cache, verify: counter.verify, now });
    for (let i = 0; i < 3; i++) expect(outcome(await authn.authenticate({ username: 'alice', password: 'wrong' }))).toBe('denied: wrong password');
    expect(counter.calls()).toBe(3);
    // A right password remembered does not let a wrong one through either.
    await authn.authenticate({ username: 'alice', password: 'right' });
    expect(outcome(await authn.authenticate({ username: 'alice', password: 'wrong' }))).toBe('denied: wrong password');
    expect(counter.calls()).toBe(5);
  });

  it('shares one bcrypt among 20 concurrent identical requests', async () => {
    const counter = countingVerifier();
    const authn = new StaticAuthenticator({ alice: { password: await hash('right') } }, { cache, verify: counter.verify, now });
    const results = await Promise.all(Array.from({ length: 20 }, () => authn.authenticate({ username: 'alice', password: 'right' })));
    expect(results.map(outcome)).toEqual(Array(20).fill('identity'));
    expect(counter.calls()).toBe(1);
  });

  it('checks every time with ttl 0', async () => {
    const counter = countingVerifier();
    const off = credentialCacheSchema.parse({ ttl: 0 });
    const authn = new StaticAuthenticator({ alice: { password: await hash('right') } }, { cache: off, verify: counter.verify, now });
    await authn.authenticate({ username: 'alice', password: 'right' });
    await authn.authenticate({ username: 'alice', password: 'right' });
    expect(counter.calls()).toBe(2);
  });
});

describe('store users with the credential cache, two replicas on one SQLite store', () => {
  let keys: KeyDir;
  let dir: string;
  let replicaA: Store;
  let replicaB: Store;
  let admin: AdminService;
  let clock = 1_000_000;
  const now = () => clock;

  beforeEach(async () => {
    keys = await makeKeyDir();
    dir = await mkdtemp(join(tmpdir(), 'sts-pwcache-'));
    const path = join(dir, 'store.db');
    replicaA = await openStore({ driver: 'sqlite', path });
    await replicaA.migrate();
    replicaB = await openStore({ driver: 'sqlite', path });
    const loaded = await loadTestConfig(keys, baseConfig({ store: { path: join(dir, 'store.db') } }));
    // The admin acts through replica B; the authenticator under test reads through replica A.
    admin = new AdminService(replicaB, loaded, directoryOf([new StoreUserAuthenticator(replicaB)]));
    await admin.addUser({ name: 'bob', password: 'first' }, 'test');
  });

  afterEach(async () => {
    await replicaA.close();
    await replicaB.close();
    await rm(dir, { recursive: true, force: true });
    await keys.cleanup();
  });

  const replica = (verify: PasswordVerifier) => new StoreUserAuthenticator(replicaA, { cache, verify, now });

  it('remembers a verified password for the TTL, and checks again after it', async () => {
    const counter = countingVerifier();
    const authn = replica(counter.verify);
    const bob = { username: 'bob', password: 'first' };
    expect(outcome(await authn.authenticate(bob))).toBe('identity');
    clock += 30_000;
    expect(outcome(await authn.authenticate(bob))).toBe('identity');
    expect(counter.calls()).toBe(1);
    clock += 31_000;
    expect(outcome(await authn.authenticate(bob))).toBe('identity');
    expect(counter.calls()).toBe(2);
  });

  it('refuses the old password on the next request after a password change on the other replica', async () => {
    const counter = countingVerifier();
    const authn = replica(counter.verify);
    expect(outcome(await authn.authenticate({ username: 'bob', password: 'first' }))).toBe('identity');
    await admin.setPassword('bob', 'second', 'test');
    expect(outcome(await authn.authenticate({ username: 'bob', password: 'first' }))).toBe('denied: wrong password');
    expect(outcome(await authn.authenticate({ username: 'bob', password: 'second' }))).toBe('identity');
    // The new password is remembered in turn.
    const calls = counter.calls();
    expect(outcome(await authn.authenticate({ username: 'bob', password: 'second' }))).toBe('identity');
    expect(counter.calls()).toBe(calls);
  });

  it('refuses a disabled user on the next request, and a removed one', async () => {
    const authn = replica(verifyPassword);
    const bob = { username: 'bob', password: 'first' };
    expect(outcome(await authn.authenticate(bob))).toBe('identity');
    await admin.setDisabled('bob', true, 'test');
    expect(outcome(await authn.authenticate(bob))).toBe('denied: account disabled');
    await admin.setDisabled('bob', false, 'test');
    expect(outcome(await authn.authenticate(bob))).toBe('identity');
    await admin.removeUser('bob', 'test');
    expect(outcome(await authn.authenticate(bob))).toBe('no-match');
  });

  it('never remembers a wrong password', async () => {
    const counter = countingVerifier();
    const authn = replica(counter.verify);
    for (let i = 0; i < 3; i++) {
      expect(outcome(await authn.authenticate({ username: 'bob', password: 'nope' }))).toBe('denied: wrong password');
    }
    expect(counter.calls()).toBe(3);
  });

  it('shares one bcrypt among 20 concurrent identical requests', async () => {
    const counter = countingVerifier();
    const authn = replica(counter.verify);
    const results = await Promise.all(Array.from({ length: 20 }, () => authn.authenticate({ username: 'bob', password: 'first' })));
    expect(results.map(outcome)).toEqual(Array(20).fill('identity'));
    expect(counter.calls()).toBe(1);
  });
});
