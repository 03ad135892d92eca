/**
 * The statement deadline of the request path (`store.query_timeout`). The token endpoint runs its
 * work inside `withStoreDeadline`; every store call made from there (StoreContext.run and tx)
 * then fails with StoreUnavailableError once it has taken longer than the deadline. Migrations,
 * the CLI and the admin API never set one, so they may wait on locks as long as they must.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const deadline = new AsyncLocalStorage<number>();

/** Runs `fn` with a per-store-call deadline of `timeoutMs` (none when undefined or not positive). */
export function withStoreDeadline<T>(timeoutMs: number | undefined, fn: () => Promise<T>): Promise<T> {
  return timeoutMs === undefined || !(timeoutMs > 0) ? fn() : deadline.run(timeoutMs, fn);
}

/** The deadline of the store calls made in the current async context, in milliseconds. */
export function currentStoreDeadline(): number | undefined {
  return deadline.getStore();
}

/** Runs `fn` without a deadline even inside withStoreDeadline: migrations may wait on locks. */
export function withoutStoreDeadline<T>(fn: () => Promise<T>): Promise<T> {
  return deadline.exit(fn);
}
