import type { Authenticator, AuthnContext, AuthnResult, Credentials } from './types.js';

/**
 * The one place that decides fall-through: the first backend that recognises the account decides,
 * and a wrong secret ends the chain.
 */
export async function authenticate(
  chain: readonly Authenticator[],
  credentials: Credentials | null,
  context: AuthnContext,
): Promise<AuthnResult & { backend?: string }> {
  for (const backend of chain) {
    const result = await backend.authenticate(credentials, context);
    if (result.outcome !== 'no-match') return { ...result, backend: backend.name };
  }
  return { outcome: 'denied', reason: credentials ? 'unknown account' : 'anonymous access is not enabled' };
}
