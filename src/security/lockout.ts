import { createHmac, hkdfSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { peekJwt } from '../authn/workload.js';
import type { Credentials } from '../authn/types.js';
import type { ConfigIssue } from '../config/errors.js';
import type { Logger } from '../observability/logger.js';
import { TooManyRequestsError } from '../protocol/errors.js';
import type { SigningKey } from '../token/keys.js';
import { MemoryCounters, type BackoffPolicy, type LockoutCounters } from './lockout-counters.js';
import { RedisCounters } from './lockout-redis.js';
import { hasSecretPrefix } from './secret-token.js';

/**
 * Lockouts that stop password guessing, not CI.
 *
 * - Only bad passwords count: a `denied` answer of the authenticator chain to a request that
 *   carried a password. Malformed requests (400), anonymous requests, backend outages (503) and
 *   our own machine credentials (access and refresh tokens, trusted issuers' ID tokens) never do,
 *   and machine credentials are never refused: a CI job's token keeps working while someone
 *   guesses its owner's password.
 * - Two counters per failure: (account, client address), which locks after `threshold` failures
 *   within `window`, and the account alone, which locks every address after `account_threshold`
 *   (a spray from many addresses). Unknown accounts are counted the same way, so guessing names
 *   is throttled like guessing passwords.
 * - The lock grows: `base_delay` at the threshold, doubling with each further failure up to
 *   `max_delay`. While it holds, even the right password from that address is refused with 429
 *   and `Retry-After`, before any password hash runs.
 * - containerd and buildkit retry a POST that got 401 as a GET (protocol.md §1.5): the same
 *   account, address and secret within `dedup_window` count once.
 * - A success resets the (account, address) counter, not the account-wide one.
 */

const DURATION = /^(\d+)(s|m|h)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };
const DURATION_MESSAGE = 'must be a number of seconds or a duration such as 10s, 15m or 1h';

/** Whole seconds, or 10s / 15m / 1h (config/schema.ts imports this module: its own would be a cycle). */
const duration = (min: number) =>
  z.union(
    [
      z.int().min(min),
      z
        .string()
        .regex(DURATION, DURATION_MESSAGE)
        .transform((value) => {
          const [, amount, unit] = DURATION.exec(value) as RegExpExecArray;
          return Number(amount) * (UNIT_SECONDS[unit as string] as number);
        })
        .pipe(z.int().min(min)),
    ],
    { error: DURATION_MESSAGE },
  );

const REDIS_URL = /^rediss?:\/\/\S+$/;

export const lockoutRedisSchema = z
  .strictObject({
    url: z.string().regex(REDIS_URL, 'must be a redis:// or rediss:// URL').optional().describe('the Redis server replicas share counters in, e.g. redis://redis:6379/0'),
    url_file: z.string().min(1).optional().describe('a file holding that URL (when it holds a password)'),
    prefix: z.string().max(100).default('sts:lockout:').describe('prefix of every key this server writes'),
    timeout_ms: z.int().min(10).max(10_000).default(250).describe('the longest one Redis call may take, in milliseconds; then memory is used'),
  })
  .superRefine((redis, ctx) => {
    if ((redis.url === undefined) === (redis.url_file === undefined)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'set url or url_file (one of them)' });
  });

export const lockoutSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('lock out addresses and accounts after repeated bad passwords'),
    threshold: z.int().min(1).max(10_000).default(5).describe('bad passwords from one address for one account, within window, before it locks'),
    account_threshold: z.int().min(1).max(1_000_000).default(50).describe('bad passwords for one account from any address, within window, before every address is locked'),
    window: duration(1).default(900).describe('how long a failure is remembered (counted from the first)'),
    base_delay: duration(1).default(1).describe('the first lock; each further failure doubles it'),
    max_delay: duration(1).default(900).describe('the longest lock'),
    dedup_window: duration(0).default(10).describe('the same bad password from the same address within this counts once (POST retried as GET)'),
    max_entries: z.int().min(100).max(10_000_000).default(100_000).describe('counters kept in memory at most; the oldest go first'),
    redis: lockoutRedisSchema.optional().describe('share the counters between replicas through Redis'),
  })
  .superRefine((lockout, ctx) => {
    if (lockout.account_threshold < lockout.threshold) {
      ctx.addIssue({ code: 'custom', path: ['account_threshold'], message: 'must be at least threshold' });
    }
    if (lockout.max_delay < lockout.base_delay) ctx.addIssue({ code: 'custom', path: ['max_delay'], message: 'must be at least base_delay' });
  });

export type LockoutConfig = z.output<typeof lockoutSchema>;

/** Our own secrets and trusted issuers' ID tokens: never counted, never refused. */
export function isMachineCredential(credentials: Credentials): boolean {
  return hasSecretPrefix(credentials.password) || peekJwt(credentials.password) !== undefined;
}

export interface LockoutOptions {
  now?: () => number;
  /** Keys the dedup hash, so neither memory nor Redis holds anything that tests a password guess. */
  secret: Buffer;
  /** Called when a request is refused (for metrics). */
  onRefused?: (scope: 'address' | 'account') => void;
}

export class Lockout {
  private readonly policy: BackoffPolicy;
  private readonly now: () => number;

