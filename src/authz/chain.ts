import type { Identity } from '../authn/types.js';
import type { ResourceScope } from '../protocol/scope.js';
import type { AuthzContext, AuthzDecision, Authorizer } from './types.js';

/** The first authorizer with a rule for the scope decides; none means nothing is granted. */
export async function authorize(
  chain: readonly Authorizer[],
  identity: Identity,
  scope: ResourceScope,
  context: AuthzContext,
): Promise<AuthzDecision> {
  for (const backend of chain) {
    const decision = await backend.authorize(identity, scope, context);
    if (decision) return decision;
  }
  return { actions: [], reason: 'no rule matched' };
}

/** What an observer (metrics) learns of one authorizer call. */
export interface AuthzCallRecorder {
  answered(seconds: number): void;
  failed(error: unknown, seconds: number): void;
  /** The decision granted none of the actions asked for. */
  denied(): void;
}

/**
 * The chain with each authorizer timed, its failures reported, and each scope it denied counted
 * (for metrics). A last, silent member counts the scopes no authorizer had a rule for (as the
 * recorder of `none`); it always answers "no rule", so what the chain decides is unchanged.
 */
export function observeAuthorizers(chain: readonly Authorizer[], recorderFor: (authorizer: string) => AuthzCallRecorder): Authorizer[] {
  const wrapped = chain.map((backend): Authorizer => {
    const recorder = recorderFor(backend.name);
    return {
      name: backend.name,
      async authorize(identity, scope, context) {
        const started = performance.now();
        try {
          const decision = await backend.authorize(identity, scope, context);
          recorder.answered((performance.now() - started) / 1000);
          if (decision && !scope.actions.some((a) => decision.actions.includes(a))) recorder.denied();
          return decision;
        } catch (err) {
          recorder.failed(err, (performance.now() - started) / 1000);
          throw err;
        }
      },
    };
  });
  const none = recorderFor('none');
  wrapped.push({
    name: 'none',
    authorize() {
      none.denied();
      return null;
    },
  });
  return wrapped;
}
