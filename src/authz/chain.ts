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
