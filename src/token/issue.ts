import { authenticate } from '../authn/chain.js';
import type { Authenticator, Identity } from '../authn/types.js';
import { authorize } from '../authz/chain.js';
import type { AuthzDecision, Authorizer } from '../authz/types.js';
import { TokenError } from '../protocol/errors.js';
import type { TokenRequest } from '../protocol/request.js';
import { REPOSITORY_ACTIONS, type ResourceScope } from '../protocol/scope.js';
import { buildClaims } from './claims.js';
import type { Signer } from './signer.js';
import type { Lockout } from '../security/lockout.js';

export interface IssuerSettings {
  issuer: string;
  expiresIn: number;
  /** When set, tokens are issued only for these services (the `aud`). */
  services?: readonly string[] | undefined;
}

/** Issues refresh tokens (docker's identity tokens) when a client asks for one. */
export interface RefreshTokenIssuer {
  issue(input: { account: string; service: string; clientId: string | null }): Promise<string>;
}

export interface ScopeDecision {
  requested: ResourceScope;
  granted: ResourceScope;
  reason: string;
}

export interface IssuedToken {
  token: string;
  /** Only when the client asked for one (offline) or presented one (refresh grant). */
  refreshToken?: string;
  identity: Identity;
  decisions: ScopeDecision[];
  granted: ResourceScope[];
  expiresIn: number;
  issuedAtMs: number;
}

/**
 * A requested `*` on a repository stands for every repository action: we authorize those and put
 * the explicit ones in the token, because zot does not read `*` as a wildcard (protocol.md §6.4).
 * `registry:catalog:*` keeps its literal `*`, the only form distribution accepts.
 */
export function expandRequest(scope: ResourceScope): ResourceScope {
  if (scope.type !== 'repository' || !scope.actions.includes('*')) return scope;
  const actions = [...new Set([...scope.actions.filter((a) => a !== '*'), ...REPOSITORY_ACTIONS])];
  return { ...scope, actions };
}

/**
 * Authenticates, authorizes each scope and mints the token: the middle of the one road a request
 * travels. Parsing and responding happen at the HTTP edge.
 */
export class TokenIssuer {
  constructor(
    private readonly settings: IssuerSettings,
    private readonly authenticators: readonly Authenticator[],
    private readonly authorizers: readonly Authorizer[],
    private readonly signer: Signer,
    private readonly refresh?: RefreshTokenIssuer,
    private readonly now: () => number = Date.now,
    private readonly lockout?: Lockout,
  ) {}

  checkService(service: string): void {
    const services = this.settings.services;
    if (services && services.length > 0 && !services.includes(service)) {
      throw new TokenError('UNKNOWN_SERVICE', `unknown service ${JSON.stringify(service.slice(0, 100))}`);
    }
  }

  async authorizeAll(identity: Identity, scopes: readonly ResourceScope[], ip: string | undefined, service: string): Promise<ScopeDecision[]> {
    const decisions: ScopeDecision[] = [];
    for (const requested of scopes) {
      const asked = expandRequest(requested);
      const answer = authorize(this.authorizers, identity, asked, { ip, service });
      const decision: AuthzDecision = answer instanceof Promise ? await answer : answer;
      // Never grant more than was asked, whatever a backend answers, nor more than an access
      // token's own scopes.
      const byRules = asked.actions.filter((a) => decision.actions.includes(a)).sort();
      const limit = identity.scopeLimit?.allowed(asked) ?? '*';
      const actions = limit === '*' ? byRules : byRules.filter((a) => limit.includes(a));
      const reason = actions.length < byRules.length ? `${decision.reason}; limited by the access token's scopes` : decision.reason;
      decisions.push({ requested, granted: { ...requested, actions }, reason });
    }
    return decisions;
  }

  async issue(request: TokenRequest, ip: string | undefined): Promise<IssuedToken> {
    this.checkService(request.service);
    // The lockout's one hook: a locked password login is refused before any hash runs; a bad
    // password is counted, a good one resets its address's counter (security/lockout.ts).
    await this.lockout?.check(request.credentials, ip);
    const authn = await authenticate(this.authenticators, request.credentials, { ip, service: request.service });
    if (authn.outcome === 'denied') await this.lockout?.failed(request.credentials, ip);
    else if (authn.outcome === 'identity') await this.lockout?.succeeded(request.credentials, ip);
    if (authn.outcome !== 'identity') {
      const reason = authn.outcome === 'denied' ? authn.reason : 'no backend knows the account';
      const message = request.credentials ? 'invalid username or password' : 'authentication required';
      throw new TokenError('UNAUTHORIZED', message, reason);
    }
    const decisions = await this.authorizeAll(authn.identity, request.scopes, ip, request.service);
    const granted = decisions.map((d) => d.granted);
    const issuedAtMs = this.now();
    const claims = buildClaims({
      issuer: this.settings.issuer,
      subject: authn.identity.account,
      audience: request.service,
      access: granted,
      expiresIn: this.settings.expiresIn,
      nowMs: issuedAtMs,
    });
    const token = await this.signer.sign(claims);
    const issued: IssuedToken = { token, identity: authn.identity, decisions, granted, expiresIn: this.settings.expiresIn, issuedAtMs };
    // Most requests want none: no promise to wait for then.
    const pending = this.refreshTokenFor(request, authn.identity);
    const refreshToken = typeof pending === 'string' || pending === undefined ? pending : await pending;
    if (refreshToken) issued.refreshToken = refreshToken;
    return issued;
  }

  /**
   * A refresh grant gets back the token it presented (never rotated: dockerd keeps only the first,
   * protocol.md §1.4). A new one is made only when asked for, and only after a password: an
   * access token must not be traded for a refresh token that outlives its limits. Nor is one
   * made for an account its backend cannot look up without a password (ext_auth, webhook_auth):
   * every use re-checks the owner, so it would fail at once; the client keeps the password instead.
   */
  private refreshTokenFor(request: TokenRequest, identity: Identity): string | Promise<string> | undefined {
    if (identity.via === 'refresh_token') return request.grantType === 'refresh_token' || request.offline ? identity.refreshToken : undefined;
    if (!request.offline || !this.refresh || identity.via !== 'password' || identity.anonymous) return undefined;
    if (!this.authenticators.find((a) => a.name === identity.backend)?.lookup) return undefined;
    return this.refresh.issue({ account: identity.account, service: request.service, clientId: request.clientId ?? null });
  }
}
