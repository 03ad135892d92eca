import { describe, expect, it } from 'vitest';
import { newSecret } from '../../src/security/secret-token.js';
import { MemoryCounters, lockDelay, type BackoffPolicy } from '../../src/security/lockout-counters.js';
import { isMachineCredential } from '../../src/security/lockout.js';

const policy: BackoffPolicy = { windowMs: 60_000, dedupMs: 10_000, baseDelayMs: 1000, maxDelayMs: 8000 };
const jwt = (payload: object) =>
  [{ alg: 'RS256', typ: 'JWT' }, payload].map((part) => Buffer.from(JSON.stringify(part)).toString('base64url')).join('.') + '.c2ln';

describe('isMachineCredential', () => {
  it.each([
    // our own secrets, by prefix (a wrong checksum is still never counted: it cannot be a password guess)
    ['an access token', newSecret('access'), true],
    ['a refresh token', newSecret('refresh'), true],
    ['a bad access token', `stsat_${'x'.repeat(10)}`, true],
    // a trusted issuer's ID token: a JWT with an iss
    ['an ID token', jwt({ iss: 'https://token.actions.githubusercontent.com', sub: 'repo:x' }), true],
    // passwords
    ['a password', 'correct horse battery staple', false],
    ['a dotted password', 'a.b.c', false],
    ['a JWT without iss', jwt({ sub: 'x' }), false],
  ])('%s', (_name, password, machine) => {
    expect(isMachineCredential({ username: 'u', password })).toBe(machine);
  });
});

describe('lockDelay', () => {
  it.each([
    [4, 0],
    [5, 1000],
    [6, 2000],
    [7, 4000],
    [8, 8000],
    [9, 8000],
    [10_000, 8000],
  ])('%i failures at threshold 5 lock %i ms', (count, delay) => {
    expect(lockDelay(count, 5, policy)).toBe(delay);
  });
});

describe('MemoryCounters', () => {
  it('forgets a counter a window after its first failure', async () => {
    const counters = new MemoryCounters(100);
    await counters.fail([{ key: 'k', threshold: 3 }], 'd1', 0, policy);
    await counters.fail([{ key: 'k', threshold: 3 }], 'd2', 1000, policy);
    expect(await counters.fail([{ key: 'k', threshold: 3 }], 'd3', 59_000, policy)).toBe(60_000);
    // Locked: the record now lives a window past the lock.
    expect(await counters.lockedUntil(['k'], 60_500)).toEqual([60_000]);
    const counters2 = new MemoryCounters(100);
    await counters2.fail([{ key: 'k', threshold: 3 }], 'd1', 0, policy);
    await counters2.fail([{ key: 'k', threshold: 3 }], 'd2', 1000, policy);
    expect(await counters2.fail([{ key: 'k', threshold: 3 }], 'd3', 60_000, policy)).toBe(0);
  });

  it('counts a repeated dedup key once within the dedup window', async () => {
    const counters = new MemoryCounters(100);
    for (let i = 0; i < 5; i++) await counters.fail([{ key: 'k', threshold: 2 }], 'same', i * 1000, policy);
    expect(await counters.lockedUntil(['k'], 5000)).toEqual([0]);
    expect(await counters.fail([{ key: 'k', threshold: 2 }], 'same', 11_000, policy)).toBe(12_000);
  });

  it('is bounded: the oldest counters go first', async () => {
    const counters = new MemoryCounters(100);
    for (let i = 0; i < 1000; i++) await counters.fail([{ key: `k${i}`, threshold: 1 }], `d${i}`, 0, policy);
    expect(counters.size).toBe(100);
    expect(await counters.lockedUntil(['k0', 'k999'], 0)).toEqual([0, 1000]);
  });
});