  constructor(
    private readonly config: LockoutConfig,
    private readonly counters: LockoutCounters & { close?(): Promise<void> },
    private readonly options: LockoutOptions,
  ) {
    this.policy = {
      windowMs: config.window * 1000,
      dedupMs: Math.max(config.dedup_window * 1000, 1),
      baseDelayMs: config.base_delay * 1000,
      maxDelayMs: config.max_delay * 1000,
    };
    this.now = options.now ?? Date.now;
  }

  /** Before authentication: refuses (429) a password from a locked address or for a locked account. */
  async check(credentials: Credentials | null, ip: string | undefined): Promise<void> {
    const keys = this.keysFor(credentials, ip);
    if (!keys) return;
    const now = this.now();
    const [pairUntil = 0, accountUntil = 0] = await this.counters.lockedUntil([keys.pair, keys.account], now);
    const until = Math.max(pairUntil, accountUntil);
    if (until <= now) return;
    const scope = pairUntil >= accountUntil ? 'address' : 'account';
    this.options.onRefused?.(scope);
    const seconds = Math.max(1, Math.ceil((until - now) / 1000));
    throw new TooManyRequestsError(
      'too many failed logins; try again later',
      `locked out (${scope === 'address' ? 'this address for the account' : 'the account from every address'}) for ${seconds} s more`,
      seconds,
    );
  }

  /** After a `denied` answer: counts the bad password once per (account, address, secret). */
  async failed(credentials: Credentials | null, ip: string | undefined): Promise<void> {
    const keys = this.keysFor(credentials, ip);
    if (!keys || !credentials) return;
    const dedup = createHmac('sha256', this.options.secret)
      .update(`${keys.account}\0${keys.pair}\0`)
      .update(credentials.password)
      .digest('base64url')
      .slice(0, 32);
    await this.counters.fail(
      [
        { key: keys.pair, threshold: this.config.threshold },
        { key: keys.account, threshold: this.config.account_threshold },
      ],
      `d:${dedup}`,
      this.now(),
      this.policy,
    );
  }

  /** After a success: the (account, address) counter starts again. */
  async succeeded(credentials: Credentials | null, ip: string | undefined): Promise<void> {
    const keys = this.keysFor(credentials, ip);
    if (keys) await this.counters.reset(keys.pair);
  }

  async close(): Promise<void> {
    await this.counters.close?.();
  }

  /**
   * Counter keys, or undefined when the request is not a password login. Names are compared
   * without case: LDAP and Active Directory accept any case, so `Alice` must not get fresh tries.
   * The address comes first and the name last, so neither can be forged to look like the other.
   */
  private keysFor(credentials: Credentials | null, ip: string | undefined): { pair: string; account: string } | undefined {
    if (!credentials || isMachineCredential(credentials)) return undefined;
    const account = credentials.username.toLowerCase();
    return { pair: `p:${ip ?? 'unknown'}|${account}`, account: `a:${account}` };
  }
}

/** The dedup key: derived from the signing key, which replicas share, so a retry on another replica still counts once. */
export function lockoutSecret(signingKey: SigningKey): Buffer {
  const material = signingKey.privateKey.export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), 'sts-docker-auth lockout dedup', 32));
}

/**
 * The Redis URL, from the config or read from its url_file at load time (so check-config reports a
 * missing or wrong file with its key path).
 */
export async function prepareLockoutRedis(config: LockoutConfig, baseDir: string, issues: ConfigIssue[]): Promise<string | undefined> {
  const redis = config.enabled ? config.redis : undefined;
  if (!redis) return undefined;
  if (redis.url !== undefined || redis.url_file === undefined) return redis.url;
  const file = isAbsolute(redis.url_file) ? redis.url_file : resolve(baseDir, redis.url_file);
  let url: string;
  try {
    url = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    issues.push({ path: 'lockout.redis.url_file', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}` });
    return undefined;
  }
  if (!REDIS_URL.test(url)) {
    issues.push({ path: 'lockout.redis.url_file', message: `${file} does not hold a redis:// or rediss:// URL` });
    return undefined;
  }
  return url;
}

/** Builds the lockout the config asks for, or undefined when it is disabled. */
export function createLockout(
  config: LockoutConfig,
  options: {
    signingKey: SigningKey;
    logger: Logger;
    /** lockout.redis.url, or what its url_file holds (prepareLockoutRedis). */
    redisUrl?: string | undefined;
    now?: () => number;
    onRefused?: LockoutOptions['onRefused'];
  },
): Lockout | undefined {
  if (!config.enabled) return undefined;
  const memory = new MemoryCounters(config.max_entries);
  const url = options.redisUrl ?? config.redis?.url;
  const counters = config.redis && url
    ? new RedisCounters({
        url,
        prefix: config.redis.prefix,
        timeoutMs: config.redis.timeout_ms,
        fallback: memory,
        logger: options.logger,
      })
    : memory;
  return new Lockout(config, counters, {
    secret: lockoutSecret(options.signingKey),
    ...(options.now ? { now: options.now } : {}),
    ...(options.onRefused ? { onRefused: options.onRefused } : {}),
  });
}
