import type { Identity } from '../authn/types.js';
import type { ResourceScope } from '../protocol/scope.js';
import type { CompiledAcl } from './acl/index.js';
import type { AuthzContext, AuthzDecision, Authorizer } from './types.js';

/** The config file's `acl` section: docker_auth's rule engine, first match wins. */
export class AclAuthorizer implements Authorizer {
  readonly name = 'acl';
  constructor(private readonly acl: CompiledAcl) {}

  authorize(identity: Identity, scope: ResourceScope, context: AuthzContext): AuthzDecision | null {
    const decision = this.acl.evaluate({
      account: identity.account,
      type: scope.type,
      name: scope.name,
      service: context.service,
      ip: context.ip,
      labels: identity.labels,
      actions: scope.actions,
    });
    if (!decision) return null;
    const comment = decision.rule.comment ? ` (${decision.rule.comment})` : '';
    return { actions: decision.actions, reason: `acl[${decision.index}]${comment}` };
  }
}
