import { describe, expect, it } from 'vitest';
import { accountNameOf, checkRestrictions, claimValues, labelsOf } from '../../src/sso/claims.js';
import { ssoProviderSchema, ssoSchema, type SsoProviderConfig } from '../../src/sso/config.js';
import { tokenName } from '../../src/sso/accounts.js';
import { CONTENT_SECURITY_POLICY, errorPage, escapeHtml, resultPage } from '../../src/sso/pages.js';

const provider = (extra: Record<string, unknown> = {}): SsoProviderConfig =>
  ssoProviderSchema.parse({ id: 'corp', type: 'oidc', issuer: 'https://idp.example.com', client_id: 'c', client_secret: 's', redirect_url: 'https://auth.example.com/login/corp/callback', ...extra });

describe('sso config', () => {
  const base = { providers: [{ id: 'corp', type: 'oidc', issuer: 'https://idp.example.com/realms/x', client_id: 'c', client_secret: 's', redirect_url: 'https://auth.example.com/login/corp/callback' }] };

  it('fills the defaults', () => {
    expect(ssoSchema.parse(base)).toMatchObject({
      session_secret_file: 'session.key',
      token_lifetime: 30 * 86_400,
      token_scopes: ['repository:*:pull,push', 'repository:*/*:pull,push', 'repository:*/*/*:pull,push'],
      timeout: 10,
    });
    expect(ssoSchema.parse({ ...base, token_lifetime: '12h' }).token_lifetime).toBe(43_200);
  });

  it.each([
    // [what, provider fields, path, message]
    ['an id with capitals', { id: 'Corp' }, ['id'], /lowercase/],
    ['an unknown type', { type: 'saml' }, ['type'], /./],
    ['an unknown key', { tenant: 'x' }, [], /Unrecognized key|unknown/i],
    ['an oidc provider without issuer', { issuer: undefined }, ['issuer'], /required for type oidc/],
    ['a plain-http issuer that is not loopback', { issuer: 'http://idp.example.com' }, ['issuer'], /must use https/],
    ['web_url on an OpenID provider', { web_url: 'https://github.example.com' }, ['web_url'], /belongs to type github/],
    ['both secrets', { client_secret_file: 'x' }, ['client_secret'], /not both/],
    ['no secret', { client_secret: undefined }, ['client_secret_file'], /is required/],
    ['a relative redirect URL', { redirect_url: '/login/corp/callback' }, ['redirect_url'], /absolute/],
    ["another provider's callback", { redirect_url: 'https://auth.example.com/login/other/callback' }, ['redirect_url'], /must end with \/login\/corp\/callback/],
    ['a team without its organization', { type: 'github', issuer: undefined, restrictions: { teams: ['registry'] } }, ['restrictions', 'teams', 0], /organization\/team-slug/],
    ['domains on GitHub', { type: 'github', issuer: undefined, restrictions: { domains: ['example.com'] } }, ['restrictions', 'domains'], /GitHub vouches for no email domain/],
    ['a labels claim that cannot be a label', { labels_claims: ['https://example.com/groups'] }, ['labels_claims', 0], /claim name/],
  ])('refuses %s', (_what, fields, path, message) => {
    const parsed = ssoProviderSchema.safeParse({ ...base.providers[0], ...fields });
    expect(parsed.success).toBe(false);
    const issue = parsed.error?.issues.find((i) => JSON.stringify(i.path) === JSON.stringify(path));
    expect(issue, JSON.stringify(parsed.error?.issues)).toBeDefined();
    expect(issue?.message).toMatch(message);
  });

  it.each([
    ['a loopback http issuer', { issuer: 'http://127.0.0.1:8080/realms/x' }],
    ['a github provider with Enterprise URLs', { type: 'github', issuer: undefined, web_url: 'https://github.example.com/', api_url: 'https://github.example.com/api/v3' }],
    ['a prefix path in the redirect URL', { redirect_url: 'https://example.com/registry-auth/login/corp/callback' }],
    ['a google provider with only defaults', { type: 'google', issuer: undefined, restrictions: { domains: ['example.com'] } }],
  ])('accepts %s', (_what, fields) => {
    const parsed = ssoProviderSchema.safeParse({ ...base.providers[0], ...fields });
    expect(parsed.error?.issues ?? []).toEqual([]);
  });

  it('strips the trailing slash of GitHub URLs but keeps the issuer as written', () => {
    const gh = ssoProviderSchema.parse({ ...base.providers[0], type: 'github', issuer: undefined, web_url: 'https://github.example.com/' });
    expect(gh.web_url).toBe('https://github.example.com');
    expect(ssoProviderSchema.parse({ ...base.providers[0], issuer: 'https://tenant.example.com/' }).issuer).toBe('https://tenant.example.com/');
  });

  it('refuses a provider id used twice and a registry_host that is not a host', () => {
    const parsed = ssoSchema.safeParse({ ...base, registry_host: 'https://registry.example.com', providers: [base.providers[0], base.providers[0]] });
    expect(parsed.error?.issues.map((i) => i.path.join('.'))).toEqual(['registry_host', 'providers.1.id']);
  });
});

