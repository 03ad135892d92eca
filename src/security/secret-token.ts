import { createHash, randomBytes } from 'node:crypto';

/**
 * Opaque bearer secrets we hand out: access tokens (`stsat_`) and refresh tokens (`stsrt_`).
 * The prefix lets the server route a credential without trying a password hash, and lets secret
 * scanners find leaked ones; the last six characters are a checksum so that a scanner can tell a
 * real token from a string that merely starts with the prefix. Only the SHA-256 digest is stored:
 * a 256-bit random value needs no slow hash.
 */
export type SecretKind = 'access' | 'refresh';

const PREFIX: Record<SecretKind, string> = { access: 'stsat_', refresh: 'stsrt_' };
const BODY = /^[A-Za-z0-9_-]{43}$/;

function checksum(body: string): string {
  return createHash('sha256').update(body).digest('base64url').slice(0, 6);
}

export function newSecret(kind: SecretKind): string {
  const body = randomBytes(32).toString('base64url');
  return `${PREFIX[kind]}${body}${checksum(body)}`;
}

/** Which kind of secret a string claims to be, by its prefix and checksum; null if it is neither. */
export function secretKind(value: string): SecretKind | null {
  for (const kind of ['access', 'refresh'] as const) {
    const prefix = PREFIX[kind];
    if (!value.startsWith(prefix) || value.length !== prefix.length + 49) continue;
    const body = value.slice(prefix.length, prefix.length + 43);
    if (BODY.test(body) && checksum(body) === value.slice(prefix.length + 43)) return kind;
  }
  return null;
}

/** Looks like one of ours (right prefix), whether or not the checksum holds. */
export function hasSecretPrefix(value: string): boolean {
  return value.startsWith(PREFIX.access) || value.startsWith(PREFIX.refresh);
}

export function secretDigest(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
