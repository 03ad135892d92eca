import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

/**
 * A real OpenID Provider (panva's oidc-provider, certified) on 127.0.0.1 for the sign-in tests: one
 * confidential client that must use PKCE, accounts with passwords and claims (a `groups` array
 * among them), and a plain login page of our own instead of the development interactions, whose
 * page loads a web font from the internet. Consent is implied (a first-party client).
 */

export interface TestAccount {
  /** The stable `sub`; the login name is the key in `accounts`. */
  sub: string;
  password: string;
  /** Claims besides `sub`, e.g. preferred_username, email, email_verified, groups. */
  claims: Record<string, unknown>;
}

export interface OidcProviderOptions {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  /** Login name → account. Change it between sign-ins to change what the provider says. */
  accounts: Record<string, TestAccount>;
}

export interface RunningOidcProvider {
  /** `http://127.0.0.1:<port>`, also the issuer. */
  issuer: string;
  /** The query of every authorization request received, in order. */
  authorizationRequests: URLSearchParams[];
  close(): Promise<void>;
}

const SCOPES = 'openid profile email groups';

const page = (title: string, body: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
body{margin:0;background:#eef1f5;font:16px/1.5 system-ui,sans-serif;color:#1f2328}
main{max-width:22rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:10px;box-shadow:0 1px 3px #0003}
h1{margin:0 0 1rem;font-size:1.4rem} label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #b7bfc8;border-radius:6px;font:inherit}
button{margin-top:1.25rem;width:100%;padding:.65rem;border:0;border-radius:6px;background:#6b3fa0;color:#fff;font:inherit;font-weight:600}
.error{color:#b3261e} .small{font-size:.85rem;color:#59636e}
</style></head><body><main>${body}</main></body></html>`;

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginForm(uid: string, clientId: string, error?: string): string {
  return page(
    'Test provider: sign in',
    `<h1>Test Identity Provider</h1>
<p class="small">Signing in to <strong>${escape(clientId)}</strong></p>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<label for="login">User name</label><input id="login" name="login" autocomplete="username" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password">
<button type="submit">Sign in</button>
</form>
<p class="small"><a href="/interaction/${escape(uid)}/abort">Cancel</a></p>`,
  );
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let text = '';
  for await (const chunk of req) text += (chunk as Buffer).toString('utf8');
  return new URLSearchParams(text);
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<RunningOidcProvider> {
  const authorizationRequests: URLSearchParams[] = [];
  // `provider` and `callback` are made once the port (part of the issuer) is known; the server
  // answers nothing before that.

  const interactions = async (req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined) => {
    const p = provider;
    const details = await p.interactionDetails(req, res);
    if (action === 'abort') {
      await p.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user cancelled' }, { mergeWithLastSubmission: false });
      return;
    }
    if (action === 'login' && req.method === 'POST') {
      const form = await readForm(req);
      const account = options.accounts[form.get('login') ?? ''];
      if (!account || account.password !== form.get('password')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(loginForm(uid, options.clientId, 'Wrong user name or password.'));
        return;
      }
      await p.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
      return;
    }
    if (details.prompt.name !== 'login') {
      res.writeHead(501).end(`prompt ${details.prompt.name} is not implemented by the test provider`);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(loginForm(uid, options.clientId));
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://provider.invalid');
    const interaction = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/.exec(url.pathname);
    if (interaction?.[1]) {
      interactions(req, res, interaction[1], interaction[2]).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(err));
      });
      return;
    }
    if (url.pathname === '/auth') authorizationRequests.push(new URLSearchParams(url.search));
    callback(req, res);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  const issuer = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  const accountBySub = (sub: string) => Object.values(options.accounts).find((a) => a.sub === sub);
  const configuration: Configuration = {
    clients: [
      {
        client_id: options.clientId,
        client_secret: options.clientSecret,
        redirect_uris: options.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email', 'email_verified'], groups: ['groups'] },
    findAccount: (_ctx, sub) => {
      const account = accountBySub(sub);
      return account ? { accountId: sub, claims: () => ({ ...account.claims, sub }) } : undefined;
    },
    // A first-party client: the grant is implied, so there is no consent page.
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const clientId = ctx.oidc.client?.clientId ?? '';
      const grantId = ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session?.grantIdFor(clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId, accountId: ctx.oidc.session?.accountId ?? '' });
      grant.addOIDCScope(SCOPES);
      await grant.save();
      return grant;
    },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    // A signing key of its own (RS256, every client's default), not the provider's development key.
    jwks: { keys: [{ ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'test-rs256' }] },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = page('Test provider: error', `<h1>Error</h1><p class="error">${escape(String(out.error))}: ${escape(String(out.error_description ?? ''))}</p>`);
    },
  };
  const provider = new Provider(issuer, configuration);
  const callback = provider.callback();

  return {
    issuer,
    authorizationRequests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
