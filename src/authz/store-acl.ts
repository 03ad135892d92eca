import type { Identity } from '../authn/types.js';
import type { ResourceScope } from '../protocol/scope.js';
import type { Store } from '../store/types.js';
import { AclAuthorizer } from './acl-authorizer.js';
import { compileAcl } from './acl/index.js';
import type { AuthzContext, AuthzDecision, Authorizer } from './types.js';

/**
 * ACL rules kept in the store, evaluated after the config's: the same engine and semantics,
 * editable without a restart. The compiled rules are reused until the store's rule version moves,
 * which any replica's edit does.
 */
export class StoreAclAuthorizer implements Authorizer {
  readonly name = 'store-acl';
  private cached: { version: number; authorizer: AclAuthorizer } | undefined;

  constructor(private readonly store: Store) {}

  private async current(): Promise<AclAuthorizer> {
    const version = await this.store.rules.version();
    if (this.cached?.version === version) return this.cached.authorizer;
    const rules = await this.store.rules.list();
    // Rules were validated when they were added, so this compiles what the engine accepted before.
    const compiled = compileAcl(rules.map((r) => r.rule));
    const ids = rules.map((r) => r.id);
    const authorizer = new AclAuthorizer(compiled, (index) => `store rule ${ids[index] ?? index}`);
    this.cached = { version, authorizer };
    return authorizer;
  }

  async authorize(identity: Identity, scope: ResourceScope, context: AuthzContext): Promise<AuthzDecision | null> {
    return (await this.current()).authorize(identity, scope, context);
  }
}
