/**
 * trusted_issuers without a network: the `${claims.<path>}` templates, JWT recognition, and what
 * the config refuses at load (with the key path).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  claimAt,
  ClaimsTemplateError,
  expandClaimsTemplate,
  expandClaimsValues,
  parseClaimPath,
  parseClaimsTemplate,
} from '../../src/authn/claims-template.js';
import { peekJwt } from '../../src/authn/workload.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { baseConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';

const K8S = {
  sub: 'system:serviceaccount:ci:builder',
  aud: ['https://kubernetes.default.svc', 'sts'],
  'kubernetes.io': { namespace: 'ci', pod: { name: 'p-1' }, serviceaccount: { name: 'builder' } },
  groups: ['dev', 'ops', 7, { nested: true }],
  run_attempt: 2,
  private: false,
  empty: '',
  nothing: null,
  'a.b': { c: 'dotted key' },
  a: { b: { d: 'plain path' } },
};

describe('claim paths', () => {
  it.each([
    // [path, expected value]
    ['sub', 'system:serviceaccount:ci:builder'],
    ['kubernetes.io.namespace', 'ci'],
    ['kubernetes.io.pod.name', 'p-1'],
    ['groups.0', 'dev'],
    ['groups[1]', 'ops'],
    ['groups.2', 7],
    ['groups[3].nested', true],
    ['aud[1]', 'sts'],
    // A key with a dot wins where it leads somewhere; the plain path where it does not.
    ['a.b.c', 'dotted key'],
    ['a.b.d', 'plain path'],
    // Absent
    ['groups.9', undefined],
    ['groups.x', undefined],
    ['kubernetes', undefined],
    ['sub.0', undefined],
    ['nothing.x', undefined],
  ])('%s', (path, expected) => {
    expect(claimAt(K8S, parseClaimPath(path))).toEqual(expected);
  });

  it.each(['', 'a..b', '.a', 'a.', 'a b', 'a[x]', 'a{b}'])('refuses %j', (path) => {
    expect(() => parseClaimPath(path)).toThrow(ClaimsTemplateError);
  });
});

describe('templates', () => {
  it.each([
    ['gha:${claims.sub}', 'gha:system:serviceaccount:ci:builder'],
    ['system:serviceaccount:${claims.kubernetes.io.namespace}:${claims.kubernetes.io.serviceaccount.name}', 'system:serviceaccount:ci:builder'],
    ['${claims.run_attempt}/${claims.private}', '2/false'],
    ['literal only', 'literal only'],
    ['cost: $5 {x}', 'cost: $5 {x}'],
    // Unresolvable: missing, empty, null, an object or a list → no value at all.
    ['x-${claims.missing}', undefined],
    ['x-${claims.empty}', undefined],
    ['x-${claims.nothing}', undefined],
    ['x-${claims.kubernetes.io}', undefined],
    ['x-${claims.groups}', undefined],
  ])('%s', (source, expected) => {
    expect(expandClaimsTemplate(parseClaimsTemplate(source), K8S)).toBe(expected);
  });

  it('gives one label value per list item for a lone placeholder', () => {
    expect(expandClaimsValues(parseClaimsTemplate('${claims.groups}'), K8S)).toEqual(['dev', 'ops', '7']);
    expect(expandClaimsValues(parseClaimsTemplate('g:${claims.groups.0}'), K8S)).toEqual(['g:dev']);
    expect(expandClaimsValues(parseClaimsTemplate('${claims.missing}'), K8S)).toEqual([]);
  });

  it.each([
    ['${sub}', /only placeholder is \$\{claims.<path>\}/],
    ['${account}', /only placeholder/],
    ['${claims.}', /invalid claim path/],
    ['${claims.a..b}', /invalid claim path/],
    ['x-${claims.sub', /unterminated placeholder/],
  ])('refuses %s', (source, message) => {
    expect(() => parseClaimsTemplate(source)).toThrow(message);
  });
});

describe('recognising a JWT-shaped password (without trusting it)', () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const header = b64({ alg: 'RS256', typ: 'JWT', kid: 'k1' });
  const payload = b64({ iss: 'https://token.actions.githubusercontent.com', aud: 'x' });

  it.each([
    [`${header}.${payload}.c2ln`, { alg: 'RS256', kid: 'k1', iss: 'https://token.actions.githubusercontent.com' }],
    [`${b64({ alg: 'none' })}.${payload}.`, { alg: 'none', kid: undefined, iss: 'https://token.actions.githubusercontent.com' }],
    ['hunter2', undefined],
    ['a.b.c', undefined],
    [`${header}.${payload}`, undefined],
    [`${header}.${payload}.sig.extra`, undefined],
    [`${header}.${b64({ aud: 'x' })}.c2ln`, undefined],
    [`${header}.${b64({ iss: 42 })}.c2ln`, undefined],
    [`${b64({ typ: 'JWT' })}.${payload}.c2ln`, undefined],
    [`${b64({ alg: 'RS256', typ: 1 })}.${payload}.c2ln`, undefined],
    [`${b64(['RS256'])}.${payload}.c2ln`, undefined],
    [`stsat_${header}.${payload}.c2ln`, undefined],
    [`${header}.${payload}.c2l+`, undefined],
  ])('%s', (password, expected) => {
    expect(peekJwt(password)).toEqual(expected);
  });
});

describe('trusted_issuers in the config', () => {
  let keys: KeyDir;
  beforeAll(async () => {
    keys = await makeKeyDir('ec-p256');
  });
  afterAll(() => keys.cleanup());

  const GITHUB = {
    name: 'github',
    issuer: 'https://token.actions.githubusercontent.com',
    audience: 'https://registry.example.com',
    account: 'gha:${claims.repository}',
  };

  const load = (entries: unknown[], extra: Record<string, unknown> = {}) =>
    parseConfig({ ...baseConfig(), ...extra, trusted_issuers: entries }, { baseDir: keys.dir, source: 'auth.yml', env: {} });

  async function issuesOf(entries: unknown[], extra: Record<string, unknown> = {}): Promise<Array<{ path: string; message: string }>> {
    try {
      await load(entries, extra);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return [...(err as ConfigError).issues];
    }
    throw new Error('the config was accepted');
  }

  it('fills in the defaults', async () => {
    const loaded = await load([GITHUB]);
    expect(loaded.config.trusted_issuers?.[0]).toEqual({
      ...GITHUB,
      allow_insecure_http: false,
      algorithms: ['RS256', 'ES256'],
      clock_tolerance: 30,
      jwks_refresh: 600,
      timeout: 5,
    });
  });

  it('takes durations, lists and a jwks_url', async () => {
    const loaded = await load([
      {
        ...GITHUB,
        jwks_url: 'https://token.actions.githubusercontent.com/.well-known/jwks',
        audience: ['a', 'b'],
        algorithms: ['RS256'],
        clock_tolerance: 0,
        jwks_refresh: '1h',
        max_token_age: '15m',
        timeout: 2,
        username: 'ci',
        required_claims: { repository_owner: 'myorg', ref: '/^refs\\/heads\\/(main|release)$/' },
        labels: { repository: '${claims.repository}', who: ['${claims.actor}', 'static'] },
      },
    ]);
    expect(loaded.config.trusted_issuers?.[0]).toMatchObject({ clock_tolerance: 0, jwks_refresh: 3600, max_token_age: 900, timeout: 2 });
  });

  it('is enough as the only authentication method', async () => {
    await expect(load([GITHUB], { users: undefined })).resolves.toBeDefined();
    expect(await issuesOf([], { users: undefined })).toContainEqual({ path: 'users', message: expect.stringContaining('or trusted_issuers') });
  });

  it.each([
    // [what, entry, path, message]
    ['none', { algorithms: ['none'] }, 'trusted_issuers[0].algorithms[0]', /none is refused: an unsigned token proves nothing/],
    ['HS256', { algorithms: ['RS256', 'HS256'] }, 'trusted_issuers[0].algorithms[1]', /HS256 is refused: .*HMAC/],
    ['an unknown algorithm', { algorithms: ['RS1'] }, 'trusted_issuers[0].algorithms[0]', /must be one of RS256/],
    ['an http issuer', { issuer: 'http://issuer.example' }, 'trusted_issuers[0].issuer', /must be https .*allow_insecure_http/],
    ['a non-URL issuer without jwks_url', { issuer: 'kubernetes/serviceaccount' }, 'trusted_issuers[0].issuer', /must be an http\(s\) URL when jwks_url is not set/],
    ['an http jwks_url', { jwks_url: 'http://issuer.example/jwks' }, 'trusted_issuers[0].jwks_url', /must be https/],
    ['no audience', { audience: undefined }, 'trusted_issuers[0].audience', /./],
    ['an empty audience list', { audience: [] }, 'trusted_issuers[0].audience', /./],
    ['no account', { account: undefined }, 'trusted_issuers[0].account', /./],
    ['an unknown placeholder', { account: 'gha:${repository}' }, 'trusted_issuers[0].account', /only placeholder is/],
    ['a bad label template', { labels: { ref: ['${claims.ref}', '${claims..x}'] } }, 'trusted_issuers[0].labels.ref[1]', /invalid claim path/],
    ['the issuer label', { labels: { issuer: 'x' } }, 'trusted_issuers[0].labels.issuer', /is set by the server/],
    ['a bad glob', { required_claims: { ref: 'refs/[' } }, 'trusted_issuers[0].required_claims.ref', /invalid glob/],
    ['a bad regex', { required_claims: { ref: '/(/' } }, 'trusted_issuers[0].required_claims.ref', /invalid regular expression/],
    ['a bad claim path', { required_claims: { 'a..b': 'x' } }, 'trusted_issuers[0].required_claims["a..b"]', /invalid claim path/],
    ['a bad duration', { jwks_refresh: '10 minutes' }, 'trusted_issuers[0].jwks_refresh', /duration/],
    ['a zero refresh', { jwks_refresh: 0 }, 'trusted_issuers[0].jwks_refresh', /at least 1/],
    ['a bad name', { name: 'git hub' }, 'trusted_issuers[0].name', /letters, digits/],
    ['an unknown key', { audiences: ['x'] }, 'trusted_issuers[0]', /unknown key "audiences"/],
  ])('refuses %s, naming the key', async (_what, change, path, message) => {
    const issues = await issuesOf([{ ...GITHUB, ...change }]);
    expect(issues).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it('allows http with allow_insecure_http, and a non-URL issuer with a jwks_url', async () => {
    await expect(load([{ ...GITHUB, issuer: 'http://127.0.0.1:1', allow_insecure_http: true }])).resolves.toBeDefined();
    await expect(load([{ ...GITHUB, issuer: 'kubernetes/serviceaccount', jwks_url: 'https://k8s.example/openid/v1/jwks' }])).resolves.toBeDefined();
  });

  it('refuses the same name or issuer twice', async () => {
    const issues = await issuesOf([GITHUB, { ...GITHUB }]);
    expect(issues).toContainEqual({ path: 'trusted_issuers[1].name', message: 'github is listed twice' });
    expect(issues).toContainEqual({ path: 'trusted_issuers[1].issuer', message: expect.stringMatching(/listed twice/) });
  });
});
