// End to end: a person signs in with a real headless Chromium (Debian's package, driven by
// playwright-core) through our login page and a real OpenID Provider's login form, copies the
// token from the result page, and skopeo pushes with it to Debian's distribution 2.8 registry.
// Screenshots of the three pages go to test/artifacts/ (gitignored) for a human to look at.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcProvider, type RunningOidcProvider } from '../helpers/oidc-provider.js';
import { startAuthServer, type RunningAuthServer } from './harness/auth-server.js';
import { createClientSession, explain, type ClientSession } from './harness/clients.js';
import { buildOciLayout, type OciLayout } from './harness/oci-image.js';
import { freePort, startRegistry, type RunningRegistry } from './harness/registry.js';
import { requireBinaries } from './harness/require-binary.js';
import { Teardown } from './harness/teardown.js';

const CHROMIUM = '/usr/bin/chromium';
const SETUP_TIMEOUT = 120_000;
const CASE_TIMEOUT = 90_000;
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const CLIENT_SECRET = randomBytes(16).toString('hex');

/** Requests that may leave the browser: our two servers on loopback, nothing else. */
const isLoopback = (url: string) => {
  const { protocol, hostname } = new URL(url);
  return protocol === 'data:' || protocol === 'about:' || hostname === '127.0.0.1' || hostname === 'localhost';
};

