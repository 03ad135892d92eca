import { createRequire } from 'node:module';
import type * as IORedis from 'ioredis';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import type { BackoffPolicy, CounterKey, LockoutCounters, MemoryCounters } from './lockout-counters.js';

/**
 * Lockout counters in Redis, shared by every replica. Each failure is one Lua script, so the
 * dedup check, the increment, the expiry and the lock are atomic even with many replicas at once.
 *
 * Redis is a help, never a dependency of the token endpoint: every call has a timeout, commands
 * are not queued while disconnected, and any failure falls back to counting in this process's
 * memory. The outage is logged once when it starts and once when it ends, never per request.
 */

// KEYS[1] the dedup key, KEYS[2..] the counters; ARGV: now, window, dedup, base delay, max
// delay (all ms), then each counter's threshold. Hash fields: n the count, u locked until.
const FAIL_SCRIPT = `
local now, window, dedup, base, maxd = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local fresh = redis.call('SET', KEYS[1], '1', 'PX', dedup, 'NX')
local latest = 0
for i = 2, #KEYS do
  if fresh then
    local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
    if n == 1 then redis.call('PEXPIRE', KEYS[i], window) end
    local threshold = tonumber(ARGV[4 + i])
    if n >= threshold then
      local delay = math.min(base * 2 ^ math.min(n - threshold, 40), maxd)
      redis.call('HSET', KEYS[i], 'u', string.format('%d', now + delay))
      if redis.call('PTTL', KEYS[i]) < delay + window then redis.call('PEXPIRE', KEYS[i], delay + window) end
    end
  end
  local u = tonumber(redis.call('HGET', KEYS[i], 'u') or '0')
  if u > latest then latest = u end
end
return latest
`;

const LOCKED_SCRIPT = `
local result = {}
for i = 1, #KEYS do
  result[i] = tonumber(redis.call('HGET', KEYS[i], 'u') or '0')
end
return result
`;

const PROBE_INTERVAL_MS = 1000;

export interface RedisCountersOptions {
  url: string;
  prefix: string;
  timeoutMs: number;
  /** Used while Redis cannot be reached. */
  fallback: MemoryCounters;
  logger: Logger;
}

type Counted = Redis & {
  stsFail(...args: (string | number)[]): Promise<number>;
  stsLocked(...args: (string | number)[]): Promise<(number | string)[]>;
};

export class RedisCounters implements LockoutCounters {
  private readonly client: Counted;
  private down = false;
  /** While down, Redis is asked again at most this often; the requests in between use memory. */
  private nextProbe = 0;
  private everReady = false;
  private closing = false;

  constructor(private readonly options: RedisCountersOptions) {
    // ioredis (about 20 MB and a tenth of a second of start-up) is loaded only when the config
    // names a Redis: a synchronous require, since the lockout is built synchronously.
    const { Redis: RedisClient } = createRequire(import.meta.url)('ioredis') as typeof IORedis;
    const client = new RedisClient(options.url, {
      // A request never waits for Redis to come back: it counts in memory instead.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.timeoutMs,
      connectTimeout: Math.max(options.timeoutMs, 1000),
      // Reconnect for ever, at most every 2 s.
      retryStrategy: (times) => Math.min(times * 100, 2000),
      lazyConnect: false,
    });
    client.defineCommand('stsFail', { lua: FAIL_SCRIPT });
    client.defineCommand('stsLocked', { lua: LOCKED_SCRIPT });
    // Without a listener ioredis prints every connection error itself; the outage is logged once below.
    client.on('error', (err: Error) => this.failed(err));
    client.on('close', () => {
      if (!this.closing) this.failed(new Error('connection closed'));
    });
    client.on('ready', () => {
      this.everReady = true;
      this.recovered();
    });
    this.client = client as Counted;
  }

  async lockedUntil(keys: readonly string[], now: number): Promise<number[]> {
    return this.attempt(
      async () => (await this.client.stsLocked(keys.length, ...keys.map((k) => this.options.prefix + k))).map((u) => Number(u) || 0),
      () => this.options.fallback.lockedUntil(keys, now),
    );
  }

  async fail(keys: readonly CounterKey[], dedupKey: string, now: number, policy: BackoffPolicy): Promise<number> {
    const { prefix } = this.options;
    return this.attempt(
      async () =>
        Number(await this.client.stsFail(
          keys.length + 1,
          prefix + dedupKey,
          ...keys.map((k) => prefix + k.key),
          now,
          policy.windowMs,
          policy.dedupMs,
          policy.baseDelayMs,
          policy.maxDelayMs,
          ...keys.map((k) => k.threshold),
        )) || 0,
      () => this.options.fallback.fail(keys, dedupKey, now, policy),
    );
  }

  async reset(key: string): Promise<void> {
    await this.attempt(
      async () => {
        await this.client.del(this.options.prefix + key);
      },
      () => this.options.fallback.reset(key),
    );
  }

  /** Whether counters are shared right now (Redis answering). */
  get shared(): boolean {
    return !this.down && this.client.status === 'ready';
  }

  async close(): Promise<void> {
    this.closing = true;
    this.client.disconnect();
  }

  private async attempt<T>(remote: () => Promise<T>, local: () => Promise<T>): Promise<T> {
    if (this.client.status !== 'ready') {
      // Still connecting at start is not an outage yet; a refused connection is reported by 'error'.
      if (this.everReady) this.failed(new Error(`connection ${this.client.status}`));
      return local();
    }
    // A hung Redis (connected, not answering) would cost every request the full timeout.
    if (this.down && Date.now() < this.nextProbe) return local();
    try {
      const value = await remote();
      if (this.down) this.recovered();
      return value;
    } catch (err) {
      this.failed(err instanceof Error ? err : new Error(String(err)));
      return local();
    }
  }

  private failed(err: Error): void {
    this.nextProbe = Date.now() + PROBE_INTERVAL_MS;
    if (this.down) return;
    this.down = true;
    this.options.logger.warn(
      { err: { message: err.message } },
      'lockout: Redis is unreachable; counting failed logins in this process only until it is back',
    );
  }

  private recovered(): void {
    if (!this.down) return;
    this.down = false;
    // Redis holds the shared counters again; what this process counted alone meanwhile is dropped.
    this.options.fallback.clear();
    this.options.logger.info('lockout: Redis is reachable again; failed logins are counted across replicas');
  }
}
