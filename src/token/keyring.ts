import { z } from 'zod';
import type { SigningKey } from './keys.js';

/**
 * The keyring: the signing keys a server knows, and when each one signs. Pure: what is true at a
 * given time follows from the manifest, the settings and the clock, so every replica that reads
 * the same manifest switches keys at the same moment, without talking to the others.
 *
 * A key's life: `staged` (registries trust it, it signs nothing yet), `active` (it signs),
 * `retiring` (replaced; trusted until every token it signed has expired), `retired` (no longer
 * trusted; `keys prune` deletes it).
 */
export type KeyState = 'staged' | 'active' | 'retiring' | 'retired';

/** One key of `keyring.json`. Times are ISO strings; files are relative to the keyring folder. */
export interface ManifestEntry {
  key: string;
  certificate: string;
  created: string;
  /** Set by `keys activate` (and for the first key); without it a key waits for the delay, if any. */
  activated?: string | undefined;
}

export interface Manifest {
  version: 1;
  keys: ManifestEntry[];
}

const isoTime = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 time' });
const fileName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a file name inside the keyring folder');

export const manifestSchema = z.strictObject({
  version: z.literal(1),
  keys: z.array(
    z.strictObject({
      key: fileName,
      certificate: fileName,
      created: isoTime,
      activated: isoTime.optional(),
    }),
  ),
});

/** A key with its place in time. The config's own `token.key` is the oldest: it signs from the start. */
export interface KeyringKey {
  key: SigningKey;
  /** Where it comes from: `config` for token.key/token.certificate, else its keyring entry. */
  source: 'config' | ManifestEntry;
  createdMs: number;
  /** When it starts (or started) to sign; undefined while it waits for `keys activate`. */
  activatesMs: number | undefined;
}

export interface KeyringSettings {
  /** `token.keyring.activation_delay` in ms: a staged key signs this long after it was created. */
  activationDelayMs: number | undefined;
  /** `token.expiration` in ms: how long a replaced key's tokens stay valid. */
  tokenLifetimeMs: number;
}

/** Tokens carry exp; registries allow this much clock skew past it (distribution: 60 s). */
export const CLOCK_SKEW_MS = 60_000;

export interface KeyStatus extends KeyringKey {
  state: KeyState;
  /** For retiring and retired keys: until when registries must still trust it. */
  trustedUntilMs?: number;
}

export interface KeyringView {
  /** Every key, oldest activation first; keys that wait for `keys activate` last. */
  keys: KeyStatus[];
  signing: KeyStatus | undefined;
  /** What registries must trust now: staged, active and retiring keys, the signing key first. */
  trusted: KeyStatus[];
  /** The next moment a key starts to sign, if one is scheduled. */
  nextActivationMs: number | undefined;
}

export function activationOf(entry: ManifestEntry, createdMs: number, settings: Pick<KeyringSettings, 'activationDelayMs'>): number | undefined {
  if (entry.activated !== undefined) return Date.parse(entry.activated);
  return settings.activationDelayMs === undefined ? undefined : createdMs + settings.activationDelayMs;
}

/** Each key's state at `nowMs`. The key whose activation came last (and is not in the future) signs. */
export function keyringView(keys: readonly KeyringKey[], settings: KeyringSettings, nowMs: number): KeyringView {
  const order = (k: KeyringKey) => k.activatesMs ?? Number.POSITIVE_INFINITY;
  const sorted = [...keys].sort((a, b) => order(a) - order(b) || a.createdMs - b.createdMs);
  const started = sorted.filter((k) => k.activatesMs !== undefined && k.activatesMs <= nowMs);
  const signingIndex = started.length - 1;
  const statuses: KeyStatus[] = sorted.map((key, index) => {
    if (index === signingIndex) return { ...key, state: 'active' };
    if (index > signingIndex) return { ...key, state: 'staged' };
    // Replaced when the next key started to sign; its last token expires a lifetime later.
    const replacedMs = sorted[index + 1]?.activatesMs as number;
    const trustedUntilMs = replacedMs + settings.tokenLifetimeMs + CLOCK_SKEW_MS;
    return { ...key, state: trustedUntilMs > nowMs ? 'retiring' : 'retired', trustedUntilMs };
  });
  const signing = statuses[signingIndex];
  const trusted = statuses.filter((s) => s.state !== 'retired').sort((a, b) => Number(b === signing) - Number(a === signing));
  const upcoming = sorted.map((k) => k.activatesMs).filter((t): t is number => t !== undefined && t > nowMs);
  return { keys: statuses, signing, trusted, nextActivationMs: upcoming.length > 0 ? Math.min(...upcoming) : undefined };
}

/** Finds a key by a prefix of its thumbprint or libtrust kid (as `keys list` prints them). */
export function findKey<T extends KeyringKey>(keys: readonly T[], id: string): T {
  const wanted = id.trim();
  if (wanted.length < 4) throw new Error('give at least 4 characters of the key id');
  const matches = keys.filter((k) => k.key.thumbprint.startsWith(wanted) || k.key.libtrustKid.startsWith(wanted.toUpperCase()));
  if (matches.length === 0) throw new Error(`no key ${JSON.stringify(wanted)} in the keyring (see keys list)`);
  if (matches.length > 1) throw new Error(`${JSON.stringify(wanted)} names ${matches.length} keys; give more of its id`);
  return matches[0] as T;
}
