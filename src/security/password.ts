import bcrypt from 'bcrypt';

/**
 * Password hashing with native bcrypt: it runs in libuv's thread pool, so a burst of logins never
 * blocks the event loop (bcryptjs would).
 */
export const DEFAULT_COST = 10;

export function hashPassword(password: string, cost = DEFAULT_COST): Promise<string> {
  return bcrypt.hash(password, cost);
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  // node's bcrypt knows $2a$ and $2b$; $2y$ (htpasswd, PHP) is the same algorithm under another name.
  const normalized = hash.startsWith('$2y$') ? `$2b$${hash.slice(4)}` : hash;
  return bcrypt.compare(password, normalized);
}

/** The cost encoded in a bcrypt hash. */
export function costOf(hash: string): number {
  return Number(hash.slice(4, 6));
}

const dummyHashes = new Map<number, Promise<string>>();

/**
 * A hash of a random secret at a given cost. Unknown accounts are checked against it, so that
 * they cost the same time as known ones and the response time does not reveal who exists.
 */
export function dummyHash(cost: number): Promise<string> {
  let hash = dummyHashes.get(cost);
  if (!hash) {
    hash = bcrypt.hash(`unknown-account-${Math.random()}`, cost);
    dummyHashes.set(cost, hash);
  }
  return hash;
}
