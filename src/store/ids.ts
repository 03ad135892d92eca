/**
 * Record ids: a kind prefix (so a pasted id says what it is) and 16 random bytes in lowercase
 * base32, which sorts the same under every collation and needs no quoting in a shell.
 */
import { randomBytes } from 'node:crypto';
import { base32NoPad } from '../security/base32.js';

export type IdKind = 'u' | 'g' | 'r' | 'at' | 'rt' | 'c';

export function newId(kind: IdKind): string {
  return `${kind}_${base32NoPad(randomBytes(16)).toLowerCase()}`;
}
