import { describe, expect, it } from 'vitest';
import { activationOf, CLOCK_SKEW_MS, findKey, keyringView, manifestSchema, type KeyringKey, type ManifestEntry } from '../../src/token/keyring.js';
import type { SigningKey } from '../../src/token/keys.js';

const MIN = 60_000;
const T0 = Date.parse('2026-11-30T12:00:00Z');
const settings = { activationDelayMs: undefined, tokenLifetimeMs: 5 * MIN };

/** Only what the timeline reads: identity and ids. The timeline never signs. */
function fakeKey(thumbprint: string, libtrustKid = thumbprint.toUpperCase()): SigningKey {
  return { thumbprint, libtrustKid } as SigningKey;
}

function entry(name: string, createdMs: number, activatedMs?: number): ManifestEntry {
  return {
    key: `${name}.key`,
    certificate: `${name}.crt`,
    created: new Date(createdMs).toISOString(),
    ...(activatedMs === undefined ? {} : { activated: new Date(activatedMs).toISOString() }),
  };
}

function keyOf(name: string, createdMs: number, activatedMs?: number, delayMs?: number): KeyringKey {
  const e = entry(name, createdMs, activatedMs);
  return { key: fakeKey(name), source: e, createdMs, activatesMs: activationOf(e, createdMs, { activationDelayMs: delayMs }) };
}

const configKey = (name = 'config'): KeyringKey => ({ key: fakeKey(name), source: 'config', createdMs: T0 - 365 * 86_400_000, activatesMs: Number.NEGATIVE_INFINITY });

const states = (keys: KeyringKey[], now: number, s = settings) => keyringView(keys, s, now).keys.map((k) => [k.key.thumbprint, k.state]);

describe('keyring timeline', () => {
  it('one key signs from the start', () => {
    const view = keyringView([configKey()], settings, T0);
    expect(view.signing?.key.thumbprint).toBe('config');
    expect(view.trusted.map((k) => k.key.thumbprint)).toEqual(['config']);
    expect(view.nextActivationMs).toBeUndefined();
  });

  it('a rotated key is staged until activated: trusted, but it does not sign', () => {
    const keys = [configKey(), keyOf('new', T0)];
    expect(states(keys, T0 + MIN)).toEqual([
      ['config', 'active'],
      ['new', 'staged'],
    ]);
    const view = keyringView(keys, settings, T0 + MIN);
    expect(view.signing?.key.thumbprint).toBe('config');
    expect(view.trusted.map((k) => k.key.thumbprint)).toEqual(['config', 'new']);
    // Without a delay nothing is scheduled: the operator decides.
    expect(view.nextActivationMs).toBeUndefined();
  });

  it('activation makes it sign; the old key is trusted for one token lifetime plus the clock skew', () => {
    const activated = T0 + 10 * MIN;
    const keys = [configKey(), keyOf('new', T0, activated)];
    const until = activated + 5 * MIN + CLOCK_SKEW_MS;
    const justBefore = keyringView(keys, settings, until - 1);
    expect(justBefore.keys.map((k) => [k.key.thumbprint, k.state, k.trustedUntilMs])).toEqual([
      ['config', 'retiring', until],
      ['new', 'active', undefined],
    ]);
    // The signing key comes first in the trusted list: zot reads only the first certificate.
    expect(justBefore.trusted.map((k) => k.key.thumbprint)).toEqual(['new', 'config']);
    const after = keyringView(keys, settings, until);
    expect(after.keys.map((k) => k.state)).toEqual(['retired', 'active']);
    expect(after.trusted.map((k) => k.key.thumbprint)).toEqual(['new']);
  });

  it('a longer token lifetime keeps the old key trusted longer', () => {
    const keys = [configKey(), keyOf('new', T0, T0)];
    const long = { ...settings, tokenLifetimeMs: 60 * MIN };
    expect(states(keys, T0 + 30 * MIN, long)).toEqual([
      ['config', 'retiring'],
      ['new', 'active'],
    ]);
    expect(states(keys, T0 + 30 * MIN)).toEqual([
      ['config', 'retired'],
      ['new', 'active'],
    ]);
  });

  it('with activation_delay a staged key signs on its own, at created + delay, and that time is scheduled', () => {
    const delay = 24 * 60 * MIN;
    const keys = [configKey(), keyOf('new', T0, undefined, delay)];
    const s = { ...settings, activationDelayMs: delay };
    const before = keyringView(keys, s, T0 + delay - 1);
    expect(before.signing?.key.thumbprint).toBe('config');
    expect(before.nextActivationMs).toBe(T0 + delay);
    expect(before.keys.find((k) => k.key.thumbprint === 'new')?.state).toBe('staged');
    const after = keyringView(keys, s, T0 + delay);
    expect(after.signing?.key.thumbprint).toBe('new');
    expect(after.nextActivationMs).toBeUndefined();
  });

  it('keys activate overrides the delay', () => {
    const delay = 24 * 60 * MIN;
    const keys = [configKey(), keyOf('new', T0, T0 + MIN, delay)];
    expect(keyringView(keys, { ...settings, activationDelayMs: delay }, T0 + 2 * MIN).signing?.key.thumbprint).toBe('new');
  });

  it('three generations: each replaced key is trusted from its replacement on', () => {
    const keys = [keyOf('a', T0, T0), keyOf('b', T0 + 60 * MIN, T0 + 60 * MIN), keyOf('c', T0 + 120 * MIN, T0 + 120 * MIN)];
    const view = keyringView(keys, settings, T0 + 122 * MIN);
    expect(view.keys.map((k) => [k.key.thumbprint, k.state])).toEqual([
      ['a', 'retired'],
      ['b', 'retiring'],
      ['c', 'active'],
    ]);
    expect(view.keys[0]?.trustedUntilMs).toBe(T0 + 66 * MIN);
    expect(view.keys[1]?.trustedUntilMs).toBe(T0 + 126 * MIN);
  });

  it('a rollback (an older key activated again) signs, and the key it replaces retires', () => {
    const keys = [keyOf('a', T0, T0 + 30 * MIN), keyOf('b', T0 + 10 * MIN, T0 + 20 * MIN)];
    expect(states(keys, T0 + 31 * MIN)).toEqual([
      ['b', 'retiring'],
      ['a', 'active'],
    ]);
  });

  it('has no signing key when every key waits for activation', () => {
    const view = keyringView([keyOf('a', T0)], settings, T0);
    expect(view.signing).toBeUndefined();
    expect(view.trusted.map((k) => k.state)).toEqual(['staged']);
  });

  it('a future activation is staged until then', () => {
    const keys = [configKey(), keyOf('new', T0, T0 + 5 * MIN)];
    expect(keyringView(keys, settings, T0).nextActivationMs).toBe(T0 + 5 * MIN);
    expect(states(keys, T0)).toEqual([
      ['config', 'active'],
      ['new', 'staged'],
    ]);
  });
});

