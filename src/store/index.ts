export * from './types.js';
export { openStore } from './open.js';
export type { OpenStoreOptions } from './open.js';
export { KyselyStore } from './kysely-store.js';
export type { KyselyStoreOptions } from './kysely-store.js';
export { LATEST_VERSION, MIGRATION_NAMES, migrateTo, migrateToLatest, schemaVersion } from './migrations.js';
export type { MigrationOptions, StoreDialect } from './migrations.js';
export type { Database } from './schema.js';
export { currentStoreDeadline, withStoreDeadline, withoutStoreDeadline } from './deadline.js';
