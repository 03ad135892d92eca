import { NO_MATCH, type Authenticator, type AuthnResult } from './types.js';

/**
 * Asks the user backends, in order, whether an account exists and may sign in now. Tokens that
 * outlive a password check (access and refresh tokens) go through this on every use, so that a
 * deleted or disabled owner's tokens stop working at once.
 */
export type Directory = (account: string) => Promise<AuthnResult>;

export function directoryOf(backends: readonly Authenticator[]): Directory {
  return async (account) => {
    for (const backend of backends) {
      if (!backend.lookup) continue;
      const result = await backend.lookup(account);
      if (result.outcome !== 'no-match') return result;
    }
    return NO_MATCH;
  };
}
