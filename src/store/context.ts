/**
 * What the per-table modules share: the Kysely instance, error translation, the clock, and the
 * change log writer (called inside each mutation's own transaction, so that a change is recorded
 * if and only if it happened).
 */
import { sql } from 'kysely';
import type { Kysely, RawBuilder, Transaction } from 'kysely';

import { currentStoreDeadline } from './deadline.js';
import { translateError } from './driver-errors.js';
import type { ErrorMapping, StoreIdentity } from './driver-errors.js';
import { newId } from './ids.js';
import type { StoreDialect } from './migrations.js';
import type { Database } from './schema.js';
import { StoreUnavailableError } from './types.js';
import type { Labels } from './types.js';

export class StoreContext {
  /** Set by close(): later calls fail fast instead of reopening a pool or using a closed file. */
  closed = false;

  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: StoreDialect,
    readonly identity: StoreIdentity,
    readonly now: () => number = Date.now,
  ) {}

  /**
   * Runs one or more statements outside a transaction, translating driver errors. Inside
   * withStoreDeadline (the token endpoint) the call fails with StoreUnavailableError after the
   * deadline: a client-side race, which also covers a frozen PostgreSQL that cannot enforce
   * anything. The statement may still finish (or commit) afterwards; nothing it returns is used.
   * SQLite (better-sqlite3) is synchronous: its lock waits are bounded by busy_timeout (5 s,
   * open.ts), and a statement cannot be interrupted, so the race only ever sees it finished.
   */
  async run<T>(fn: (db: Kysely<Database>) => Promise<T>, mapping?: ErrorMapping): Promise<T> {
    if (this.closed) throw new StoreUnavailableError(`${this.identity.description} is closed`);
    const timeoutMs = currentStoreDeadline();
    try {
      return timeoutMs === undefined ? await fn(this.db) : await this.#race(fn(this.db), timeoutMs);
    } catch (error) {
      // 57014: PostgreSQL cancelled the statement (SET LOCAL statement_timeout in tx()).
      if (timeoutMs !== undefined && (error as { code?: unknown } | null)?.code === '57014') throw this.#timedOut(timeoutMs, error);
      throw translateError(error, this.identity, mapping);
    }
  }

  /**
   * Runs `fn` in a transaction (BEGIN IMMEDIATE on SQLite), translating driver errors. Under a
   * deadline on PostgreSQL, `SET LOCAL statement_timeout` makes the server cancel a statement that
   * runs too long (lock waits included) and so frees the connection; the client-side race of run()
   * still answers when the server does not.
   */
  tx<T>(fn: (trx: Transaction<Database>) => Promise<T>, mapping?: ErrorMapping): Promise<T> {
    const timeoutMs = currentStoreDeadline();
    if (timeoutMs === undefined || this.dialect !== 'postgres') return this.run((db) => db.transaction().execute(fn), mapping);
    return this.run(
      (db) =>
        db.transaction().execute(async (trx) => {
          await sql`set local statement_timeout = ${sql.lit(Math.ceil(timeoutMs))}`.execute(trx);
          return fn(trx);
        }),
      mapping,
    );
  }

  #timedOut(timeoutMs: number, cause?: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`${this.identity.description} is unavailable: timed out after ${timeoutMs} ms`, { cause });
  }

  #race<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        reject(this.#timedOut(timeoutMs));
      }, timeoutMs);
    });
    // The losing statement's outcome is dropped (its rejection must not go unhandled).
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * A column in byte order. PostgreSQL sorts text by the database's collation (en_US sorts `B`
   * between `a` and `c`); `collate "C"` makes both dialects list names in the same order.
   */
  byteOrder(column: string): RawBuilder<string> {
    return this.dialect === 'postgres' ? sql<string>`${sql.ref(column)} collate "C"` : sql<string>`${sql.ref(column)}`;
  }
}

export interface Change {
  actor: string;
  action: string;
  target: string;
  /** Never a secret: no password hash, no token digest. */
  details?: Record<string, unknown>;
}

export async function recordChange(trx: Transaction<Database>, ctx: StoreContext, change: Change): Promise<void> {
  await trx
    .insertInto('changes')
    .values({
      id: newId('c'),
      at: ctx.now(),
      actor: change.actor,
      action: change.action,
      target: change.target,
      details: JSON.stringify(change.details ?? {}),
    })
    .execute();
}

export function parseJson<T>(text: string): T {
  const value: unknown = JSON.parse(text);
  return value as T;
}

export function parseLabels(text: string): Labels {
  return parseJson<Labels>(text);
}
