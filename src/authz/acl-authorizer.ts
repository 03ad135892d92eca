import type { Identity } from '../authn/types.js';
import type { ResourceScope } from '../protocol/scope.js';
import type { CompiledAcl } from './acl/index.js';
import type { AuthzContext, AuthzDecision, Authorizer } from './types.js';

/** The config file's `acl` section: docker_auth's rule engine, first match wins. */
export class AclAuthorizer implements Authorizer {
  readonly name = 'acl';
  constructor(
    private readonly acl: CompiledAcl,
    /** How a decision names its rule: `acl[3]` for the config's, the rule id for the store's. */
    private readonly ruleName: (index: number) => string = (index) => `acl[${index}]`,
  ) {}

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
    return { actions: decision.actions, reason: `${this.ruleName(decision.index)}${comment}` };
  }
}
