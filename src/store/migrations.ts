/**
 * Versioned schema migrations, in code: the program carries its schema, so there is no folder
 * to scan and nothing to download. Kysely's Migrator records what ran in `kysely_migration` and
 * serializes concurrent runs (an advisory lock on PostgreSQL; on SQLite the store's dialect runs
 * the whole batch in one BEGIN IMMEDIATE transaction, see sqlite-dialect.ts), so replicas that
 * start together migrate once.
 *
 * Version N is the number prefix of the last migration that ran: `002_tokens` is version 2.
 */
import { Migrator, NO_MIGRATIONS, sql } from 'kysely';
import type { Kysely, Migration, MigrationProvider, MigrationResultSet } from 'kysely';

import { RULES_VERSION_KEY } from './schema.js';

export type StoreDialect = 'sqlite' | 'postgres';

export interface MigrationOptions {
  dialect: StoreDialect;
  /** PostgreSQL schema holding the tables (and Kysely's own), when not the default. */
  schema?: string;
}

function usersGroupsRules(dialect: StoreDialect): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('password_hash', 'text')
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('users_name_uq').unique().on('users').column('name').execute();

      await db.schema
        .createTable('groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('labels', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('groups_name_uq').unique().on('groups').column('name').execute();

      await db.schema
        .createTable('group_members')
        .addColumn('group_id', 'text', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'user_id'])
        .execute();
      // The primary key serves "members of a group"; this serves "groups of a user" and the
      // cascade when a user is removed.
      await db.schema.createIndex('group_members_user_idx').on('group_members').column('user_id').execute();

      // Not unique: inserting at a position shifts the later rules one statement at a time, and
      // PostgreSQL checks a (non-deferred) unique index row by row. Writers serialize on the
      // rules_version row instead (see rules.ts).
      await db.schema
        .createTable('acl_rules')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('rule', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('acl_rules_position_idx').on('acl_rules').column('position').execute();

      await db.schema
        .createTable('store_meta')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'bigint', (c) => c.notNull())
        .execute();
      await sql`insert into "store_meta" ("key", "value") values (${RULES_VERSION_KEY}, 0)`.execute(db);

      await db.schema
        .createTable('changes')
        // SQLite's INTEGER PRIMARY KEY is the rowid, increasing as long as no row is deleted,
        // and the change log is append-only; PostgreSQL needs an identity column for the same.
        .addColumn('seq', dialect === 'sqlite' ? 'integer' : 'bigint', (c) =>
          dialect === 'sqlite' ? c.primaryKey() : c.primaryKey().generatedAlwaysAsIdentity(),
        )
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('details', 'text', (c) => c.notNull().defaultTo('{}'))
        .execute();
      await db.schema.createIndex('changes_target_idx').on('changes').columns(['target', 'seq']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['changes', 'store_meta', 'acl_rules', 'group_members', 'groups', 'users']) {
        await db.schema.dropTable(table).execute();
      }
    },
  };
}

/**
 * Tokens name their owner rather than reference a users row: config-file users own tokens too
 * (refresh tokens on every docker login), and the store does not hold them. users.remove deletes
 * a stored user's tokens in its own transaction instead of an ON DELETE CASCADE.
 */
const tokens: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('access_tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('scopes', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('last_used_at', 'bigint')
      .addColumn('last_used_ip', 'text')
      .addColumn('revoked_at', 'bigint')
      .execute();
    // Index names carry the column they protect: the store tells a name conflict from a digest
    // conflict by them (PostgreSQL reports the index name, SQLite the columns).
    await db.schema.createIndex('access_tokens_user_name_uq').unique().on('access_tokens').columns(['user', 'name']).execute();
    await db.schema.createIndex('access_tokens_digest_uq').unique().on('access_tokens').column('digest').execute();
    await db.schema.createIndex('access_tokens_user_idx').on('access_tokens').column('user').execute();

    await db.schema
      .createTable('refresh_tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('user', 'text', (c) => c.notNull())
      .addColumn('service', 'text', (c) => c.notNull())
      .addColumn('client_id', 'text')
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('last_used_at', 'bigint')
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('revoked_at', 'bigint')
      .execute();
    await db.schema.createIndex('refresh_tokens_digest_uq').unique().on('refresh_tokens').column('digest').execute();
    await db.schema.createIndex('refresh_tokens_user_idx').on('refresh_tokens').column('user').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('refresh_tokens').execute();
    await db.schema.dropTable('access_tokens').execute();
  },
};

