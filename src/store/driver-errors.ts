/**
 * Turns driver errors into the store's: unique violations into StoreConflictError, foreign-key
 * violations into StoreNotFoundError (a user removed while a token was being created for it),
 * and everything else the database throws into StoreUnavailableError, so that callers answer 503
 * and never mistake a failing store for bad credentials. Decided by error code, not message text,
 * except for the few node-postgres errors that have no code.
 */
import { StoreConflictError, StoreNotFoundError, StoreUnavailableError } from './types.js';

export interface ErrorMapping {
  /**
   * Builds the conflict for a unique violation. `where` names the violated index: PostgreSQL
   * reports the index name (`access_tokens_digest_uq`), SQLite the columns (`access_tokens.digest`).
   */
  unique?: (where: string) => StoreConflictError;
  foreignKey?: () => StoreNotFoundError;
}

export interface StoreIdentity {
  /** Names the store in messages, e.g. `SQLite store /var/lib/sts/store.db`; never a password. */
  readonly description: string;
  /** Removes secrets (the connection string's password) from a driver message. */
  redact(text: string): string;
}

const UNIQUE_CODES = new Set(['23505', 'SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CONSTRAINT_PRIMARYKEY']);
const FOREIGN_KEY_CODES = new Set(['23503', 'SQLITE_CONSTRAINT_FOREIGNKEY']);

function property(error: unknown, name: string): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const value: unknown = (error as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : undefined;
}

function reason(error: unknown): string {
  if (error instanceof AggregateError && error.message === '') {
    // Node reports a refused connection to every address of a name as an AggregateError with
    // an empty message; its parts say what happened.
    const parts = error.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e)));
    return parts.join('; ') || property(error, 'code') || 'connection failed';
  }
  if (error instanceof Error) return error.message || property(error, 'code') || error.name;
  return String(error);
}

export function isStoreError(error: unknown): boolean {
  return error instanceof StoreConflictError || error instanceof StoreNotFoundError || error instanceof StoreUnavailableError;
}

export function translateError(error: unknown, store: StoreIdentity, mapping: ErrorMapping = {}): Error {
  if (isStoreError(error)) return error as Error;
  const code = property(error, 'code');
  if (code !== undefined && UNIQUE_CODES.has(code) && mapping.unique) {
    return mapping.unique(property(error, 'constraint') ?? property(error, 'message') ?? '');
  }
  if (code !== undefined && FOREIGN_KEY_CODES.has(code) && mapping.foreignKey) {
    return mapping.foreignKey();
  }
  return new StoreUnavailableError(store.redact(`${store.description} is unavailable: ${reason(error)}`), { cause: error });
}
