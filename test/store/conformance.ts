/**
 * The Store contract, written once and run against every dialect (sqlite.test.ts,
 * postgres.test.ts). Each describe block opens its own empty store, so the blocks do not see each
 * other's rows; the tests inside a block run in order and may build on each other.
 */
import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KyselyStore } from '../../src/store/kysely-store.js';
import { StoreConflictError, StoreNotFoundError } from '../../src/store/types.js';
import type { RuleBody, Store, StoreEntity } from '../../src/store/types.js';

export interface OpenedStore {
  store: Store;
  cleanup(): Promise<void>;
}

export type OpenStore = () => Promise<OpenedStore>;

/** Something that looks like a secret and is easy to search for. */
export function secret(kind: string): string {
  return `${kind}-${randomBytes(12).toString('hex')}`;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection, got a result');
}

export async function expectConflict(promise: Promise<unknown>, entity: StoreEntity, key?: string): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(StoreConflictError);
  expect((error as StoreConflictError).entity).toBe(entity);
  if (key !== undefined) expect((error as StoreConflictError).key).toBe(key);
}

export async function expectNotFound(promise: Promise<unknown>, entity: StoreEntity, key: string): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(StoreNotFoundError);
  expect(error).toMatchObject({ entity, key });
}

/** Opens an empty, migrated store for the enclosing describe block and closes it after. */
function useStore(open: OpenStore): () => Store {
  let opened: OpenedStore | undefined;
  beforeAll(async () => {
    opened = await open();
    await opened.store.migrate();
  });
  afterAll(async () => {
    await opened?.cleanup();
  });
  return () => {
    if (opened === undefined) throw new Error('the store did not open');
    return opened.store;
  };
}

/** Opens an empty, unmigrated store for one test. */
async function withFreshStore(open: OpenStore, test: (store: KyselyStore) => Promise<void>): Promise<void> {
  const opened = await open();
  try {
    if (!(opened.store instanceof KyselyStore)) throw new Error('the conformance suite migrates KyselyStore stores step by step');
    await test(opened.store);
  } finally {
    await opened.cleanup();
  }
}

const ruleA: RuleBody = { match: { account: 'alice' }, actions: ['*'] };
const ruleB: RuleBody = { match: { account: 'bob', type: 'repository', name: 'bob/*' }, actions: ['pull', 'push'], comment: 'bob owns bob/*' };
const ruleFull: RuleBody = {
  match: { account: '/^ci-.*$/', type: 'repository', name: '${account}/*', service: 'registry', ip: '10.0.0.0/8', labels: { team: 'ops' } },
  actions: ['pull'],
  comment: 'everything round-trips',
};

