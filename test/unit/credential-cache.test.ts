import { describe, expect, it } from 'vitest';
import { CredentialCache } from '../../src/security/credential-cache.js';

type Result = { ok: true; who: string } | { ok: false };

/** A cache on a clock the test moves, and a check that counts its calls. */
function setup(options: { ttlMs?: number; maxEntries?: number } = {}) {
  let clock = 1_000_000;
  const cache = new CredentialCache<Result>({
    ttlMs: options.ttlMs ?? 60_000,
    ...(options.maxEntries ? { maxEntries: options.maxEntries } : {}),
    isSuccess: (r) => r.ok,
    now: () => clock,
  });
  const calls: string[] = [];
  const check = (user: string, password: string, good = 'pw') => async (): Promise<Result> => {
    calls.push(`${user}:${password}`);
    return password === good ? { ok: true, who: user } : { ok: false };
  };
  return {
    cache,
    calls,
    check,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

describe('CredentialCache', () => {
  it('remembers a success for the TTL, then asks again', async () => {
    const { cache, calls, check, advance } = setup({ ttlMs: 60_000 });
    expect(await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'))).toEqual({ ok: true, who: 'alice' });
    advance(59_999);
    expect(await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'))).toEqual({ ok: true, who: 'alice' });
    expect(calls).toEqual(['alice:pw']);
    advance(1);
    await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'));
    expect(calls).toEqual(['alice:pw', 'alice:pw']);
  });

  it('returns the very result the check produced (the identity)', async () => {
    const { cache } = setup();
    const first = await cache.verify('ldap', 'alice', 'pw', async () => ({ ok: true, who: 'alice' }) as const);
    const second = await cache.verify('ldap', 'alice', 'pw', async () => ({ ok: false }) as const);
    expect(second).toBe(first);
  });

  it('never remembers a failure', async () => {
    const { cache, calls, check } = setup();
    expect(await cache.verify('ldap', 'alice', 'bad', check('alice', 'bad'))).toEqual({ ok: false });
    expect(await cache.verify('ldap', 'alice', 'bad', check('alice', 'bad'))).toEqual({ ok: false });
    expect(calls).toEqual(['alice:bad', 'alice:bad']);
    expect(cache.size).toBe(0);
  });

  it('never remembers a check that throws (an outage)', async () => {
    const { cache } = setup();
    let calls = 0;
    const failing = async (): Promise<Result> => {
      calls++;
      throw new Error('directory down');
    };
    await expect(cache.verify('ldap', 'alice', 'pw', failing)).rejects.toThrow('directory down');
    await expect(cache.verify('ldap', 'alice', 'pw', failing)).rejects.toThrow('directory down');
    expect(calls).toBe(2);
  });

  it('keys on backend, user and secret together: another password, user or backend is asked', async () => {
    const { cache, calls, check } = setup();
    await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'));
    await cache.verify('ldap', 'alice', 'other', check('alice', 'other'));
    await cache.verify('ldap', 'bob', 'pw', check('bob', 'pw'));
    await cache.verify('webhook', 'alice', 'pw', check('alice', 'pw'));
    // ("a", "b:c") and ("a:b", "c") are different credentials.
    await cache.verify('ldap', 'a', 'b:pw', check('a', 'b:pw', 'b:pw'));
    await cache.verify('ldap', 'a:b', 'pw', check('a:b', 'pw'));
    expect(calls).toEqual(['alice:pw', 'alice:other', 'bob:pw', 'alice:pw', 'a:b:pw', 'a:b:pw']);
  });

  it('is bounded: past maxEntries the least recently used entry goes', async () => {
    const { cache, calls, check } = setup({ maxEntries: 3 });
    for (const user of ['u1', 'u2', 'u3']) await cache.verify('ldap', user, 'pw', check(user, 'pw'));
    // Touch u1, so u2 is now the least recently used.
    await cache.verify('ldap', 'u1', 'pw', check('u1', 'pw'));
    await cache.verify('ldap', 'u4', 'pw', check('u4', 'pw'));
    expect(cache.size).toBe(3);
    calls.length = 0;
    for (const user of ['u1', 'u3', 'u4', 'u2']) await cache.verify('ldap', user, 'pw', check(user, 'pw'));
    expect(calls).toEqual(['u2:pw']);
    expect(cache.size).toBe(3);
  });

  it('holds 10,000 entries by default and no more', async () => {
    const { cache, check } = setup();
    for (let i = 0; i < 10_050; i++) await cache.verify('ldap', `u${i}`, 'pw', check(`u${i}`, 'pw'));
    expect(cache.size).toBe(10_000);
  });

  it('shares one check between concurrent verifications of the same credentials (single flight)', async () => {
    const { cache } = setup();
    let calls = 0;
    let release: (r: Result) => void = () => undefined;
    const slow = () => {
      calls++;
      return new Promise<Result>((resolve) => {
        release = resolve;
      });
    };
    const all = Promise.all([1, 2, 3, 4, 5].map(() => cache.verify('ldap', 'alice', 'pw', slow)));
    // A different password is a different flight.
    const other = cache.verify('ldap', 'alice', 'other', async () => ({ ok: false }) as const);
    release({ ok: true, who: 'alice' });
    const results = await all;
    expect(calls).toBe(1);
    expect(new Set(results).size).toBe(1);
    expect(await other).toEqual({ ok: false });
  });

  it('single flight also shares a failure, and the next try asks again', async () => {
    const { cache } = setup();
    let calls = 0;
    const failing = async (): Promise<Result> => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('timeout');
    };
    const settled = await Promise.allSettled([1, 2, 3].map(() => cache.verify('ldap', 'alice', 'pw', failing)));
    expect(settled.every((s) => s.status === 'rejected')).toBe(true);
    expect(calls).toBe(1);
    await expect(cache.verify('ldap', 'alice', 'pw', failing)).rejects.toThrow('timeout');
    expect(calls).toBe(2);
  });

  it('invalidateUser forgets that user only, including a check in flight', async () => {
    const { cache, calls, check } = setup();
    await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'));
    await cache.verify('ldap', 'bob', 'pw', check('bob', 'pw'));
    cache.invalidateUser('alice');
    calls.length = 0;
    await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'));
    await cache.verify('ldap', 'bob', 'pw', check('bob', 'pw'));
    expect(calls).toEqual(['alice:pw']);

    cache.invalidateUser('alice');
    let release: (r: Result) => void = () => undefined;
    const flight = cache.verify(
      'ldap',
      'alice',
      'pw',
      () =>
        new Promise<Result>((resolve) => {
          release = resolve;
        }),
    );
    cache.invalidateUser('alice'); // e.g. disabled while the check ran
    release({ ok: true, who: 'alice' });
    expect(await flight).toEqual({ ok: true, who: 'alice' });
    calls.length = 0;
    await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'));
    expect(calls).toEqual(['alice:pw']);
  });

  it('a TTL of 0 remembers nothing', async () => {
    const { cache, calls, check } = setup({ ttlMs: 0 });
    await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'));
    await cache.verify('ldap', 'alice', 'pw', check('alice', 'pw'));
    expect(calls).toHaveLength(2);
    expect(cache.size).toBe(0);
  });

  it('keeps no secret: what it holds says nothing of the password', async () => {
    const { cache } = setup();
    const secret = 'correct horse battery staple';
    await cache.verify('ldap', 'alice', secret, async () => ({ ok: true, who: 'alice' }) as const);
    const inside = JSON.stringify([...(cache as unknown as { entries: Map<string, unknown> }).entries]);
    expect(inside).not.toContain(secret);
    expect(inside).not.toContain(Buffer.from(secret).toString('base64'));
  });
});
