import type { Identity } from '../authn/types.js';
import type { ResourceScope } from '../protocol/scope.js';
import type { AuthzContext, AuthzDecision, Authorizer } from './types.js';

/**
 * The first authorizer with a rule for the scope decides; none means nothing is granted. A
 * synchronous answer (the config's ACL) is used as it is: the result is a promise only once a
 * backend returned one, so the common case costs no promise and no microtask (performance.md).
 */
export function authorize(
  chain: readonly Authorizer[],
  identity: Identity,
  scope: ResourceScope,
  context: AuthzContext,
  from = 0,
): AuthzDecision | Promise<AuthzDecision> {
  for (let i = from; i < chain.length; i++) {
    const decision = (chain[i] as Authorizer).authorize(identity, scope, context);
    if (decision instanceof Promise) return decision.then((d) => d ?? authorize(chain, identity, scope, context, i + 1));
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
    const answered = (decision: AuthzDecision | null, scope: ResourceScope, started: number): AuthzDecision | null => {
      recorder.answered((performance.now() - started) / 1000);
      if (decision && !scope.actions.some((a) => decision.actions.includes(a))) recorder.denied();
      return decision;
    };
    const failed = (err: unknown, started: number): never => {
      recorder.failed(err, (performance.now() - started) / 1000);
      throw err;
    };
    return {
      name: backend.name,
      // Synchronous in, synchronous out: the wrapper adds no promise to a synchronous backend.
      authorize(identity, scope, context) {
        const started = performance.now();
        let decision: ReturnType<Authorizer['authorize']>;
        try {
          decision = backend.authorize(identity, scope, context);
        } catch (err) {
          return failed(err, started);
        }
        if (decision instanceof Promise) {
          return decision.then(
            (d) => answered(d, scope, started),
            (err: unknown) => failed(err, started),
          );
        }
        return answered(decision, scope, started);
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
