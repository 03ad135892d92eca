import { createHmac, randomBytes } from 'node:crypto';

/**
 * Remembers successful credential checks for a short while, for backends whose check is slow or
 * remote (an LDAP bind, a webhook): Docker clients ask for a new token at least every minute per
 * scope set, and each ask would otherwise cost a round trip to the directory.
 *
 * - Entries are keyed by an HMAC-SHA256 of (backend, user, secret) under a key drawn at random
 *   for each cache: the secret itself is never kept, and the key never leaves the process, so
 *   neither a heap dump nor the map's layout tells anything about a password.
 * - Only successes are kept, with what the check produced (an identity). A failure, or a check
 *   that throws, is never remembered: the next try asks the backend again.
 * - Concurrent checks of the same credentials share one call to the backend (single flight).
 * - The cache is bounded: past `maxEntries`, the least recently used entry goes.
 * - `invalidateUser` forgets every entry of a user, including a check in flight when it is called.
 */
export interface CredentialCacheOptions<R> {
  /** How long a success is remembered, in milliseconds; 0 remembers nothing. */
  ttlMs: number;
  /** The most entries kept (least recently used first out); 10,000 by default. */
  maxEntries?: number;
  /** Which results are successes worth remembering; everything else is never cached. */
  isSuccess: (result: R) => boolean;
  /** The clock, in epoch milliseconds; tests move it. */
  now?: () => number;
}

interface Entry<R> {
  user: string;
  result: R;
  expiresAt: number;
}

interface Flight<R> {
  user: string;
  promise: Promise<R>;
}

export const DEFAULT_MAX_ENTRIES = 10_000;

/**
 * Told of every lookup in every cache (metrics count hits and misses). `backend` is what the
 * caller passed to `verify`: a backend name, possibly followed by `\0` and more. An observer must
 * not throw, and learns nothing about the user or the secret.
 */
export interface CredentialCacheObserver {
  lookup(backend: string, hit: boolean): void;
}

const observers = new Set<CredentialCacheObserver>();

/** Adds an observer of every credential cache; returns the function that removes it. */
export function observeCredentialCaches(observer: CredentialCacheObserver): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

function tell(backend: string, hit: boolean): void {
  for (const observer of observers) observer.lookup(backend, hit);
}

export class CredentialCache<R> {
  private readonly key = randomBytes(32);
  /** Insertion order is recency order: a hit moves its entry to the end. */
  private readonly entries = new Map<string, Entry<R>>();
  private readonly inFlight = new Map<string, Flight<R>>();
  /** Bumped by invalidateUser, so that a check already in flight is not remembered. */
  private readonly userEpochs = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly isSuccess: (result: R) => boolean;
  private readonly now: () => number;

  constructor(options: CredentialCacheOptions<R>) {
    if (!(options.ttlMs >= 0)) throw new RangeError('ttlMs must be 0 or more');
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a whole number of at least 1');
    this.ttlMs = options.ttlMs;
    this.maxEntries = maxEntries;
    this.isSuccess = options.isSuccess;
    this.now = options.now ?? Date.now;
  }

  /** How many successes are remembered now (expired ones included until they are next touched). */
  get size(): number {
    return this.entries.size;
  }

  private digest(backend: string, user: string, secret: string): string {
    // JSON keeps the three apart: ("a", "b:c") and ("a:b", "c") never share a key.
    return createHmac('sha256', this.key).update(JSON.stringify([backend, user, secret])).digest('base64url');
  }

  /**
   * The remembered result for these credentials, or `check()`'s. A success is remembered for the
   * TTL; a failure or a throw is passed on and forgotten.
   */
  async verify(backend: string, user: string, secret: string, check: () => Promise<R>): Promise<R> {
    if (this.ttlMs === 0) return check();
    const id = this.digest(backend, user, secret);
    const hit = this.take(id, backend);
    if (hit) return hit.result;
    return this.miss(id, backend, user, check);
  }

  /**
   * The remembered result for these credentials, synchronously, or undefined (then call `verify`,
   * which counts the miss). For the hot path: a hit costs no promise and no closure for `check`.
   */
  peek(backend: string, user: string, secret: string): { result: R } | undefined {
    if (this.ttlMs === 0) return undefined;
    return this.take(this.digest(backend, user, secret), backend, false);
  }

  /** A remembered, unexpired entry (made the most recent), or undefined. */
  private take(id: string, backend: string, countMiss = true): Entry<R> | undefined {
    const hit = this.entries.get(id);
    if (hit) {
      if (hit.expiresAt > this.now()) {
        this.entries.delete(id);
        this.entries.set(id, hit);
        if (observers.size > 0) tell(backend, true);
        return hit;
      }
      this.entries.delete(id);
    }
    if (countMiss && observers.size > 0) tell(backend, false);
    return undefined;
  }

  private miss(id: string, backend: string, user: string, check: () => Promise<R>): Promise<R> {
    const flying = this.inFlight.get(id);
    if (flying) return flying.promise;

    const epoch = this.userEpochs.get(user) ?? 0;
    const promise = (async () => {
      try {
        const result = await check();
        if (this.isSuccess(result) && (this.userEpochs.get(user) ?? 0) === epoch) this.remember(id, user, result);
        return result;
      } finally {
        this.inFlight.delete(id);
        if (![...this.inFlight.values()].some((f) => f.user === user)) this.userEpochs.delete(user);
      }
    })();
    this.inFlight.set(id, { user, promise });
    return promise;
  }

  private remember(id: string, user: string, result: R): void {
    this.entries.delete(id);
    this.entries.set(id, { user, result, expiresAt: this.now() + this.ttlMs });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  /** Forgets every remembered success of `user` (a password change, a disabled account). */
  invalidateUser(user: string): void {
    for (const [id, entry] of this.entries) if (entry.user === user) this.entries.delete(id);
    // A check of this user still in flight finishes for its callers but is not remembered.
    let flying = false;
    for (const flight of this.inFlight.values()) if (flight.user === user) flying = true;
    if (flying) this.userEpochs.set(user, (this.userEpochs.get(user) ?? 0) + 1);
    else this.userEpochs.delete(user);
  }

  /** Forgets everything. */
  clear(): void {
    this.entries.clear();
    for (const flight of this.inFlight.values()) this.userEpochs.set(flight.user, (this.userEpochs.get(flight.user) ?? 0) + 1);
  }
}
