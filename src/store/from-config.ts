import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import type { Store } from './types.js';

/**
 * Opens the store the config names (nothing when it names none), without migrating it. The
 * drivers (Kysely, better-sqlite3, pg: about 35 MB and a quarter of a second of start-up) are
 * imported here, only when the config names a store (performance.md, memory and first token).
 */
export async function openConfiguredStore(loaded: LoadedConfig): Promise<Store | undefined> {
  const settings = loaded.config.store;
  if (!settings) return undefined;
  const { openStore } = await import('./open.js');
  if (settings.driver === 'sqlite') {
    const path = settings.path ?? 'store.db';
    return openStore({ driver: 'sqlite', path: path === ':memory:' || isAbsolute(path) ? path : resolve(loaded.baseDir, path) });
  }
  let url = settings.url;
  if (!url && settings.url_file) {
    const file = isAbsolute(settings.url_file) ? settings.url_file : resolve(loaded.baseDir, settings.url_file);
    try {
      url = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new ConfigError(loaded.source, [{ path: 'store.url_file', message: `cannot read ${file}: ${(err as Error).message}` }]);
    }
  }
  return openStore({ driver: 'postgres', url: url as string, poolSize: settings.pool_size });
}

/**
 * A name defined both in the config's `users` and in the store would shadow one of them silently
 * (which one depends on authn_order), so it is refused at start.
 */
export async function checkNameClashes(loaded: LoadedConfig, store: Store): Promise<void> {
  const configUsers = Object.keys(loaded.config.users ?? {});
  if (configUsers.length === 0) return;
  const clashes: string[] = [];
  for (const name of configUsers) if (name !== '' && (await store.users.get(name))) clashes.push(name);
  if (clashes.length > 0) {
    throw new ConfigError(
      loaded.source,
      clashes.map((name) => ({
        path: `users.${name}`,
        message: 'is also a user in the store; remove one of them (`sts-docker-auth users rm` removes the stored one)',
      })),
    );
  }
}
