import { z } from 'zod';
import { CredentialCache, DEFAULT_MAX_ENTRIES } from '../security/credential-cache.js';
import { verifyPassword } from '../security/password.js';

/**
 * The `credential_cache` section: how long the password backends of our own (static users and
 * store users) remember a password they checked. A bcrypt cost 10 check takes about 70 ms of one
 * core, and Docker clients send the same password on every pull, so without this the token
 * endpoint serves about 30 sign-ins per second per machine.
 */

const DURATION = /^(\d+)(s|m|h)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };

export const credentialCacheSchema = z.strictObject({
  ttl: z
    .union([
      z.int('must be a whole number of seconds').nonnegative('must not be negative'),
      z
        .string()
        .regex(DURATION, 'must be a number of seconds or a duration such as 30s, 5m or 1h')
        .transform((value) => {
          const [, amount, unit] = DURATION.exec(value) as RegExpExecArray;
          return Number(amount) * (UNIT_SECONDS[unit as string] as number);
        }),
    ])
    .refine((s) => s <= 3600, 'must be at most 3600 seconds')
    .default(60)
    .describe('how long a verified password is remembered, in seconds or as 30s, 5m, 1h; 0 turns the cache off'),
  max_entries: z
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(1_000_000, 'must be at most 1000000')
    .default(DEFAULT_MAX_ENTRIES)
    .describe('the most remembered passwords per backend; the least recently used goes first'),
});

export type CredentialCacheConfig = z.output<typeof credentialCacheSchema>;

/** Checks a password against a bcrypt hash; injectable so that tests can count the checks. */
export type PasswordVerifier = (password: string, hash: string) => Promise<boolean>;

/** What a password backend is given to check passwords with. */
export interface PasswordCheckOptions {
  /** The cache section; without it, nothing is remembered. */
  cache?: CredentialCacheConfig;
  /** The bcrypt check; `verifyPassword` by default. */
  verify?: PasswordVerifier;
  /** The clock of the cache, in epoch milliseconds. */
  now?: () => number;
}

/** One check's outcome: whether the password matched, and the hash it was checked against. */
interface Checked {
  ok: boolean;
  hash: string;
}

/**
 * Checks passwords against bcrypt hashes and remembers the matches for the TTL, keyed by an HMAC
 * of (backend, user, password). A remembered match counts only for the very hash it was checked
 * against: the caller passes the user's current hash on every call (the store's current row, the
 * config's entry), so a changed password misses at once on every replica, with no message between
 * them. Concurrent checks of the same password share one bcrypt (single flight); mismatches are
 * never remembered.
 */
export class PasswordChecker {
  private readonly cache: CredentialCache<Checked> | undefined;
  private readonly verifyHash: PasswordVerifier;

  constructor(
    private readonly backend: string,
    options: PasswordCheckOptions = {},
  ) {
    this.verifyHash = options.verify ?? verifyPassword;
    const ttl = options.cache?.ttl ?? 0;
    this.cache =
      ttl > 0
        ? new CredentialCache<Checked>({
            ttlMs: ttl * 1000,
            maxEntries: options.cache?.max_entries ?? DEFAULT_MAX_ENTRIES,
            isSuccess: (checked) => checked.ok,
            ...(options.now ? { now: options.now } : {}),
          })
        : undefined;
  }

  /** Whether `password` matches `hash`, the current hash of `user`. */
  async verify(user: string, password: string, hash: string): Promise<boolean> {
    if (!this.cache) return this.verifyHash(password, hash);
    const checked =
      this.cache.peek(this.backend, user, password)?.result ??
      (await this.cache.verify(this.backend, user, password, async () => ({ ok: await this.verifyHash(password, hash), hash })));
    if (checked.hash === hash) return checked.ok;
    // Remembered (or checked in flight) against another hash: the password changed meanwhile.
    // Forget it and check against the current one, uncached, this once.
    this.cache.invalidateUser(user);
    return this.verifyHash(password, hash);
  }

  /** A check never remembered: for a user without a hash, to spend the same time as a real one. */
  async spend(password: string, hash: string): Promise<void> {
    await this.verifyHash(password, hash);
  }

  /** Forgets the remembered passwords of `user`. */
  forget(user: string): void {
    this.cache?.invalidateUser(user);
  }
}
