/**
 * What the per-table modules share: the Kysely instance, error translation, the clock, and the
 * change log writer (called inside each mutation's own transaction, so that a change is recorded
 * if and only if it happened).
 */
import { sql } from 'kysely';
import type { Kysely, RawBuilder, Transaction } from 'kysely';

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

  /** Runs one or more statements outside a transaction, translating driver errors. */
  async run<T>(fn: (db: Kysely<Database>) => Promise<T>, mapping?: ErrorMapping): Promise<T> {
    if (this.closed) throw new StoreUnavailableError(`${this.identity.description} is closed`);
    try {
      return await fn(this.db);
    } catch (error) {
      throw translateError(error, this.identity, mapping);
    }
  }

  /** Runs `fn` in a transaction (BEGIN IMMEDIATE on SQLite), translating driver errors. */
  tx<T>(fn: (trx: Transaction<Database>) => Promise<T>, mapping?: ErrorMapping): Promise<T> {
    return this.run((db) => db.transaction().execute(fn), mapping);
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