describe('findKey', () => {
  const keys = [configKey('Moi9HLMD2PDYONLh9a1W'), keyOf('MoXXiQZOkXbNhdnx', T0)];
  keys[1] = { ...keys[1], key: fakeKey('MoXXiQZOkXbNhdnx', 'UIXP:WO6B') } as KeyringKey;

  it('finds a key by the start of its thumbprint or of its libtrust kid (any case)', () => {
    expect(findKey(keys, 'Moi9').key.thumbprint).toBe('Moi9HLMD2PDYONLh9a1W');
    expect(findKey(keys, 'uixp:wo').key.thumbprint).toBe('MoXXiQZOkXbNhdnx');
  });

  it('refuses ids that are too short, unknown or ambiguous', () => {
    expect(() => findKey(keys, 'Mo')).toThrow(/at least 4 characters/);
    expect(() => findKey(keys, 'ZZZZ')).toThrow(/no key "ZZZZ"/);
    const twins = [keyOf('abcd1', T0), keyOf('abcd2', T0)];
    expect(() => findKey(twins, 'abcd')).toThrow(/names 2 keys/);
  });
});

describe('keyring.json schema', () => {
  it('accepts what the keys commands write', () => {
    expect(manifestSchema.safeParse({ version: 1, keys: [entry('key-1', T0, T0), entry('key-2', T0)] }).success).toBe(true);
  });

  it('refuses paths outside the folder, unknown keys and bad times', () => {
    expect(manifestSchema.safeParse({ version: 1, keys: [{ ...entry('k', T0), key: '../../etc/shadow' }] }).success).toBe(false);
    expect(manifestSchema.safeParse({ version: 1, keys: [{ ...entry('k', T0), key: '/abs.key' }] }).success).toBe(false);
    expect(manifestSchema.safeParse({ version: 1, keys: [{ ...entry('k', T0), note: 'x' }] }).success).toBe(false);
    expect(manifestSchema.safeParse({ version: 1, keys: [{ ...entry('k', T0), created: 'yesterday' }] }).success).toBe(false);
    expect(manifestSchema.safeParse({ version: 2, keys: [] }).success).toBe(false);
  });
});
