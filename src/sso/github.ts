import * as client from 'openid-client';
import { BackendUnavailableError } from '../authn/errors.js';
import { GITHUB_API_URL, GITHUB_WEB_URL, PROVIDER_DEFAULTS, type SsoProviderConfig } from './config.js';
import { labelsClaimsOf } from './claims.js';
import { SsoError } from './errors.js';
import { allowHttpToLoopback, type PendingLogin, type ProviderOptions, type ProviderUser, type SsoProvider } from './provider.js';

/** At most this many pages of 100 organizations or teams; nobody belongs to 1000 teams. */
const MAX_PAGES = 10;

/**
 * GitHub (github.com or GitHub Enterprise Server): OAuth2 only, no OpenID Connect. The
 * authorization code flow with PKCE (S256) and state at `<web_url>/login/oauth/...`, then the REST
 * API at api_url: `/user` for the login and the numeric id (the subject, never reassigned), and,
 * when restrictions or labels need them, `/user/orgs` and `/user/teams` (scope read:org).
 */
export class GitHubProvider implements SsoProvider {
  readonly id: string;
  readonly displayName: string;
  private readonly configuration: client.Configuration;
  private readonly apiUrl: string;

  constructor(
    readonly config: SsoProviderConfig,
    private readonly options: ProviderOptions,
  ) {
    this.id = config.id;
    this.displayName = options.displayName;
    const web = config.web_url ?? GITHUB_WEB_URL;
    // GitHub Enterprise Server serves its API under the web address.
    this.apiUrl = config.api_url ?? (web === GITHUB_WEB_URL ? GITHUB_API_URL : `${web}/api/v3`);
    this.configuration = new client.Configuration(
      { issuer: web, authorization_endpoint: `${web}/login/oauth/authorize`, token_endpoint: `${web}/login/oauth/access_token` },
      config.client_id,
      { client_secret: options.secret },
      client.ClientSecretPost(options.secret),
    );
    this.configuration.timeout = options.timeoutSeconds;
    allowHttpToLoopback(this.configuration, web);
  }

  async authorizationUrl(pending: PendingLogin): Promise<URL> {
    return client.buildAuthorizationUrl(this.configuration, {
      redirect_uri: this.config.redirect_url,
      scope: (this.config.scopes ?? PROVIDER_DEFAULTS.github.scopes).join(' '),
      state: pending.state,
      code_challenge: await client.calculatePKCECodeChallenge(pending.codeVerifier),
      code_challenge_method: 'S256',
      allow_signup: 'false',
    });
  }

  async complete(callbackUrl: URL, pending: PendingLogin): Promise<ProviderUser> {
    const tokens = await client.authorizationCodeGrant(this.configuration, callbackUrl, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      idTokenExpected: false,
    });
    const token = tokens.access_token;
    const user = await this.get(token, `${this.apiUrl}/user`);
    if (typeof user !== 'object' || user === null || Array.isArray(user)) throw new SsoError(502, 'GitHub sent no user; tell the administrator.', 'GET /user: not an object');
    const { id, login } = user as { id?: unknown; login?: unknown };
    if ((typeof id !== 'number' && typeof id !== 'string') || typeof login !== 'string') {
      throw new SsoError(502, 'GitHub sent no user; tell the administrator.', 'GET /user: no id or login');
    }
    const claims: Record<string, unknown> = { ...(user as Record<string, unknown>), sub: String(id) };
    const wanted = new Set([...labelsClaimsOf(this.config), this.config.user_claim ?? '']);
    const restrictions = this.config.restrictions;
    if (restrictions?.organizations || wanted.has('organizations')) {
      const orgs = await this.list(token, `${this.apiUrl}/user/orgs?per_page=100`);
      claims.organizations = orgs.flatMap((org) => (typeof org.login === 'string' ? [org.login] : []));
    }
    if (restrictions?.teams || wanted.has('teams')) {
      const teams = await this.list(token, `${this.apiUrl}/user/teams?per_page=100`);
      claims.teams = teams.flatMap((team) => {
        const organization = team.organization as { login?: unknown } | undefined;
        return typeof team.slug === 'string' && typeof organization?.login === 'string' ? [`${organization.login}/${team.slug}`] : [];
      });
    }
    return { subject: String(id), claims };
  }

  private async get(token: string, url: string): Promise<unknown> {
    return (await this.fetchPage(token, url)).body;
  }

  /** One API call. The token goes to api_url only: pagination links elsewhere are not followed. */
  private async fetchPage(token: string, url: string): Promise<{ body: unknown; next: string | undefined }> {
    const path = new URL(url).pathname;
    let response: Response;
    try {
      response = await fetch(url, {
        headers: {
          accept: 'application/vnd.github+json',
          authorization: `Bearer ${token}`,
          'x-github-api-version': '2022-11-28',
          'user-agent': 'sts-docker-auth',
        },
        redirect: 'error',
        signal: AbortSignal.timeout(this.options.timeoutSeconds * 1000),
      });
    } catch (err) {
      throw new BackendUnavailableError(`sso:${this.id}`, `GET ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (response.status >= 500) {
      await response.body?.cancel();
      throw new BackendUnavailableError(`sso:${this.id}`, `GET ${path}: HTTP ${response.status}`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new SsoError(502, 'GitHub refused to tell who you are; tell the administrator.', `GET ${path}: HTTP ${response.status}`);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch (err) {
      throw new SsoError(502, 'GitHub answered in a way this server cannot use; tell the administrator.', `GET ${path}: not JSON`, { cause: err });
    }
    return { body, next: nextLink(response.headers.get('link'), this.apiUrl) };
  }

  private async list(token: string, first: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let url: string | undefined = first;
    for (let page = 0; url !== undefined && page < MAX_PAGES; page++) {
      const { body, next } = await this.fetchPage(token, url);
      if (!Array.isArray(body)) throw new SsoError(502, 'GitHub answered in a way this server cannot use; tell the administrator.', `GET ${new URL(url).pathname}: not a list`);
      for (const item of body as unknown[]) if (typeof item === 'object' && item !== null) items.push(item as Record<string, unknown>);
      url = next;
    }
    return items;
  }
}

/** The `rel="next"` URL of a Link header (RFC 8288), if it lies under the API's own URL. */
export function nextLink(header: string | null, apiUrl: string): string | undefined {
  if (!header) return undefined;
  // GitHub's links hold no commas, so splitting on them is enough.
  for (const part of header.split(',')) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    const rel = /;\s*rel="?([^";]*)"?/i.exec(match?.[2] ?? '')?.[1];
    if (!match?.[1] || !rel?.split(/\s+/).includes('next')) continue;
    return match[1].startsWith(`${apiUrl}/`) ? match[1] : undefined;
  }
  return undefined;
}
