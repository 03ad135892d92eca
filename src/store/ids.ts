/**
 * Record ids: a kind prefix (so a pasted id says what it is) and 16 random bytes in lowercase
 * base32, which sorts the same under every collation and needs no quoting in a shell.
 */
import { randomBytes } from 'node:crypto';

export type IdKind = 'u' | 'g' | 'r' | 'at' | 'rt' | 'c';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET.charAt((buffer >>> bits) & 31);
    }
  }
  if (bits > 0) out += ALPHABET.charAt((buffer << (5 - bits)) & 31);
  return out;
}

export function newId(kind: IdKind): string {
  return `${kind}_${base32(randomBytes(16))}`;
}
