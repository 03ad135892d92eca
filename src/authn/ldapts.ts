import { createRequire } from 'node:module';
import type * as Ldapts from 'ldapts';

let loaded: typeof Ldapts | undefined;

/**
 * ldapts, loaded on first use: only an `ldap_auth` section needs it, and every other server would
 * load it at start for nothing (performance.md, memory and first token). Its CommonJS build,
 * synchronously, because the search filter is checked inside the config's synchronous validation.
 * Every use in this project goes through here, so `instanceof` checks see one copy of its classes.
 */
export function ldapts(): typeof Ldapts {
  loaded ??= createRequire(import.meta.url)('ldapts') as typeof Ldapts;
  return loaded;
}
