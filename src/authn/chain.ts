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

/** What an observer (metrics) learns of one backend call; it never sees credentials. */
export interface AuthnCallRecorder {
  answered(outcome: AuthnResult['outcome'], seconds: number): void;
  failed(error: unknown, seconds: number): void;
}

/**
 * The chain with each backend timed and its answers and failures reported, for metrics. The
 * wrappers keep each backend's name and its optional `lookup` and `ready`, so the rest of the
 * server cannot tell them from the backends themselves; the backends know nothing of it.
 */
export function observeAuthenticators(chain: readonly Authenticator[], recorderFor: (backend: string) => AuthnCallRecorder): Authenticator[] {
  return chain.map((backend) => {
    const recorder = recorderFor(backend.name);
    const wrapped: Authenticator = {
      name: backend.name,
      async authenticate(credentials, context) {
        const started = performance.now();
        try {
          const result = await backend.authenticate(credentials, context);
          recorder.answered(result.outcome, (performance.now() - started) / 1000);
          return result;
        } catch (err) {
          recorder.failed(err, (performance.now() - started) / 1000);
          throw err;
        }
      },
    };
    if (backend.lookup) wrapped.lookup = backend.lookup.bind(backend);
    if (backend.ready) wrapped.ready = backend.ready.bind(backend);
    return wrapped;
  });
}