describe('sign-in in a browser, then skopeo with the token', () => {
  const teardown = new Teardown();
  let provider: RunningOidcProvider;
  let auth: RunningAuthServer;
  let registry: RunningRegistry;
  let clients: ClientSession;
  let image: OciLayout;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  let token = '';

  beforeAll(async () => {
    await requireBinaries(['docker-registry', 'skopeo', 'chromium']);
    const dir = teardown.defer(await mkdtemp(join(tmpdir(), 'sts-e2e-sso-')), (d) => rm(d, { recursive: true, force: true }));
    await writeFile(join(dir, 'session.key'), randomBytes(48), { mode: 0o600 });
    await mkdir(ARTIFACTS, { recursive: true });

    const port = await freePort();
    const redirect = `http://127.0.0.1:${port}/login/corp/callback`;
    provider = teardown.defer(
      await startOidcProvider({
        clientId: 'registry',
        clientSecret: CLIENT_SECRET,
        redirectUris: [redirect],
        accounts: {
          alice: { sub: 'f3c1a2', password: 'correct horse', claims: { preferred_username: 'alice', name: 'Alice', groups: ['registry-users'] } },
        },
      }),
      (p) => p.close(),
    );
    auth = teardown.defer(
      await startAuthServer({
        keyKind: 'ec-p256',
        users: {},
        acl: [{ match: { account: '/.+/', name: '${account}/*' }, actions: ['*'], comment: 'everyone owns their namespace' }],
        sqliteStore: true,
        port,
        configExtra: {
          sso: {
            session_secret_file: join(dir, 'session.key'),
            providers: [
              {
                id: 'corp',
                type: 'oidc',
                display_name: 'Example Corp',
                issuer: provider.issuer,
                client_id: 'registry',
                client_secret: CLIENT_SECRET,
                redirect_url: redirect,
                scopes: ['openid', 'profile', 'groups'],
                restrictions: { groups: ['registry-users'] },
              },
            ],
          },
        },
      }),
      (a) => a.close(),
    );
    registry = teardown.defer(await startRegistry(auth), (r) => r.stop());
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    image = teardown.defer(await buildOciLayout({ content: 'signed in with sso' }), (i) => i.remove());

    const profile = teardown.defer(await mkdtemp(join(tmpdir(), 'sts-e2e-chromium-')), (d) => rm(d, { recursive: true, force: true }));
    context = teardown.defer(
      await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          // Belt and braces: no name resolves but loopback, so nothing can leave this machine.
          '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
        ],
        viewport: { width: 900, height: 760 },
        colorScheme: 'light',
      }),
      (c) => c.close(),
    );
    await context.route((url) => !isLoopback(url.href), (route) => {
      problems.push(`blocked request to ${route.request().url()}`);
      return route.abort();
    });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: auth.url });
    context.setDefaultTimeout(15_000);
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('signs in through the login page and the provider, and shows the token once', async () => {
    await page.goto(`${auth.url}/login`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Sign in');
    await page.screenshot({ path: join(ARTIFACTS, 'sso-login.png'), fullPage: true });

    // Keyboard first: the provider button is reachable with Tab and has a visible focus ring.
    await page.keyboard.press('Tab');
    const focused = page.getByRole('link', { name: 'Sign in with Example Corp' });
    // (Strings: this file is compiled without the DOM library.)
    expect(await page.evaluate('document.activeElement.textContent')).toBe('Sign in with Example Corp');
    expect(await page.evaluate('getComputedStyle(document.activeElement).outlineStyle')).toBe('solid');

    await focused.click();
    await page.waitForURL(`${provider.issuer}/interaction/**`);
    expect(await page.title()).toBe('Test provider: sign in');
    await page.screenshot({ path: join(ARTIFACTS, 'sso-provider.png'), fullPage: true });
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('correct horse');
    await page.getByRole('button', { name: 'Sign in' }).click();

    await page.waitForURL(`${auth.url}/login/corp/callback?**`);
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Signed in as alice');
    token = await page.getByLabel(/Access token/).inputValue();
    expect(token).toMatch(/^stsat_/);
    expect(await page.locator('#command').textContent()).toBe(`docker login ${new URL(auth.url).host} -u alice --password-stdin`);

    // The copy button is the page's only script: the CSP hash lets it run, and it copies the token.
    const copy = page.getByRole('button', { name: 'Copy' });
    expect(await copy.isVisible()).toBe(true);
    await copy.click();
    await page.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(token);
    await page.screenshot({ path: join(ARTIFACTS, 'sso-result.png'), fullPage: true });

    expect(problems).toEqual([]);
  }, CASE_TIMEOUT);

  it('pushes to the signed-in user’s namespace with the token, and nowhere else', async () => {
    expect(token, 'the sign-in case must pass first').not.toBe('');
    const authFile = clients.authFileFor('sso');
    const login = await clients.skopeo(['login', '--tls-verify=false', '--authfile', authFile, '-u', 'alice', '--password-stdin', registry.host], { stdin: token });
    expect(login.code, explain(login)).toBe(0);

    const push = await clients.skopeo(['copy', '--dest-tls-verify=false', '--authfile', authFile, image.reference, `docker://${registry.host}/alice/app:1`]);
    expect(push.code, explain(push)).toBe(0);
    expect(await registry.hasTag('alice/app', '1')).toBe(true);
    expect(auth.audit).toContainEqual(expect.objectContaining({ account: 'alice', backend: expect.stringMatching(/^access-token/), result: 'issued', granted: expect.arrayContaining(['repository:alice/app:pull,push']) }));

    const elsewhere = await clients.skopeo(['copy', '--dest-tls-verify=false', '--authfile', authFile, image.reference, `docker://${registry.host}/bob/app:1`]);
    expect(elsewhere.code, explain(elsewhere)).not.toBe(0);
    expect(await registry.hasTag('bob/app', '1')).toBe(false);
  }, CASE_TIMEOUT);

  it('signs out with the form, and the login page no longer shows the session', async () => {
    await page.goto(`${auth.url}/login`);
    expect(await page.getByRole('status').first().textContent()).toContain('You are signed in as alice');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${auth.url}/login`);
    expect(await page.content()).not.toContain('You are signed in');

    // A callback this browser did not start: a clear error page with a way back.
    const response = await page.goto(`${auth.url}/login/corp/callback?code=x&state=y`);
    expect(response?.status()).toBe(400);
    expect(await page.getByRole('alert').textContent()).toContain('Start again from the sign-in page.');
    await page.screenshot({ path: join(ARTIFACTS, 'sso-error.png'), fullPage: true });
    await page.getByRole('link', { name: 'Back to sign-in' }).click();
    await page.waitForURL(`${auth.url}/login`);
    // Chromium reports the page's own 400 on the console; that one was asked for.
    expect(problems).toEqual(['console: Failed to load resource: the server responded with a status of 400 (Bad Request)']);
  }, CASE_TIMEOUT);
});
