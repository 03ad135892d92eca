// Single sign-on against a real OpenID Provider (oidc-provider) on 127.0.0.1, driven with plain
// HTTP: our pages through inject, the provider's for real. Checks state, nonce and PKCE handling,
// restrictions, labels, replays and forged cookies, and that the token shown works at /auth.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sign } from '@fastify/cookie';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StsServer } from '../../src/server/app.js';
import { decodePendingLogin, encodeCookieValue, SESSION_COOKIE, STATE_COOKIE } from '../../src/sso/cookies.js';
import { baseConfig, decodeJwt, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { attributeOf, HttpBrowser, type BrowserResponse } from '../helpers/http-browser.js';
import { startOidcProvider, type RunningOidcProvider, type TestAccount } from '../helpers/oidc-provider.js';
import { basic, startInProcess } from '../helpers/server.js';

const STS = 'http://sts.test';
const CLIENT_SECRET = 'client-secret-for-tests';
const SESSION_SECRET = randomBytes(48);
const SCOPES = ['openid', 'profile', 'email', 'groups'];

let keys: KeyDir;
let provider: RunningOidcProvider;
let server: StsServer;
let clock = Date.now();

const accounts: Record<string, TestAccount> = {
  alice: {
    sub: 'sub-alice',
    password: 'alice-pw',
    claims: { preferred_username: 'Alice', name: 'Alice A.', email: 'alice@example.com', email_verified: true, groups: ['registry-users', 'devs'] },
  },
  bob: { sub: 'sub-bob', password: 'bob-pw', claims: { preferred_username: 'bob', email: 'bob@example.com', email_verified: true, groups: ['sales'] } },
  local: { sub: 'sub-local', password: 'local-pw', claims: { preferred_username: 'local' } },
  nameless: { sub: 'sub-nameless', password: 'x-pw', claims: { email: 'x@example.com' } },
};

function ssoSection(issuer: string) {
  return {
    session_secret_file: 'session.key',
    token_lifetime: '7d',
    registry_host: 'registry.example.com',
    providers: [
      { id: 'corp', type: 'oidc' as const, display_name: 'Corp SSO', issuer, client_id: 'sts', client_secret_file: 'client.secret', redirect_url: `${STS}/login/corp/callback`, scopes: SCOPES },
      {
        id: 'staff',
        type: 'oidc' as const,
        display_name: 'Staff only',
        issuer,
        client_id: 'sts',
        client_secret: CLIENT_SECRET,
        redirect_url: `${STS}/login/staff/callback`,
        scopes: SCOPES,
        account_prefix: 'staff-',
        labels_claims: ['groups', 'email'],
        restrictions: { groups: ['registry-users'], domains: ['example.com'] },
      },
      { id: 'tls', type: 'oidc' as const, issuer, client_id: 'sts', client_secret: CLIENT_SECRET, redirect_url: 'https://sts.test/login/tls/callback' },
    ],
  };
}

beforeAll(async () => {
  keys = await makeKeyDir();
  await writeFile(join(keys.dir, 'session.key'), SESSION_SECRET);
  await writeFile(join(keys.dir, 'client.secret'), `${CLIENT_SECRET}\n`);
  provider = await startOidcProvider({
    clientId: 'sts',
    clientSecret: CLIENT_SECRET,
    redirectUris: [`${STS}/login/corp/callback`, `${STS}/login/staff/callback`],
    accounts,
  });
  ({ server } = await startInProcess(
    keys,
    baseConfig({
      store: { driver: 'sqlite', path: 'store.db' },
      acl: [{ match: { account: '/.+/', name: '${account}/*' }, actions: ['*'] }],
      sso: ssoSection(provider.issuer),
    }),
    { now: () => clock },
  ));
  await server.store?.users.create({ name: 'local', passwordHash: null }, 'test');
});

afterAll(async () => {
  await server?.close();
  await provider?.close();
  await keys?.cleanup();
});

const newBrowser = () => new HttpBrowser({ origin: STS, app: server.app });

/** Starts a sign-in and stops at the provider's login form. */
async function startSignIn(browser: HttpBrowser, providerId: string): Promise<{ start: BrowserResponse; form: BrowserResponse; action: string }> {
  const chain = await browser.follow(`${STS}/login/${providerId}`);
  const start = chain[0] as BrowserResponse;
  const form = chain.at(-1) as BrowserResponse;
  expect(form.status, form.body).toBe(200);
  const action = attributeOf(form.body, /<form[^>]*>/, 'action');
  if (!action) throw new Error(`no login form at ${form.url}: ${form.body.slice(0, 500)}`);
  return { start, form, action: new URL(action, form.url).href };
}

/** Posts the provider's login form and follows redirects up to (not into) our callback. */
async function providerLogin(browser: HttpBrowser, action: string, login: string): Promise<string> {
  const account = accounts[login];
  let res = await browser.request('POST', action, { login, password: account?.password ?? 'none' });
  while (res.location && !res.location.startsWith(`${STS}/`)) res = await browser.request('GET', res.location);
  if (!res.location) throw new Error(`the provider did not redirect back: ${res.status} ${res.body.slice(0, 300)}`);
  return res.location;
}

async function signIn(login: string, providerId = 'corp', browser = newBrowser()): Promise<{ browser: BrowserResponse; page: BrowserResponse; client: HttpBrowser; callback: string }> {
  const { start, action } = await startSignIn(browser, providerId);
  const callback = await providerLogin(browser, action, login);
  const page = await browser.request('GET', callback);
  return { browser: start, page, client: browser, callback };
}

const tokenOf = (page: BrowserResponse) => attributeOf(page.body, /<input[^>]*id="token"[^>]*>/, 'value');

describe('the login page', () => {
  it('lists the providers, server-rendered, with the security headers', async () => {
    const res = await newBrowser().request('GET', `${STS}/login`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html; charset=utf-8/);
    expect(res.body).toContain('<a class="button" href="login/corp">Sign in with Corp SSO</a>');
    expect(res.body).toContain('href="login/staff"');
    expect(res.body).toContain('registry.example.com');
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-[A-Za-z0-9+/]+=*'/);
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['cache-control']).toBe('no-store');
    // No external asset: nothing is loaded from an absolute URL.
    expect(res.body).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
    expect(res.body).not.toContain('<script');
  });

  it('makes the cookies Secure when the redirect URL is https', async () => {
    const res = await newBrowser().request('GET', `${STS}/login/tls`);
    expect(res.status).toBe(302);
    expect(res.setCookies.find((c) => c.startsWith(`${STATE_COOKIE}=`))).toMatch(/; HttpOnly; Secure; SameSite=Lax$/);
    expect(new URL(res.location ?? '').searchParams.get('redirect_uri')).toBe('https://sts.test/login/tls/callback');
  });

  it('answers 404 for a provider that does not exist', async () => {
    const res = await newBrowser().request('GET', `${STS}/login/nope`);
    expect(res.status).toBe(404);
    expect(res.body).toContain('Back to sign-in');
  });
});

