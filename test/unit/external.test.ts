import { describe, expect, it } from 'vitest';
import { Limiter, QueueFullError } from '../../src/external/limiter.js';
import { cacheTtlSchema, timeoutSchema } from '../../src/external/settings.js';
import { signBody } from '../../src/external/webhook-client.js';

describe('timeoutSchema (milliseconds)', () => {
  it.each([
    // valid
    [5, 5_000],
    [0.25, 250],
    ['500ms', 500],
    ['5s', 5_000],
    ['1m', 60_000],
    ['10m', 600_000],
  ])('%j -> %d ms', (input, ms) => {
    expect(timeoutSchema.parse(input)).toBe(ms);
  });

  it.each([
    // invalid
    0,
    -1,
    '0s',
    '5 s',
    '5',
    '1h',
    '11m',
    601,
  ])('refuses %j', (input) => {
    expect(timeoutSchema.safeParse(input).success).toBe(false);
  });
});

describe('cacheTtlSchema (seconds)', () => {
  it.each([
    [0, 0],
    [30, 30],
    ['30s', 30],
    ['5m', 300],
    ['1h', 3_600],
  ])('%j -> %d s', (input, seconds) => {
    expect(cacheTtlSchema.parse(input)).toBe(seconds);
  });

  it.each([-1, 1.5, '1d', '25h', 86_401])('refuses %j', (input) => {
    expect(cacheTtlSchema.safeParse(input).success).toBe(false);
  });
});

describe('Limiter', () => {
  it('runs at most maxConcurrency tasks, queues up to maxQueue in order, refuses beyond', async () => {
    const limiter = new Limiter(2, 1);
    const order: string[] = [];
    const gates: Array<() => void> = [];
    const task = (name: string) => () =>
      new Promise<string>((resolve) => {
        order.push(`start ${name}`);
        gates.push(() => resolve(name));
      });
    const a = limiter.run(task('a'));
    const b = limiter.run(task('b'));
    const c = limiter.run(task('c'));
    await Promise.resolve();
    expect([limiter.running, limiter.queued]).toEqual([2, 1]);
    await expect(limiter.run(task('d'))).rejects.toBeInstanceOf(QueueFullError);
    gates.shift()?.();
    expect(await a).toBe('a');
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['start a', 'start b', 'start c']);
    gates.shift()?.();
    gates.shift()?.();
    expect(await Promise.all([b, c])).toEqual(['b', 'c']);
    expect([limiter.running, limiter.queued]).toEqual([0, 0]);
  });

  it('frees the slot when a task throws', async () => {
    const limiter = new Limiter(1, 0);
    await expect(limiter.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await limiter.run(async () => 'ok')).toBe('ok');
  });
});

describe('signBody', () => {
  it('is the hex HMAC-SHA256 of the body, prefixed sha256=', () => {
    // RFC 4231 test case 2.
    expect(signBody(Buffer.from('Jefe'), 'what do ya want for nothing?')).toBe(
      'sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });
});

describe('Limiter wait bound', () => {
  it('refuses a caller that waited longer than maxWaitMs, and leaves the queue clean', async () => {
    const limiter = new Limiter(1, 5);
    let release: () => void = () => undefined;
    const first = limiter.run(() => new Promise<void>((resolve) => (release = resolve)));
    const started = Date.now();
    await expect(limiter.run(async () => 'late', 100)).rejects.toBeInstanceOf(QueueFullError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(limiter.queued).toBe(0);
    release();
    await first;
    expect(await limiter.run(async () => 'next', 100)).toBe('next');
    expect([limiter.running, limiter.queued]).toEqual([0, 0]);
  });
});
