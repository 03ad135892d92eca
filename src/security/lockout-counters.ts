/**
 * Where lockout failures are counted: in this process's memory, or in Redis so that replicas share
 * them. Both follow one contract, so the policy in lockout.ts never knows which it talks to.
 *
 * A counter is a failure count with a lock time. It lives `window` after its first failure (a fixed
 * window) and, once a lock is set, at least `window` past the end of that lock, so the back-off
 * keeps doubling for an address that starts again as soon as the lock ends.
 */

/** One counter to bump, with the failure count at which it starts locking. */
export interface CounterKey {
  key: string;
  threshold: number;
}

export interface BackoffPolicy {
  windowMs: number;
  /** A repeat of the same failure (same account, address and secret) within this is counted once. */
  dedupMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface LockoutCounters {
  /** For each key, the time (epoch ms) it is locked until; 0 when it is not. */
  lockedUntil(keys: readonly string[], now: number): Promise<number[]>;
  /**
   * Records one failure against every key, unless `dedupKey` was seen within the dedup window.
   * Returns the latest lock time of the keys afterwards (0 when none is locked).
   */
  fail(keys: readonly CounterKey[], dedupKey: string, now: number, policy: BackoffPolicy): Promise<number>;
  /** Forgets a key (a success resets its counter). */
  reset(key: string): Promise<void>;
}

/** The lock a count earns: none below the threshold, then base, 2×base, 4×base… up to the cap. */
export function lockDelay(count: number, threshold: number, policy: BackoffPolicy): number {
  if (count < threshold) return 0;
  // 2^40 is far past any cap; the bound keeps the arithmetic finite.
  return Math.min(policy.baseDelayMs * 2 ** Math.min(count - threshold, 40), policy.maxDelayMs);
}

interface Counter {
  count: number;
  lockedUntil: number;
  expiresAt: number;
}

/**
 * Counters in one process's memory. Bounded: past `maxEntries` the oldest counters go first (an
 * attacker spraying addresses or names cannot grow the heap without limit); expired ones are
 * dropped when met and by a sweep every so often.
 */
export class MemoryCounters implements LockoutCounters {
  private readonly counters = new Map<string, Counter>();
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(private readonly maxEntries: number) {}

  async lockedUntil(keys: readonly string[], now: number): Promise<number[]> {
    return keys.map((key) => this.live(key, now)?.lockedUntil ?? 0);
  }

  async fail(keys: readonly CounterKey[], dedupKey: string, now: number, policy: BackoffPolicy): Promise<number> {
    this.sweep(now);
    const seenUntil = this.seen.get(dedupKey);
    const repeat = seenUntil !== undefined && seenUntil > now;
    if (!repeat) this.bounded(this.seen).set(dedupKey, now + policy.dedupMs);
    let until = 0;
    for (const { key, threshold } of keys) {
      let counter = this.live(key, now);
      if (!repeat) {
        if (!counter) {
          counter = { count: 0, lockedUntil: 0, expiresAt: now + policy.windowMs };
          this.bounded(this.counters).set(key, counter);
        }
        counter.count += 1;
        const delay = lockDelay(counter.count, threshold, policy);
        if (delay > 0) {
          counter.lockedUntil = now + delay;
          counter.expiresAt = Math.max(counter.expiresAt, now + delay + policy.windowMs);
        }
      }
      until = Math.max(until, counter?.lockedUntil ?? 0);
    }
    return until;
  }

  async reset(key: string): Promise<void> {
    this.counters.delete(key);
  }

  /** Forgets everything (after Redis comes back, its counters are the truth again). */
  clear(): void {
    this.counters.clear();
    this.seen.clear();
  }

  get size(): number {
    return this.counters.size;
  }

  private live(key: string, now: number): Counter | undefined {
    const counter = this.counters.get(key);
    if (counter && counter.expiresAt <= now) {
      this.counters.delete(key);
      return undefined;
    }
    return counter;
  }

  /** Makes room for one more entry: the oldest inserted goes first. */
  private bounded<V>(map: Map<string, V>): Map<string, V> {
    while (map.size >= this.maxEntries) {
      const oldest = map.keys().next();
      if (oldest.done) break;
      map.delete(oldest.value);
    }
    return map;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [key, counter] of this.counters) if (counter.expiresAt <= now) this.counters.delete(key);
    for (const [key, until] of this.seen) if (until <= now) this.seen.delete(key);
  }
}
