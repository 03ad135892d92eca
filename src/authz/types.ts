import type { Identity } from '../authn/types.js';
import type { ResourceScope } from '../protocol/scope.js';

export interface AuthzContext {
  ip: string | undefined;
  service: string;
}

/** What an authorizer decided for one scope, and why (for audit and `explain`). */
export interface AuthzDecision {
  actions: string[];
  reason: string;
}

/**
 * The authorization contract: for one requested scope, the actions granted, or `null` when the
 * backend has no rule for it (the chain asks the next one). No match anywhere grants nothing.
 */
export interface Authorizer {
  readonly name: string;
  authorize(identity: Identity, scope: ResourceScope, context: AuthzContext): Promise<AuthzDecision | null> | AuthzDecision | null;
}