describe('claims', () => {
  it('names the account from the user claim, lowercased, after the prefix', () => {
    expect(accountNameOf(provider(), { preferred_username: ' Alice ' })).toBe('alice');
    expect(accountNameOf(provider({ account_prefix: 'sso-', user_claim: 'email' }), { email: 'Bob@Example.com' })).toBe('sso-bob@example.com');
    expect(accountNameOf(provider({ type: 'github', issuer: undefined }), { login: 'Octocat' })).toBe('octocat');
    expect(accountNameOf(provider(), { preferred_username: 42 })).toBeUndefined();
    expect(accountNameOf(provider(), {})).toBeUndefined();
  });

  it('turns claims into labels: strings and lists of strings; sign-in adds sso and sso_subject', () => {
    const p = provider({ labels_claims: ['groups', 'department', 'roles', 'missing', 'sso'] });
    expect(labelsOf(p, 'sub-1', { groups: ['a', 'b', 'a', ''], department: 'R&D', roles: { nested: true }, sso: 'forged' })).toEqual({
      groups: ['a', 'b'],
      department: ['R&D'],
      sso: ['corp'],
      sso_subject: ['sub-1'],
    });
    expect(claimValues([1, true, 'x', null, {}])).toEqual(['1', 'true', 'x']);
  });

  it.each([
    // [what, restrictions, claims, refused]
    ['no restrictions', undefined, {}, false],
    ['a group held', { groups: ['ops', 'devs'] }, { groups: ['devs'] }, false],
    ['no group held', { groups: ['ops'] }, { groups: ['devs'] }, true],
    ['groups compared exactly', { groups: ['ops'] }, { groups: ['OPS', '/ops'] }, true],
    ['a verified email in the domain', { domains: ['example.com'] }, { email: 'a@Example.COM', email_verified: true }, false],
    ['an unverified email', { domains: ['example.com'] }, { email: 'a@example.com', email_verified: false }, true],
    ['email_verified missing', { domains: ['example.com'] }, { email: 'a@example.com' }, true],
    ['a subdomain is another domain', { domains: ['example.com'] }, { email: 'a@evil.example.com', email_verified: true }, true],
    ['a required claim equal', { required_claims: { tenant: 'acme' } }, { tenant: 'acme' }, false],
    ['a required claim in a list claim', { required_claims: { roles: 'registry' } }, { roles: ['x', 'registry'] }, false],
    ['one of the values listed', { required_claims: { tier: ['gold', 'silver'] } }, { tier: 'silver' }, false],
    ['a boolean required', { required_claims: { mfa: true } }, { mfa: 'true' }, true],
    ['a boolean held', { required_claims: { mfa: true } }, { mfa: true }, false],
    ['every restriction must hold', { groups: ['devs'], required_claims: { tenant: 'acme' } }, { groups: ['devs'], tenant: 'other' }, true],
  ])('%s', (_what, restrictions, claims, refused) => {
    const p = provider(restrictions ? { restrictions } : {});
    expect(checkRestrictions(p, claims) !== undefined).toBe(refused);
  });

  it.each([
    ['the Workspace domain', { hd: 'example.com', email: 'a@example.com', email_verified: true }, false],
    // A gmail.com account may show any email; only hd proves the Workspace.
    ['an email in the domain without hd', { email: 'a@example.com', email_verified: true }, true],
    ['another Workspace', { hd: 'other.com' }, true],
  ])('google: %s', (_what, claims, refused) => {
    const p = provider({ type: 'google', issuer: undefined, restrictions: { domains: ['example.com'] } });
    expect(checkRestrictions(p, claims) !== undefined).toBe(refused);
  });
});

describe('pages', () => {
  it('escape every value', () => {
    expect(escapeHtml(`<a href="x">'&`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;');
    const page = resultPage({
      account: 'alice',
      providerName: '<b>Corp</b>',
      token: 'stsat_x"y',
      tokenName: 'sso-1',
      expiresAt: Date.UTC(2030, 0, 2, 3, 4),
      registry: 'registry.example.com',
      logoutAction: '../../logout',
      csrf: 'c"srf',
    });
    expect(page).toContain('with &lt;b&gt;Corp&lt;/b&gt;');
    expect(page).toContain('value="stsat_x&quot;y"');
    expect(page).toContain('value="c&quot;srf"');
    expect(page).toContain('2030-01-02 03:04 UTC');
    expect(errorPage(403, '<script>', 'login')).not.toContain('<script>');
  });

  it('allow exactly the inline copy script', async () => {
    const { createHash } = await import('node:crypto');
    const page = resultPage({ account: 'a', providerName: 'p', token: 't', tokenName: 'n', expiresAt: null, registry: 'r', logoutAction: 'l', csrf: 'c' });
    const script = /<script>([\s\S]*?)<\/script>/.exec(page)?.[1] ?? '';
    expect(CONTENT_SECURITY_POLICY).toContain(`'sha256-${createHash('sha256').update(script).digest('base64')}'`);
    expect(page).toContain('It does not expire.');
  });

  it('name tokens after the time they were made', () => {
    expect(tokenName(Date.UTC(2030, 0, 2, 3, 4, 5, 678), 0)).toBe('sso-20300102T030405Z');
    expect(tokenName(Date.UTC(2030, 0, 2, 3, 4, 5, 678), 1)).toBe('sso-20300102T030405Z-2');
  });
});