describe('signing in', () => {
  it('runs the code flow with PKCE S256, state and nonce, and shows a working token once', async () => {
    const before = provider.authorizationRequests.length;
    const { browser: start, page } = await signIn('alice');

    // The authorization request, as the provider received it.
    const authz = provider.authorizationRequests[before];
    expect(authz?.get('response_type')).toBe('code');
    expect(authz?.get('code_challenge_method')).toBe('S256');
    expect(authz?.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authz?.get('state')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(authz?.get('nonce')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(authz?.get('redirect_uri')).toBe(`${STS}/login/corp/callback`);
    expect(authz?.get('scope')).toBe('openid profile email groups');

    // The state cookie: signed, HttpOnly, SameSite=Lax, ten minutes, scoped to /login.
    const stateCookie = start.setCookies.find((c) => c.startsWith(`${STATE_COOKIE}=`)) ?? '';
    expect(stateCookie).toMatch(/; Max-Age=600/);
    expect(stateCookie).toMatch(/; Path=\/login/);
    expect(stateCookie).toMatch(/; HttpOnly/);
    expect(stateCookie).toMatch(/; SameSite=Lax/);
    expect(stateCookie).not.toMatch(/; Secure/); // the redirect URL is http
    expect(stateCookie).not.toContain(authz?.get('code_challenge') ?? 'none');

    expect(page.status, page.body).toBe(200);
    expect(page.body).toContain('<h1>Signed in as alice</h1>');
    expect(page.body).toContain('docker login registry.example.com -u alice --password-stdin');
    expect(page.body).toMatch(/It expires on <time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/time>/);
    expect(page.body).toContain('<label for="token">');
    expect(page.headers['content-security-policy']).toContain("script-src 'sha256-");
    expect(page.headers['cache-control']).toBe('no-store');
    // The state cookie is gone, the session cookie is set.
    expect(page.setCookies.find((c) => c.startsWith(`${STATE_COOKIE}=;`))).toBeDefined();
    const session = page.setCookies.find((c) => c.startsWith(`${SESSION_COOKIE}=`)) ?? '';
    expect(session).toMatch(/; Max-Age=28800; Path=\/; HttpOnly; SameSite=Lax/);

    const token = tokenOf(page);
    expect(token).toMatch(/^stsat_/);
    const res = await server.app.inject({
      method: 'GET',
      url: '/auth?service=test-registry&scope=repository:alice/app:push,pull&scope=repository:bob/app:pull',
      headers: { authorization: basic('alice', token ?? '') },
    });
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json<{ token: string }>().token).claims.access).toEqual([
      { type: 'repository', name: 'alice/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'bob/app', actions: [] },
    ]);

    // A password-less store account with the provider's labels and a 7-day token named sso-<time>.
    const user = await server.store?.users.get('alice');
    expect(user).toMatchObject({ passwordHash: null, disabled: false, labels: { groups: ['registry-users', 'devs'], sso: ['corp'], sso_subject: ['sub-alice'] } });
    const tokens = await server.store?.accessTokens.list('alice');
    expect(tokens).toHaveLength(1);
    expect(tokens?.[0]?.name).toMatch(/^sso-\d{8}T\d{6}Z$/);
    expect(tokens?.[0]?.scopes).toEqual(['repository:*:pull,push', 'repository:*/*:pull,push', 'repository:*/*/*:pull,push']);
    expect((tokens?.[0]?.expiresAt ?? 0) - clock).toBe(7 * 86_400_000);
  });

  it('updates the labels at the next sign-in, keeping those an administrator set', async () => {
    await server.store?.users.update('alice', { labels: { groups: ['registry-users', 'devs'], sso: ['corp'], sso_subject: ['sub-alice'], team: ['blue'] } }, 'test');
    (accounts.alice as TestAccount).claims.groups = ['registry-users'];
    const { page } = await signIn('alice');
    expect(page.status, page.body).toBe(200);
    expect((await server.store?.users.get('alice'))?.labels).toEqual({ groups: ['registry-users'], sso: ['corp'], sso_subject: ['sub-alice'], team: ['blue'] });
    expect(await server.store?.accessTokens.list('alice')).toHaveLength(2);
  });

  it('prefixes account names and takes labels from the configured claims', async () => {
    const { page } = await signIn('alice', 'staff');
    expect(page.status, page.body).toBe(200);
    expect(page.body).toContain('Signed in as staff-alice');
    expect((await server.store?.users.get('staff-alice'))?.labels).toEqual({
      groups: ['registry-users'],
      email: ['alice@example.com'],
      sso: ['staff'],
      sso_subject: ['sub-alice'],
    });
  });
});

describe('restrictions and accounts', () => {
  it('denies a person outside the allowed groups with a clear 403 page and creates nothing', async () => {
    const { page } = await signIn('bob', 'staff');
    expect(page.status).toBe(403);
    expect(page.body).toContain('<h1>Access denied</h1>');
    expect(page.body).toContain('not in a group allowed to sign in here');
    expect(page.body).not.toContain('registry-users'); // the allowed values are not disclosed
    expect(await server.store?.users.get('staff-bob')).toBeUndefined();
  });

  it('never takes over an account that sign-in did not create', async () => {
    const { page } = await signIn('local');
    expect(page.status).toBe(403);
    expect(page.body).toContain('belongs to another account here');
    expect(await server.store?.accessTokens.list('local')).toEqual([]);
  });

  it('refuses a provider account that says no user name', async () => {
    const { page } = await signIn('nameless');
    expect(page.status).toBe(403);
    expect(page.body).toContain('has no preferred_username');
  });

  it('refuses a disabled account', async () => {
    await server.store?.users.update('alice', { disabled: true }, 'test');
    try {
      const { page } = await signIn('alice');
      expect(page.status).toBe(403);
      expect(page.body).toContain('is disabled');
    } finally {
      await server.store?.users.update('alice', { disabled: false }, 'test');
    }
  });

  it('shows the provider refusing the sign-in (cancelled at the provider)', async () => {
    const browser = newBrowser();
    const { form } = await startSignIn(browser, 'corp');
    const abort = attributeOf(form.body, /<a[^>]*abort[^>]*>/, 'href');
    const chain = await browser.follow(new URL(abort ?? '', form.url).href);
    const page = chain.at(-1) as BrowserResponse;
    expect(page.url).toContain(`${STS}/login/corp/callback?error=access_denied`);
    expect(page.status).toBe(403);
    expect(page.body).toContain('did not sign you in (access_denied)');
  });
});

describe('the callback refuses', () => {
  it('a tampered state cookie (400)', async () => {
    const browser = newBrowser();
    const { action } = await startSignIn(browser, 'corp');
    const callback = await providerLogin(browser, action, 'alice');
    const cookie = browser.cookie(STS, STATE_COOKIE) ?? '';
    const [payload = '', signature = ''] = cookie.split('.');
    const pending = decodePendingLogin(payload);
    const forged = encodeCookieValue({ ...(pending as NonNullable<typeof pending>), expiresAt: clock + 86_400_000 });
    browser.setCookie(STS, STATE_COOKIE, `${forged}.${signature}`, '/login');
    const page = await browser.request('GET', callback);
    expect(page.status).toBe(400);
    expect(page.body).toContain('This sign-in is not valid');
    // Whatever the outcome, the callback ends the sign-in: the cookie is cleared.
    expect(browser.cookie(STS, STATE_COOKIE)).toBeUndefined();
  });

  it('a callback without the state cookie (another browser)', async () => {
    const browser = newBrowser();
    const { action } = await startSignIn(browser, 'corp');
    const callback = await providerLogin(browser, action, 'alice');
    const page = await newBrowser().request('GET', callback);
    expect(page.status).toBe(400);
    expect(page.body).toContain('expired or was started in another browser');
  });

  it('a replayed callback (400), even with the state cookie put back', async () => {
    const browser = newBrowser();
    const { action } = await startSignIn(browser, 'corp');
    const callback = await providerLogin(browser, action, 'alice');
    const cookie = browser.cookie(STS, STATE_COOKIE) ?? '';
    expect((await browser.request('GET', callback)).status).toBe(200);
    browser.setCookie(STS, STATE_COOKIE, cookie, '/login');
    const replay = await browser.request('GET', callback);
    expect(replay.status).toBe(400);
    expect(replay.body).toContain('has been used already');
  });

  it('a state that is not the one this browser started (login CSRF)', async () => {
    const attacker = newBrowser();
    const { action } = await startSignIn(attacker, 'corp');
    const attackersCallback = await providerLogin(attacker, action, 'bob');
    const victim = newBrowser();
    await startSignIn(victim, 'corp');
    const page = await victim.request('GET', attackersCallback);
    expect(page.status).toBe(400);
    expect(page.body).toContain('does not match the one this browser started');
  });

  it('a code redeemed with another PKCE verifier (the provider refuses it: 400)', async () => {
    const browser = newBrowser();
    const { action } = await startSignIn(browser, 'corp');
    const callback = await providerLogin(browser, action, 'alice');
    const pending = decodePendingLogin((browser.cookie(STS, STATE_COOKIE) ?? '').split('.')[0] ?? '');
    if (!pending) throw new Error('no state cookie');
    const forged = encodeCookieValue({ ...pending, codeVerifier: randomBytes(32).toString('base64url') });
    browser.setCookie(STS, STATE_COOKIE, sign(forged, SESSION_SECRET), '/login');
    const page = await browser.request('GET', callback);
    expect(page.status).toBe(400);
    expect(page.body).toContain('refused this sign-in link');
  });

  it('an ID token whose nonce is not the one sent (400)', async () => {
    const browser = newBrowser();
    const { action } = await startSignIn(browser, 'corp');
    const callback = await providerLogin(browser, action, 'alice');
    const pending = decodePendingLogin((browser.cookie(STS, STATE_COOKIE) ?? '').split('.')[0] ?? '');
    if (!pending) throw new Error('no state cookie');
    const forged = encodeCookieValue({ ...pending, nonce: randomBytes(32).toString('base64url') });
    browser.setCookie(STS, STATE_COOKIE, sign(forged, SESSION_SECRET), '/login');
    const page = await browser.request('GET', callback);
    expect(page.status).toBe(400);
    expect(page.body).toContain('does not match this sign-in');
  });

  it('a sign-in older than ten minutes', async () => {
    const browser = newBrowser();
    const { action } = await startSignIn(browser, 'corp');
    const callback = await providerLogin(browser, action, 'alice');
    clock += 601_000;
    try {
      const page = await browser.request('GET', callback);
      expect(page.status).toBe(400);
      expect(page.body).toContain('This sign-in has expired');
    } finally {
      clock -= 601_000;
    }
  });

  it("another provider's state cookie", async () => {
    const browser = newBrowser();
    const { action } = await startSignIn(browser, 'corp');
    const callback = await providerLogin(browser, action, 'alice');
    const page = await browser.request('GET', callback.replace('/login/corp/', '/login/staff/'));
    expect(page.status).toBe(400);
    expect(page.body).toContain('started with another provider');
  });
});

describe('the session', () => {
  it('shows who is signed in and signs out with the form token only', async () => {
    const { client, page } = await signIn('alice');
    const csrf = attributeOf(page.body, /<input[^>]*name="csrf"[^>]*>/, 'value') ?? '';
    expect(attributeOf(page.body, /<form[^>]*>/, 'action')).toBe('../../logout');

    const login = await client.request('GET', `${STS}/login`);
    expect(login.body).toContain('You are signed in as <strong>alice</strong> with Corp SSO');

    const forged = await client.request('POST', `${STS}/logout`, { csrf: 'x'.repeat(32) });
    expect(forged.status).toBe(400);
    expect(client.cookie(STS, SESSION_COOKIE)).toBeDefined();

    const out = await client.request('POST', `${STS}/logout`, { csrf });
    expect(out.status).toBe(303);
    expect(out.location).toBe(`${STS}/login`);
    expect(client.cookie(STS, SESSION_COOKIE)).toBeUndefined();
    expect((await client.request('GET', `${STS}/login`)).body).not.toContain('You are signed in');
  });

  it('ignores a session cookie that is not signed with the secret', async () => {
    const browser = newBrowser();
    const session = encodeCookieValue({ account: 'mallory', provider: 'corp', csrf: 'c'.repeat(32), expiresAt: clock + 3_600_000 });
    browser.setCookie(STS, SESSION_COOKIE, sign(session, randomBytes(48)));
    expect((await browser.request('GET', `${STS}/login`)).body).not.toContain('mallory');
  });
});

describe('the log', () => {
  it('records sign-ins and refusals without codes, tokens, states or cookies', async () => {
    const lines: string[] = [];
    const { createServer } = await import('../../src/server/app.js');
    const { createLogger } = await import('../../src/observability/logger.js');
    const loaded = await loadTestConfig(
      keys,
      baseConfig({ store: { driver: 'sqlite', path: 'store-log.db' }, sso: ssoSection(provider.issuer) }),
    );
    const logged = await createServer(loaded, { logger: createLogger({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) });
    try {
      const browser = new HttpBrowser({ origin: STS, app: logged.app });
      const { action } = await startSignIn(browser, 'corp');
      const callback = await providerLogin(browser, action, 'alice');
      const stateCookie = browser.cookie(STS, STATE_COOKIE) ?? '';
      const page = await browser.request('GET', callback);
      expect(page.status, page.body).toBe(200);
      const sessionCookie = browser.cookie(STS, SESSION_COOKIE) ?? '';
      expect((await browser.request('GET', callback)).status).toBe(400);

      const text = lines.join('');
      expect(text).toContain('"msg":"sso sign-in"');
      expect(text).toContain('"reason":"no state cookie"');
      const params = new URL(callback).searchParams;
      for (const secret of [tokenOf(page) ?? 'none', params.get('code') ?? 'none', params.get('state') ?? 'none', stateCookie, sessionCookie]) {
        expect(secret.length).toBeGreaterThan(10);
        expect(text).not.toContain(secret);
      }
    } finally {
      await logged.close();
    }
  });
});

describe('an unreachable provider', () => {
  it('answers 503 with Retry-After, and the token endpoint keeps working', async () => {
    const dead = await startOidcProvider({ clientId: 'sts', clientSecret: CLIENT_SECRET, redirectUris: [`${STS}/login/corp/callback`], accounts: {} });
    const issuer = dead.issuer;
    await dead.close();
    const keys2 = await makeKeyDir();
    await writeFile(join(keys2.dir, 'session.key'), SESSION_SECRET);
    await writeFile(join(keys2.dir, 'client.secret'), CLIENT_SECRET);
    const { server: down } = await startInProcess(
      keys2,
      baseConfig({ store: { driver: 'sqlite', path: 'store.db' }, sso: { ...ssoSection(issuer), timeout: 2 } }),
    );
    try {
      const res = await down.app.inject({ method: 'GET', url: '/login/corp' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.body).toContain('cannot be reached');
      expect((await down.app.inject({ method: 'GET', url: '/auth?service=test-registry' })).statusCode).toBe(401);
    } finally {
      await down.close();
      await keys2.cleanup();
    }
  });
});

describe('configuration', () => {
  const configWith = (sso: unknown, extra: Partial<ConfigInput> = {}) =>
    baseConfig({ store: { driver: 'sqlite', path: 'store.db' }, ...extra, sso: sso as ConfigInput['sso'] });
  const issuesOf = async (config: ConfigInput, env: NodeJS.ProcessEnv = {}) => {
    try {
      const { parseConfig } = await import('../../src/config/load.js');
      await parseConfig(config, { baseDir: keys.dir, source: 'test.yml', env });
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.issues.map((i) => `${i.path}: ${i.message}`);
    }
  };

  it('needs a store', async () => {
    const config = baseConfig({ sso: ssoSection(provider.issuer) });
    expect(await issuesOf(config)).toEqual([expect.stringMatching(/^sso: needs a store section/)]);
  });

  it('reports bad keys with their path', async () => {
    const sso = ssoSection(provider.issuer);
    const issues = await issuesOf(
      configWith({
        ...sso,
        token_scopes: ['repository'],
        providers: [
          { ...sso.providers[0], redirect_url: `${STS}/login/other/callback` },
          { ...sso.providers[1], id: 'corp', restrictions: { organizations: ['acme'] } },
          { id: 'gh', type: 'github', client_id: 'x', redirect_url: `${STS}/login/gh/callback`, issuer: 'https://example.com', restrictions: { groups: ['a'] } },
          { id: 'web', type: 'oidc', issuer: 'http://idp.example.com', client_id: 'x', client_secret: 'y', redirect_url: `${STS}/login/web/callback` },
        ],
      }),
    );
    expect(issues).toEqual(
      expect.arrayContaining([
        'sso.providers[0].redirect_url: must end with /login/corp/callback (the callback of this provider)',
        'sso.providers[1].restrictions.organizations: is for type github; OpenID providers use groups or required_claims',
        'sso.providers[1].id: corp is used twice',
        'sso.providers[2].issuer: belongs to OpenID Connect types; GitHub takes web_url and api_url',
        'sso.providers[2].client_secret_file: is required (or client_secret): the secret the provider gave this client',
        'sso.providers[2].restrictions.groups: is not for type github; use organizations or teams',
        'sso.providers[3].issuer: must use https (plain http is accepted for loopback addresses only)',
      ]),
    );
    expect(await issuesOf(configWith({ ...sso, token_scopes: ['repository'] }))).toEqual([expect.stringMatching(/^sso\.token_scopes: scope "repository"/)]);
  });

  it('checks the secret files and the token lifetime', async () => {
    const sso = ssoSection(provider.issuer);
    const issues = await issuesOf(
      configWith(
        { ...sso, session_secret_file: 'nope.key', token_lifetime: '90d', providers: [{ ...sso.providers[0], client_secret_file: 'missing.secret' }] },
        { access_tokens: { max_lifetime: '30d' } },
      ),
    );
    expect(issues).toEqual([
      'sso.token_lifetime: is longer than access_tokens.max_lifetime (2592000 s)',
      `sso.providers[0].client_secret_file: cannot read ${join(keys.dir, 'missing.secret')}: no such file`,
      expect.stringMatching(/^sso\.session_secret_file: cannot read .*nope\.key: no such file; create it with/),
    ]);
    await writeFile(join(keys.dir, 'short.key'), 'too short');
    expect(await issuesOf(configWith({ ...sso, session_secret_file: 'short.key' }))).toEqual([expect.stringMatching(/holds 9 bytes; it needs at least 32/)]);
  });

  it('creates a missing session secret in the data folder on first start, not in check-config', async () => {
    const { readFile, stat } = await import('node:fs/promises');
    const env = { STS_DATA_DIR: keys.dir };
    const sso = { ...ssoSection(provider.issuer), session_secret_file: 'generated.key' };
    const loaded = await (await import('../../src/config/load.js')).parseConfig(configWith(sso), { baseDir: keys.dir, source: 'test.yml', env });
    await expect(stat(join(keys.dir, 'generated.key'))).rejects.toThrow(/ENOENT/);
    const { createServer } = await import('../../src/server/app.js');
    const { createLogger } = await import('../../src/observability/logger.js');
    const started = await createServer(loaded, { logger: createLogger({ level: 'silent' }) });
    try {
      const secret = await readFile(join(keys.dir, 'generated.key'));
      expect(secret.length).toBeGreaterThanOrEqual(32);
      expect((await stat(join(keys.dir, 'generated.key'))).mode & 0o777).toBe(0o600);
    } finally {
      await started.close();
    }
    expect(await loadTestConfig(keys, configWith(sso))).toBeDefined();
  });
});