function migrations(dialect: StoreDialect): Record<string, Migration> {
  return {
    '001_users_groups_rules': usersGroupsRules(dialect),
    '002_tokens': tokens,
  };
}

export const MIGRATION_NAMES = Object.keys(migrations('sqlite')).sort();
export const LATEST_VERSION = MIGRATION_NAMES.length;

function versionOf(name: string): number {
  return Number.parseInt(name.slice(0, name.indexOf('_')), 10);
}

class InCodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: StoreDialect) {}
  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(migrations(this.dialect));
  }
}

export function createMigrator<DB>(db: Kysely<DB>, options: MigrationOptions): Migrator {
  return new Migrator({
    db,
    provider: new InCodeMigrationProvider(options.dialect),
    ...(options.schema === undefined ? {} : { migrationTableSchema: options.schema }),
  });
}

/** The schema version: 0 on an empty database. */
export async function schemaVersion<DB>(db: Kysely<DB>, options: MigrationOptions): Promise<number> {
  // Read kysely_migration ourselves: the Migrator would compare against the migrations this
  // program knows and so cannot report a database that a newer program migrated further.
  const table = options.dialect === 'sqlite'
    ? await sql<{ n: number }>`select count(*) as n from sqlite_master where type = 'table' and name = 'kysely_migration'`.execute(db)
    : await sql<{ n: number }>`select count(*)::int as n from pg_catalog.pg_tables
        where tablename = 'kysely_migration' and schemaname = ${options.schema ?? sql`current_schema()`}`.execute(db);
  if ((table.rows[0]?.n ?? 0) === 0) return 0;
  const ref = options.schema === undefined ? sql.table('kysely_migration') : sql.table(`${options.schema}.kysely_migration`);
  const executed = await sql<{ name: string }>`select name from ${ref}`.execute(db);
  return executed.rows.reduce((max, row) => Math.max(max, versionOf(row.name)), 0);
}

function throwOnError(result: MigrationResultSet): void {
  if (result.error === undefined) return;
  const failed = result.results?.find((r) => r.status === 'Error')?.migrationName;
  const cause = result.error instanceof Error ? result.error : new Error(String(result.error));
  throw new Error(`${failed === undefined ? 'migration' : `migration ${failed}`} failed: ${cause.message}`, { cause });
}

/**
 * Migrates up or down to `version` (0 undoes everything; tests use lower versions to check
 * upgrades from a previous one). Returns the versions before and after.
 */
export async function migrateTo<DB>(db: Kysely<DB>, version: number, options: MigrationOptions): Promise<{ from: number; to: number }> {
  if (!Number.isInteger(version) || version < 0 || version > LATEST_VERSION) {
    throw new RangeError(`schema version must be an integer from 0 to ${LATEST_VERSION}, not ${version}`);
  }
  const from = await schemaVersion(db, options);
  if (from > LATEST_VERSION) {
    throw new Error(`the store has schema version ${from}, newer than this program's ${LATEST_VERSION}: upgrade sts-docker-auth`);
  }
  const target = version === 0 ? NO_MIGRATIONS : (MIGRATION_NAMES[version - 1] as string);
  throwOnError(await createMigrator(db, options).migrateTo(target));
  return { from, to: await schemaVersion(db, options) };
}

export function migrateToLatest<DB>(db: Kysely<DB>, options: MigrationOptions): Promise<{ from: number; to: number }> {
  return migrateTo(db, LATEST_VERSION, options);
}