export function storeConformance(name: string, open: OpenStore): void {
  describe(`${name} store: migrations`, () => {
    it('migrates an empty database to the latest version, and again does nothing', async () => {
      await withFreshStore(open, async (store) => {
        expect(await store.schemaVersion()).toBe(0);
        expect(await store.migrate()).toEqual({ from: 0, to: 2 });
        expect(await store.schemaVersion()).toBe(2);
        expect(await store.migrate()).toEqual({ from: 2, to: 2 });
        await store.users.create({ name: 'alice', passwordHash: 'h' }, 'test');
        expect(await store.users.get('alice')).toBeDefined();
      });
    });

    it('upgrades from version 1 keeping users, groups, rules and changes', async () => {
      await withFreshStore(open, async (store) => {
        expect(await store.migrateTo(1)).toEqual({ from: 0, to: 1 });
        await store.users.create({ name: 'alice', passwordHash: 'h', labels: { team: ['a'] } }, 'test');
        await store.groups.create({ name: 'devs' }, 'test');
        await store.groups.addMember('devs', 'alice', 'test');
        const rule = await store.rules.add(ruleB, {}, 'test');
        const version = await store.rules.version();

        expect(await store.migrate()).toEqual({ from: 1, to: 2 });
        expect(await store.users.get('alice')).toMatchObject({ name: 'alice', passwordHash: 'h', labels: { team: ['a'] }, groups: ['devs'] });
        expect(await store.rules.list()).toEqual([rule]);
        expect(await store.rules.version()).toBe(version);
        expect((await store.changes.list()).map((c) => c.action)).toEqual(['rule.add', 'group.add_member', 'group.create', 'user.create']);
        // The new tables work on the upgraded database.
        await store.accessTokens.create({ user: 'alice', name: 'ci', digest: secret('digest'), scopes: [], expiresAt: null }, 'test');
        expect(await store.accessTokens.list('alice')).toHaveLength(1);
      });
    });

    it('migrates down to 0 and up again', async () => {
      await withFreshStore(open, async (store) => {
        await store.migrate();
        expect(await store.migrateTo(0)).toEqual({ from: 2, to: 0 });
        expect(await store.schemaVersion()).toBe(0);
        expect(await store.migrate()).toEqual({ from: 0, to: 2 });
      });
    });

    it('refuses a version it does not know', async () => {
      await withFreshStore(open, async (store) => {
        await expect(store.migrateTo(3)).rejects.toBeInstanceOf(RangeError);
        await expect(store.migrateTo(-1)).rejects.toBeInstanceOf(RangeError);
      });
    });
  });

  describe(`${name} store: users`, () => {
    const store = useStore(open);

    it('answers ping', async () => {
      await expect(store().ping()).resolves.toBeUndefined();
      expect(store().dialect).toBe(name);
    });

    it('creates, gets and lists users, labels round-tripping', async () => {
      const labels = { team: ['platform', 'ops'], 'unicode ✓': ['ü', ''], empty: [] };
      const created = await store().users.create({ name: 'carol', passwordHash: '$2b$04$hash', labels }, 'cli');
      expect(created).toMatchObject({ name: 'carol', passwordHash: '$2b$04$hash', disabled: false, labels, groups: [] });
      expect(typeof created.createdAt).toBe('number');
      expect(created.updatedAt).toBe(created.createdAt);
      expect(await store().users.get('carol')).toEqual(created);
      await store().users.create({ name: 'alice', passwordHash: 'x' }, 'cli');
      await store().users.create({ name: 'Bob', passwordHash: 'x' }, 'cli');
      // Byte order in both dialects, whatever the database's collation.
      expect((await store().users.list()).map((u) => u.name)).toEqual(['Bob', 'alice', 'carol']);
      expect((await store().users.list()).find((u) => u.name === 'carol')).toEqual(created);
      expect(await store().users.get('nobody')).toBeUndefined();
      expect((await store().users.get('alice'))?.labels).toEqual({});
    });

    it('stores a robot account with no password hash', async () => {
      const robot = await store().users.create({ name: 'robot-ci', passwordHash: null }, 'cli');
      expect(robot.passwordHash).toBeNull();
      expect((await store().users.get('robot-ci'))?.passwordHash).toBeNull();
    });

    it('updates the hash, the disabled flag and labels, bumping updatedAt', async () => {
      const before = await store().users.get('carol');
      const updated = await store().users.update('carol', { disabled: true }, 'cli');
      expect(updated).toMatchObject({ disabled: true, passwordHash: '$2b$04$hash', labels: before?.labels });
      expect(updated.updatedAt).toBeGreaterThan(before?.updatedAt ?? Infinity);
      expect(updated.createdAt).toBe(before?.createdAt);
      expect(await store().users.get('carol')).toEqual(updated);

      const again = await store().users.update('carol', { disabled: false, passwordHash: null, labels: { a: ['b'] } }, 'cli');
      expect(again).toMatchObject({ disabled: false, passwordHash: null, labels: { a: ['b'] } });
      expect(again.updatedAt).toBeGreaterThan(updated.updatedAt);
      expect((await store().users.update('carol', { passwordHash: 'new' }, 'cli')).passwordHash).toBe('new');
    });

    it('refuses a taken name with StoreConflictError(user, name)', async () => {
      await expectConflict(store().users.create({ name: 'alice', passwordHash: 'y' }, 'cli'), 'user', 'alice');
      expect((await store().users.get('alice'))?.passwordHash).toBe('x');
    });

    it('lets exactly one of 20 concurrent creates of one name win', async () => {
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => store().users.create({ name: 'racer', passwordHash: `h${i}` }, 'cli')),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      expect(rejected).toHaveLength(19);
      for (const reason of rejected) expect(reason).toMatchObject({ name: 'StoreConflictError', entity: 'user', key: 'racer' });
      expect((await store().changes.list({ target: 'racer' })).filter((c) => c.action === 'user.create')).toHaveLength(1);
    });

    it('creates 50 distinct users concurrently', async () => {
      const names = Array.from({ length: 50 }, (_, i) => `many-${String(i).padStart(2, '0')}`);
      await Promise.all(names.map((n) => store().users.create({ name: n, passwordHash: null }, 'cli')));
      const listed = (await store().users.list()).map((u) => u.name).filter((n) => n.startsWith('many-'));
      expect(listed).toEqual(names);
    });

    it('throws StoreNotFoundError updating or removing a missing user', async () => {
      await expectNotFound(store().users.update('nobody', { disabled: true }, 'cli'), 'user', 'nobody');
      await expectNotFound(store().users.remove('nobody', 'cli'), 'user', 'nobody');
    });

    it('removes a user', async () => {
      await store().users.remove('robot-ci', 'cli');
      expect(await store().users.get('robot-ci')).toBeUndefined();
      await store().users.create({ name: 'robot-ci', passwordHash: null }, 'cli');
    });
  });

  describe(`${name} store: groups and membership`, () => {
    const store = useStore(open);

    it('creates groups and adds members, both sides sorted', async () => {
      for (const user of ['zed', 'amy', 'max']) await store().users.create({ name: user, passwordHash: 'h' }, 'cli');
      const devs = await store().groups.create({ name: 'devs', labels: { tier: ['1'] } }, 'cli');
      expect(devs).toMatchObject({ name: 'devs', labels: { tier: ['1'] }, members: [] });
      await store().groups.create({ name: 'admins' }, 'cli');
      for (const user of ['zed', 'amy', 'max']) await store().groups.addMember('devs', user, 'cli');
      await store().groups.addMember('admins', 'zed', 'cli');

      expect(await store().groups.get('devs')).toEqual({ ...devs, members: ['amy', 'max', 'zed'] });
      expect((await store().groups.list()).map((g) => [g.name, g.members])).toEqual([
        ['admins', ['zed']],
        ['devs', ['amy', 'max', 'zed']],
      ]);
      expect((await store().users.get('zed'))?.groups).toEqual(['admins', 'devs']);
      expect((await store().users.list()).map((u) => [u.name, u.groups])).toEqual([
        ['amy', ['devs']],
        ['max', ['devs']],
        ['zed', ['admins', 'devs']],
      ]);
      expect(await store().groups.get('nobody')).toBeUndefined();
    });

    it('refuses a taken group name and a second membership', async () => {
      await expectConflict(store().groups.create({ name: 'devs' }, 'cli'), 'group', 'devs');
      await expectConflict(store().groups.addMember('devs', 'amy', 'cli'), 'member', 'devs/amy');
    });

    it('throws StoreNotFoundError for missing groups, users and memberships', async () => {
      await expectNotFound(store().groups.addMember('nobody', 'amy', 'cli'), 'group', 'nobody');
      await expectNotFound(store().groups.addMember('devs', 'nobody', 'cli'), 'user', 'nobody');
      await expectNotFound(store().groups.removeMember('admins', 'amy', 'cli'), 'member', 'admins/amy');
      await expectNotFound(store().groups.removeMember('nobody', 'amy', 'cli'), 'group', 'nobody');
      await expectNotFound(store().groups.remove('nobody', 'cli'), 'group', 'nobody');
    });

    it('removes a member', async () => {
      await store().groups.removeMember('devs', 'max', 'cli');
      expect((await store().groups.get('devs'))?.members).toEqual(['amy', 'zed']);
      expect((await store().users.get('max'))?.groups).toEqual([]);
    });

    it('drops memberships with the user', async () => {
      await store().users.remove('zed', 'cli');
      expect((await store().groups.get('devs'))?.members).toEqual(['amy']);
      expect((await store().groups.get('admins'))?.members).toEqual([]);
    });

    it('drops memberships with the group', async () => {
      await store().groups.remove('devs', 'cli');
      expect(await store().groups.get('devs')).toBeUndefined();
      expect((await store().users.get('amy'))?.groups).toEqual([]);
      // The name is free again, with no members left over.
      await store().groups.create({ name: 'devs' }, 'cli');
      expect((await store().groups.get('devs'))?.members).toEqual([]);
    });
  });

  describe(`${name} store: rules`, () => {
    const store = useStore(open);
    const ids: Record<string, string> = {};

    async function order(): Promise<string[]> {
      const rules = await store().rules.list();
      expect(rules.map((r) => r.position)).toEqual(rules.map((_, i) => i));
      return rules.map((r) => r.rule.comment ?? '');
    }
    const body = (comment: string): RuleBody => ({ ...ruleA, comment });

    it('appends, inserts at a position and lists in position order, changing the version each time', async () => {
      const versions = [await store().rules.version()];
      expect(versions[0]).toBe(0);
      const add = async (comment: string, position?: number) => {
        const rule = await store().rules.add(body(comment), position === undefined ? {} : { position }, 'cli');
        ids[comment] = rule.id;
        versions.push(await store().rules.version());
        return rule;
      };
      expect((await add('A')).position).toBe(0);
      expect((await add('B')).position).toBe(1);
      expect((await add('C', 0)).position).toBe(0);
      expect(await order()).toEqual(['C', 'A', 'B']);
      await add('D', 2);
      expect(await order()).toEqual(['C', 'A', 'D', 'B']);
      // Past the end: appended.
      expect((await add('E', 99)).position).toBe(4);
      expect(await order()).toEqual(['C', 'A', 'D', 'B', 'E']);
      expect(new Set(versions).size).toBe(versions.length);
      expect(typeof versions.at(-1)).toBe('number');
    });

    it('round-trips every field of a rule', async () => {
      const added = await store().rules.add(ruleFull, {}, 'cli');
      expect(added).toMatchObject({ position: 5, rule: ruleFull });
      expect(added.id).toMatch(/^r_/);
      expect((await store().rules.list()).at(-1)).toEqual(added);
      await store().rules.remove(added.id, 'cli');
    });

    it('removes a rule, moving the later ones up, and changes the version', async () => {
      const before = await store().rules.version();
      await store().rules.remove(ids.A as string, 'cli');
      expect(await order()).toEqual(['C', 'D', 'B', 'E']);
      expect(await store().rules.version()).not.toBe(before);
    });

    it('throws StoreNotFoundError removing a missing rule, leaving the version', async () => {
      const before = await store().rules.version();
      await expectNotFound(store().rules.remove('r_missing', 'cli'), 'rule', 'r_missing');
      expect(await store().rules.version()).toBe(before);
    });

    it('refuses a negative or fractional position', async () => {
      await expect(store().rules.add(ruleA, { position: -1 }, 'cli')).rejects.toBeInstanceOf(RangeError);
      await expect(store().rules.add(ruleA, { position: 1.5 }, 'cli')).rejects.toBeInstanceOf(RangeError);
    });

    it('keeps positions dense under concurrent adds', async () => {
      await Promise.all(Array.from({ length: 10 }, (_, i) => store().rules.add(body(`P${i}`), i % 2 === 0 ? {} : { position: 1 }, 'cli')));
      const rules = await store().rules.list();
      expect(rules.map((r) => r.position)).toEqual(rules.map((_, i) => i));
      expect(rules).toHaveLength(14);
    });
  });

  describe(`${name} store: access tokens`, () => {
    const store = useStore(open);
    const digests = { ci: secret('digest'), deploy: secret('digest'), bob: secret('digest') };
    let ciId = '';

    it('creates a token and finds it by digest and id', async () => {
      await store().users.create({ name: 'alice', passwordHash: 'h' }, 'cli');
      await store().users.create({ name: 'bob', passwordHash: null }, 'cli');
      const created = await store().accessTokens.create(
        { user: 'alice', name: 'ci', digest: digests.ci, scopes: ['repository:team/*:pull,push', 'registry:catalog:*'], expiresAt: 4_102_444_800_000 },
        'cli',
      );
      ciId = created.id;
      expect(created).toEqual({
        id: expect.stringMatching(/^at_[a-z2-7]{26}$/) as unknown,
        user: 'alice',
        name: 'ci',
        digest: digests.ci,
        scopes: ['repository:team/*:pull,push', 'registry:catalog:*'],
        createdAt: expect.any(Number) as unknown,
        expiresAt: 4_102_444_800_000,
        lastUsedAt: null,
        lastUsedIp: null,
        revokedAt: null,
      });
      expect(await store().accessTokens.findByDigest(digests.ci)).toEqual(created);
      expect(await store().accessTokens.get(created.id)).toEqual(created);
      expect(await store().accessTokens.findByDigest(secret('digest'))).toBeUndefined();
      expect(await store().accessTokens.get('at_missing')).toBeUndefined();
    });

    it('records a use with touch', async () => {
      await store().accessTokens.touch(ciId, 1_700_000_000_123, '10.1.2.3');
      expect(await store().accessTokens.get(ciId)).toMatchObject({ lastUsedAt: 1_700_000_000_123, lastUsedIp: '10.1.2.3' });
      await store().accessTokens.touch(ciId, 1_700_000_000_456, null);
      expect(await store().accessTokens.get(ciId)).toMatchObject({ lastUsedAt: 1_700_000_000_456, lastUsedIp: null });
    });

    it('refuses a second token of the same name for the same user, not for another', async () => {
      await expectConflict(
        store().accessTokens.create({ user: 'alice', name: 'ci', digest: secret('digest'), scopes: [], expiresAt: null }, 'cli'),
        'access_token',
        'ci',
      );
      await store().accessTokens.create({ user: 'bob', name: 'ci', digest: digests.bob, scopes: [], expiresAt: null }, 'cli');
    });

    it('refuses a digest already in use, without naming it', async () => {
      const error = await rejection(
        store().accessTokens.create({ user: 'alice', name: 'other', digest: digests.ci, scopes: [], expiresAt: null }, 'cli'),
      );
      expect(error).toMatchObject({ name: 'StoreConflictError', entity: 'access_token' });
      expect(String(error)).not.toContain(digests.ci);
    });

    it('holds tokens of users it does not hold itself (config-file users)', async () => {
      const token = await store().accessTokens.create({ user: 'from-config', name: 'ci', digest: secret('digest'), scopes: ['x'], expiresAt: null }, 'cli');
      expect(await store().accessTokens.list('from-config')).toEqual([token]);
      await store().accessTokens.revoke(token.id, 'cli');
    });

    it('lists tokens, all or by user, by creation time then id', async () => {
      await store().accessTokens.create({ user: 'alice', name: 'deploy', digest: digests.deploy, scopes: ['x'], expiresAt: null }, 'cli');
      const all = await store().accessTokens.list();
      expect(all).toHaveLength(4);
      const sorted = [...all].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      expect(all).toEqual(sorted);
      expect((await store().accessTokens.list('alice')).map((t) => t.name).sort()).toEqual(['ci', 'deploy']);
      expect((await store().accessTokens.list('bob')).map((t) => t.name)).toEqual(['ci']);
      expect(await store().accessTokens.list('nobody')).toEqual([]);
    });

    it('revokes a token, which findByDigest still returns with revokedAt', async () => {
      await store().accessTokens.revoke(ciId, 'cli');
      const revoked = await store().accessTokens.findByDigest(digests.ci);
      expect(revoked?.revokedAt).toEqual(expect.any(Number));
      // Again: no error, the first time stays.
      await store().accessTokens.revoke(ciId, 'cli');
      expect((await store().accessTokens.get(ciId))?.revokedAt).toBe(revoked?.revokedAt);
      expect((await store().changes.list({ target: ciId })).map((c) => c.action)).toEqual(['token.revoke', 'token.create']);
      await expectNotFound(store().accessTokens.revoke('at_missing', 'cli'), 'access_token', 'at_missing');
    });

    it('removes the tokens with their user', async () => {
      await store().users.remove('alice', 'cli');
      expect(await store().accessTokens.findByDigest(digests.ci)).toBeUndefined();
      expect(await store().accessTokens.findByDigest(digests.deploy)).toBeUndefined();
      expect((await store().accessTokens.list()).map((t) => t.user).sort()).toEqual(['bob', 'from-config']);
      // A new alice does not inherit the old one's tokens, and may reuse their names.
      await store().users.create({ name: 'alice', passwordHash: 'h' }, 'cli');
      expect(await store().accessTokens.list('alice')).toEqual([]);
      await store().accessTokens.create({ user: 'alice', name: 'ci', digest: secret('digest'), scopes: [], expiresAt: null }, 'cli');
    });
  });

  describe(`${name} store: refresh tokens`, () => {
    const store = useStore(open);
    const digests = [secret('refresh'), secret('refresh'), secret('refresh'), secret('refresh')] as const;
    const ids: string[] = [];
    const expiresAt = 4_102_444_800_000;

    it('creates refresh tokens and finds them by digest, without a change row', async () => {
      await store().users.create({ name: 'alice', passwordHash: 'h' }, 'cli');
      await store().users.create({ name: 'bob', passwordHash: 'h' }, 'cli');
      const changes = (await store().changes.list()).length;
      const first = await store().refreshTokens.create({ user: 'alice', service: 'registry', clientId: 'docker', digest: digests[0], expiresAt });
      expect(first).toEqual({
        id: expect.stringMatching(/^rt_[a-z2-7]{26}$/) as unknown,
        user: 'alice',
        service: 'registry',
        clientId: 'docker',
        digest: digests[0],
        createdAt: expect.any(Number) as unknown,
        lastUsedAt: null,
        expiresAt,
        revokedAt: null,
      });
      ids.push(first.id);
      ids.push((await store().refreshTokens.create({ user: 'alice', service: 'registry', clientId: null, digest: digests[1], expiresAt })).id);
      ids.push((await store().refreshTokens.create({ user: 'alice', service: 'other', clientId: null, digest: digests[2], expiresAt })).id);
      ids.push((await store().refreshTokens.create({ user: 'bob', service: 'registry', clientId: null, digest: digests[3], expiresAt })).id);
      expect(await store().refreshTokens.findByDigest(digests[0])).toEqual(first);
      expect((await store().refreshTokens.findByDigest(digests[1]))?.clientId).toBeNull();
      expect(await store().refreshTokens.findByDigest(secret('refresh'))).toBeUndefined();
      expect(await store().changes.list()).toHaveLength(changes);
    });

    it('refuses a digest in use, without naming it', async () => {
      const error = await rejection(store().refreshTokens.create({ user: 'bob', service: 'registry', clientId: null, digest: digests[0], expiresAt }));
      expect(error).toMatchObject({ name: 'StoreConflictError', entity: 'refresh_token' });
      expect(String(error)).not.toContain(digests[0]);
    });

    it('records a use with touch and lists by user', async () => {
      await store().refreshTokens.touch(ids[0] as string, 1_700_000_000_999);
      expect((await store().refreshTokens.findByDigest(digests[0]))?.lastUsedAt).toBe(1_700_000_000_999);
      const all = await store().refreshTokens.list();
      expect(all.map((t) => t.id).sort()).toEqual([...ids].sort());
      expect(all).toEqual([...all].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
      expect((await store().refreshTokens.list('alice')).map((t) => t.user)).toEqual(['alice', 'alice', 'alice']);
      expect(await store().refreshTokens.list('nobody')).toEqual([]);
    });

    it('revokes one, then the rest of a user, counting only those not yet revoked', async () => {
      await store().refreshTokens.revoke(ids[0] as string, 'cli');
      const revoked = await store().refreshTokens.findByDigest(digests[0]);
      expect(revoked?.revokedAt).toEqual(expect.any(Number));
      await store().refreshTokens.revoke(ids[0] as string, 'cli');
      expect((await store().refreshTokens.findByDigest(digests[0]))?.revokedAt).toBe(revoked?.revokedAt);
      await expectNotFound(store().refreshTokens.revoke('rt_missing', 'cli'), 'refresh_token', 'rt_missing');

      expect(await store().refreshTokens.revokeForUser('alice', 'cli')).toBe(2);
      expect(await store().refreshTokens.revokeForUser('alice', 'cli')).toBe(0);
      expect((await store().refreshTokens.list('alice')).every((t) => t.revokedAt !== null)).toBe(true);
      expect((await store().refreshTokens.list('bob'))[0]?.revokedAt).toBeNull();
      await expectNotFound(store().refreshTokens.revokeForUser('nobody', 'cli'), 'user', 'nobody');
      // A config-file user is known by its tokens, even once they are all revoked.
      await store().refreshTokens.create({ user: 'from-config', service: 'registry', clientId: null, digest: secret('refresh'), expiresAt });
      expect(await store().refreshTokens.revokeForUser('from-config', 'cli')).toBe(1);
      expect(await store().refreshTokens.revokeForUser('from-config', 'cli')).toBe(0);
    });

    it('revokes all, config-file users\' tokens included', async () => {
      await store().refreshTokens.create({ user: 'alice', service: 'registry', clientId: null, digest: secret('refresh'), expiresAt });
      await store().refreshTokens.create({ user: 'from-config', service: 'registry', clientId: null, digest: secret('refresh'), expiresAt });
      expect(await store().refreshTokens.revokeAll('cli')).toBe(3);
      expect(await store().refreshTokens.revokeAll('cli')).toBe(0);
      expect((await store().refreshTokens.list()).every((t) => t.revokedAt !== null)).toBe(true);
    });

    it('removes the tokens with their user', async () => {
      await store().users.remove('alice', 'cli');
      expect(await store().refreshTokens.findByDigest(digests[1])).toBeUndefined();
      expect((await store().refreshTokens.list()).map((t) => t.user).sort()).toEqual(['bob', 'from-config', 'from-config']);
    });
  });

  describe(`${name} store: change log`, () => {
    const store = useStore(open);
    const passwordHash = secret('$2b$10$hash');
    const newHash = secret('$2b$10$newhash');
    const accessDigest = secret('digest');
    const refreshDigest = secret('refresh');

    it('records every mutation with actor, action and target, newest first, in its own transaction', async () => {
      const s = store();
      await s.users.create({ name: 'alice', passwordHash, labels: { team: ['a'] } }, 'cli');
      await s.users.update('alice', { passwordHash: newHash, disabled: true }, 'api:at_1');
      await s.groups.create({ name: 'devs' }, 'cli');
      await s.groups.addMember('devs', 'alice', 'cli');
      await s.groups.removeMember('devs', 'alice', 'cli');
      const rule = await s.rules.add(ruleA, {}, 'cli');
      await s.rules.remove(rule.id, 'cli');
      const token = await s.accessTokens.create({ user: 'alice', name: 'ci', digest: accessDigest, scopes: ['x'], expiresAt: null }, 'cli');
      await s.accessTokens.touch(token.id, 1, '10.0.0.1');
      await s.accessTokens.revoke(token.id, 'cli');
      const refresh = await s.refreshTokens.create({ user: 'alice', service: 'registry', clientId: null, digest: refreshDigest, expiresAt: 2 });
      await s.refreshTokens.touch(refresh.id, 1);
      await s.refreshTokens.revoke(refresh.id, 'cli');
      await s.refreshTokens.revokeForUser('alice', 'cli');
      await s.refreshTokens.revokeAll('cli');
      await s.groups.remove('devs', 'cli');
      await s.users.remove('alice', 'cli');
      // A failed mutation records nothing.
      await expectNotFound(s.users.remove('alice', 'cli'), 'user', 'alice');

      const changes = await s.changes.list();
      expect(changes.map((c) => [c.action, c.target, c.actor]).reverse()).toEqual([
        ['user.create', 'alice', 'cli'],
        ['user.update', 'alice', 'api:at_1'],
        ['group.create', 'devs', 'cli'],
        ['group.add_member', 'devs', 'cli'],
        ['group.remove_member', 'devs', 'cli'],
        ['rule.add', rule.id, 'cli'],
        ['rule.remove', rule.id, 'cli'],
        ['token.create', token.id, 'cli'],
        ['token.revoke', token.id, 'cli'],
        ['refresh.revoke', refresh.id, 'cli'],
        ['refresh.revoke_user', 'alice', 'cli'],
        ['refresh.revoke_all', '*', 'cli'],
        ['group.remove', 'devs', 'cli'],
        ['user.remove', 'alice', 'cli'],
      ]);
      for (const change of changes) {
        expect(change.id).toMatch(/^c_/);
        expect(typeof change.at).toBe('number');
      }
      expect(changes.find((c) => c.action === 'group.add_member')?.details).toEqual({ user: 'alice' });
      expect(changes.find((c) => c.action === 'user.update')?.details).toEqual({ password: 'changed', disabled: true });
      expect(changes.find((c) => c.action === 'token.create')?.details).toMatchObject({ user: 'alice', name: 'ci', scopes: ['x'] });
      expect(changes.find((c) => c.action === 'refresh.revoke_user')?.details).toEqual({ count: 0 });
      expect(changes.find((c) => c.action === 'user.remove')?.details).toEqual({ accessTokens: 1, refreshTokens: 1 });
    });

    it('never records a password hash or a token digest', async () => {
      const json = JSON.stringify(await store().changes.list());
      for (const value of [passwordHash, newHash, accessDigest, refreshDigest]) expect(json).not.toContain(value);
    });

    it('filters by target and limits to the newest', async () => {
      const s = store();
      expect((await s.changes.list({ target: 'devs' })).map((c) => c.action)).toEqual([
        'group.remove',
        'group.remove_member',
        'group.add_member',
        'group.create',
      ]);
      expect((await s.changes.list({ limit: 2 })).map((c) => c.action)).toEqual(['user.remove', 'group.remove']);
      expect((await s.changes.list({ target: 'devs', limit: 1 })).map((c) => c.action)).toEqual(['group.remove']);
      expect(await s.changes.list({ target: 'nobody' })).toEqual([]);
      await expect(s.changes.list({ limit: 0 })).rejects.toBeInstanceOf(RangeError);
    });
  });
}
