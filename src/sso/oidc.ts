import * as client from 'openid-client';
import { PROVIDER_DEFAULTS, isLoopbackHost, type SsoProviderConfig } from './config.js';
import { allowHttpToLoopback, type PendingLogin, type ProviderOptions, type ProviderUser, type SsoProvider } from './provider.js';

/**
 * An OpenID Connect provider found by discovery: `oidc` (Keycloak, Dex, Authentik, Entra ID...),
 * `gitlab` and `google`. The authorization code flow with PKCE (S256), state and nonce; the ID
 * token is checked (signature, issuer, audience, expiry, nonce) by openid-client, and the userinfo
 * endpoint, when there is one, adds the claims some providers keep out of the ID token (GitLab's
 * `groups`).
 */
export class OidcProvider implements SsoProvider {
  readonly id: string;
  readonly displayName: string;
  private readonly issuer: string;
  private discovered: Promise<client.Configuration> | undefined;

  constructor(
    readonly config: SsoProviderConfig,
    private readonly options: ProviderOptions,
  ) {
    this.id = config.id;
    this.displayName = options.displayName;
    const issuer = config.issuer ?? PROVIDER_DEFAULTS[config.type].issuer;
    if (issuer === undefined) throw new Error(`sso provider ${config.id}: no issuer`);
    this.issuer = issuer;
  }

  /**
   * Discovery runs at the first sign-in, not at start: a provider that is down must not stop the
   * token server. A failure is not kept, so the next sign-in tries again.
   */
  private configuration(): Promise<client.Configuration> {
    this.discovered ??= this.discover().catch((err: unknown) => {
      this.discovered = undefined;
      throw err;
    });
    return this.discovered;
  }

  private async discover(): Promise<client.Configuration> {
    const { secret, timeoutSeconds } = this.options;
    const url = new URL(this.issuer);
    const insecure = url.protocol === 'http:' && isLoopbackHost(url.hostname);
    const found = await client.discovery(url, this.config.client_id, { client_secret: secret }, client.ClientSecretBasic(secret), {
      timeout: timeoutSeconds,
      execute: insecure ? [client.allowInsecureRequests] : [],
    });
    // client_secret_basic is the OpenID default; a provider that lists only client_secret_post gets that.
    const methods = found.serverMetadata().token_endpoint_auth_methods_supported;
    if (!methods || methods.includes('client_secret_basic') || !methods.includes('client_secret_post')) return found;
    const post = new client.Configuration(found.serverMetadata(), this.config.client_id, { client_secret: secret }, client.ClientSecretPost(secret));
    post.timeout = timeoutSeconds;
    allowHttpToLoopback(post, this.issuer);
    return post;
  }

  async authorizationUrl(pending: PendingLogin): Promise<URL> {
    const configuration = await this.configuration();
    const parameters: Record<string, string> = {
      redirect_uri: this.config.redirect_url,
      scope: (this.config.scopes ?? PROVIDER_DEFAULTS[this.config.type].scopes).join(' '),
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(pending.codeVerifier),
      code_challenge_method: 'S256',
    };
    // Google shows only the accounts of that Workspace domain; the hd claim is still checked after.
    const domains = this.config.restrictions?.domains;
    if (this.config.type === 'google' && domains?.length === 1 && domains[0]) parameters.hd = domains[0];
    return client.buildAuthorizationUrl(configuration, parameters);
  }

  async complete(callbackUrl: URL, pending: PendingLogin): Promise<ProviderUser> {
    const configuration = await this.configuration();
    const tokens = await client.authorizationCodeGrant(configuration, callbackUrl, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    const idToken = tokens.claims();
    if (!idToken) throw new Error('the token response has no ID token');
    let claims: Record<string, unknown> = { ...idToken };
    if (configuration.serverMetadata().userinfo_endpoint) {
      // openid-client checks that userinfo's sub is the ID token's.
      const userinfo = await client.fetchUserInfo(configuration, tokens.access_token, idToken.sub);
      claims = { ...claims, ...userinfo };
    }
    return { subject: idToken.sub, claims };
  }
}
