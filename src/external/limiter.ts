/**
 * Caps how many calls to an external program run at once. Callers beyond the cap wait their turn
 * in a bounded queue, first come first served; when the queue is full the call is refused at once
 * rather than piling up (docker_auth issue 253 / PR 422: one process per request, unbounded, hit
 * the OS limits under load).
 */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

interface Waiter {
  resolve: () => void;
  timer: NodeJS.Timeout | undefined;
}

export class Limiter {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    readonly maxConcurrency: number,
    readonly maxQueue: number,
  ) {
    if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) throw new RangeError('maxConcurrency must be at least 1');
    if (!Number.isInteger(maxQueue) || maxQueue < 0) throw new RangeError('maxQueue must not be negative');
  }

  /** Calls running now. */
  get running(): number {
    return this.active;
  }

  /** Calls waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Runs `task` when a slot is free. Throws QueueFullError when the queue is full, or when no slot
   * freed up within `maxWaitMs`: a caller queued behind slow calls is answered rather than left
   * waiting longer than its client will.
   */
  async run<T>(task: () => Promise<T>, maxWaitMs?: number): Promise<T> {
    await this.acquire(maxWaitMs);
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  private acquire(maxWaitMs: number | undefined): Promise<void> {
    if (this.active < this.maxConcurrency) {
      this.active++;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.maxQueue) {
      return Promise.reject(new QueueFullError(`${this.active} calls running and ${this.waiting.length} waiting`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { resolve, timer: undefined };
      if (maxWaitMs !== undefined) {
        waiter.timer = setTimeout(() => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(new QueueFullError(`no free slot within ${maxWaitMs} ms (${this.active} calls running)`));
        }, maxWaitMs);
      }
      this.waiting.push(waiter);
    });
  }

  private release(): void {
    // The slot passes straight to the next caller, so `active` never dips and lets a newcomer jump
    // the queue.
    const next = this.waiting.shift();
    if (next) {
      clearTimeout(next.timer);
      next.resolve();
    } else {
      this.active--;
    }
  }
}
