/**
 * Trusted issuers end to end through the real token endpoint (`inject`): real issuers on
 * 127.0.0.1 serve discovery and a JWKS, the test signs ID tokens in GitHub Actions and Kubernetes
 * shape, and the server's clock is moved to check expiry, refresh and the kid cooldown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT, type JWTPayload } from 'jose';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StsServer } from '../../src/server/app.js';
import type { Identity } from '../../src/authn/types.js';
import type { Authorizer } from '../../src/authz/types.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer } from '../../src/server/app.js';
import { baseConfig, decodeJwt, hash, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { b64json, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { basic, MemoryAudit, startInProcess } from '../helpers/server.js';

const AUDIENCE = 'sts-test';
let keys: KeyDir;
let server: StsServer;
let audit: MemoryAudit;
let github: TestIssuer;
let k8s: TestIssuer;
let flaky: TestIssuer;
let slow: TestIssuer;
let gone: TestIssuer;
let unconfigured: TestIssuer;
let alicePassword: string;
let clock = Date.now();
const seconds = () => Math.floor(clock / 1000);

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** A GitHub Actions ID token's claims (docs.github.com, "About security hardening with OpenID Connect"). */
function githubClaims(issuer: string, overrides: JWTPayload = {}): JWTPayload {
  const now = seconds();
  return {
    iss: issuer,
    aud: AUDIENCE,
    sub: 'repo:myorg/app:ref:refs/heads/main',
    repository: 'myorg/app',
    repository_owner: 'myorg',
    ref: 'refs/heads/main',
    workflow: 'release',
    actor: 'octocat',
    run_id: '4242',
    event_name: 'push',
    iat: now,
    nbf: now - 5,
    exp: now + 300,
    jti: 'f6c7b1a2',
    ...overrides,
  };
}

/** A projected Kubernetes service account token's claims. */
function k8sClaims(issuer: string, overrides: JWTPayload = {}): JWTPayload {
  const now = seconds();
  return {
    iss: issuer,
    aud: ['https://kubernetes.default.svc', AUDIENCE],
    sub: 'system:serviceaccount:ci:builder',
    'kubernetes.io': {
      namespace: 'ci',
      pod: { name: 'builder-7d9f', uid: 'c0ffee00-0000-4000-8000-000000000001' },
      serviceaccount: { name: 'builder', uid: 'c0ffee00-0000-4000-8000-000000000002' },
    },
    iat: now,
    nbf: now,
    exp: now + 600,
    ...overrides,
  };
}

function config(): ConfigInput {
  return baseConfig({
    users: { alice: { password: alicePassword } },
    acl: [
      { match: { labels: { repository: 'myorg/app', issuer: 'github' }, name: 'myorg/app' }, actions: ['pull', 'push'], comment: 'CI of myorg/app' },
      { match: { account: 'system:serviceaccount:ci:*', name: 'ci/*' }, actions: ['pull'], comment: 'service accounts of namespace ci' },
      { match: { account: 'alice' }, actions: ['*'] },
    ],
    store: { driver: 'sqlite', path: 'store.db' },
    trusted_issuers: [
      {
        name: 'github',
        issuer: github.issuer,
        allow_insecure_http: true,
        audience: AUDIENCE,
        required_claims: { repository: 'myorg/*', ref: '/^refs\\/(heads\\/main|tags\\/v.+)$/' },
        account: 'gha:${claims.repository}',
        labels: { repository: '${claims.repository}', ref: '${claims.ref}', actor: ['${claims.actor}', 'gh-${claims.actor}'] },
      },
      {
        name: 'k8s',
        issuer: k8s.issuer,
        allow_insecure_http: true,
        audience: AUDIENCE,
        algorithms: ['ES256'],
        username: 'k8s',
        account: 'system:serviceaccount:${claims.kubernetes.io.namespace}:${claims.kubernetes.io.serviceaccount.name}',
        labels: { namespace: '${claims.kubernetes.io.namespace}', pod: '${claims.kubernetes.io.pod.name}' },
        max_token_age: '1h',
        jwks_refresh: '5m',
      },
      { name: 'flaky', issuer: flaky.issuer, allow_insecure_http: true, audience: AUDIENCE, account: 'flaky:${claims.sub}', jwks_refresh: '1m' },
      { name: 'slow', issuer: slow.issuer, allow_insecure_http: true, audience: AUDIENCE, account: 'slow:${claims.sub}', timeout: 1 },
      { name: 'gone', issuer: gone.issuer, allow_insecure_http: true, audience: AUDIENCE, account: 'gone:${claims.sub}' },
    ],
  });
}

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  [github, k8s, flaky, slow, gone, unconfigured] = await Promise.all([
    startIssuer(),
    startIssuer({ path: '/k8s' }),
    startIssuer(),
    startIssuer(),
    startIssuer(),
    startIssuer(),
  ]);
  await Promise.all([
    github.addKey('RS256', 'gh-1'),
    github.addKey('RS256', 'gh-2', { publish: false }),
    github.addKey('RS256', 'gh-impostor', { publish: false }),
    k8s.addKey('ES256', 'k8s-1'),
    flaky.addKey('ES256', 'flaky-1'),
    slow.addKey('RS256', 'slow-1'),
    gone.addKey('RS256', 'gone-1'),
    unconfigured.addKey('RS256', 'x-1'),
  ]);
  alicePassword = await hash('alice-pw');
  ({ server, audit } = await startInProcess(keys, config(), { now: () => clock }));
});

afterAll(async () => {
  await server?.close();
  await Promise.all([github, k8s, flaky, slow, gone, unconfigured].map((i) => i?.close()));
  await keys?.cleanup();
});

const get = (query: string, authorization?: string) =>
  server.app.inject({ method: 'GET', url: `/auth?service=test-registry&${query}`, headers: authorization ? { authorization } : {} });
const access = (res: { json(): { token: string } }) => decodeJwt(res.json().token).claims.access as Array<{ name: string; actions: string[] }>;

/** Expects a 401 whose audit reason matches. */
async function expectDenied(authorization: string, reason: RegExp, query = 'scope=repository:myorg/app:pull') {
  const res = await get(query, authorization);
  expect(res.statusCode, res.body).toBe(401);
  expect(res.json()).toMatchObject({ errors: [{ code: 'UNAUTHORIZED' }] });
  expect(audit.last()).toMatchObject({ result: 'unauthorized' });
  expect(audit.last().reason).toMatch(reason);
  return res;
}

describe('accepted tokens', () => {
  it('turn a GitHub Actions token into an account and labels that ACL rules match', async () => {
    const token = await github.sign(githubClaims(github.issuer));
    const res = await get('scope=repository:myorg/app:pull,push&scope=repository:myorg/other:pull', basic('ci', token));
    expect(res.statusCode, res.body).toBe(200);
    expect(access(res)).toEqual([
      { type: 'repository', name: 'myorg/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'myorg/other', actions: [] },
    ]);
    expect(decodeJwt(res.json().token).claims.sub).toBe('gha:myorg/app');
    expect(audit.last()).toMatchObject({ result: 'issued', account: 'gha:myorg/app', backend: 'workload:github' });
    expect(audit.last().reason).toContain('CI of myorg/app');
    // The token itself never reaches the audit trail.
    expect(JSON.stringify(audit.events)).not.toContain(token.split('.')[2]);
  });

  it('accept any user name when the issuer names none', async () => {
    const token = await github.sign(githubClaims(github.issuer));
    for (const user of ['<token>', 'x-access-token', 'oauth2accesstoken']) {
      expect((await get('scope=repository:myorg/app:pull', basic(user, token))).statusCode).toBe(200);
    }
  });

  it('turn a Kubernetes token (nested kubernetes.io claims, list audience, ES256) into its service account', async () => {
    const token = await k8s.sign(k8sClaims(k8s.issuer));
    const res = await get('scope=repository:ci/tool:pull,push', basic('k8s', token));
    expect(res.statusCode, res.body).toBe(200);
    expect(access(res)).toEqual([{ type: 'repository', name: 'ci/tool', actions: ['pull'] }]);
    expect(audit.last()).toMatchObject({ account: 'system:serviceaccount:ci:builder', backend: 'workload:k8s' });
  });

  it('carry the configured labels plus issuer to the authorizer', async () => {
    // An authorizer after the ACL sees the identity exactly as the ACL did (for a scope no ACL
    // rule matches).
    const seen: Identity[] = [];
    const probe: Authorizer = {
      name: 'probe',
      authorize: async (identity) => {
        seen.push(identity);
        return null;
      },
    };
    const other = await createServer(await loadTestConfig(keys, config()), {
      logger: createLogger({ level: 'silent' }),
      audit: new MemoryAudit(),
      authorizers: [probe],
      now: () => clock,
    });
    try {
      const ask = (authorization: string) =>
        other.app.inject({ method: 'GET', url: '/auth?service=test-registry&scope=repository:probe/x:pull', headers: { authorization } });
      expect((await ask(basic('ci', await github.sign(githubClaims(github.issuer))))).statusCode).toBe(200);
      expect((await ask(basic('k8s', await k8s.sign(k8sClaims(k8s.issuer))))).statusCode).toBe(200);
      expect(seen.map((i) => [i.account, i.labels, i.via, i.anonymous])).toEqual([
        ['gha:myorg/app', { repository: ['myorg/app'], ref: ['refs/heads/main'], actor: ['octocat', 'gh-octocat'], issuer: ['github'] }, 'workload', false],
        ['system:serviceaccount:ci:builder', { namespace: ['ci'], pod: ['builder-7d9f'], issuer: ['k8s'] }, 'workload', false],
      ]);
    } finally {
      await other.close();
    }
  });

  it('never get a refresh token, even when one is asked for', async () => {
    const token = await github.sign(githubClaims(github.issuer));
    const viaGet = await get('scope=repository:myorg/app:pull&offline_token=true&client_id=docker', basic('ci', token));
    expect(viaGet.statusCode, viaGet.body).toBe(200);
    expect(viaGet.json()).not.toHaveProperty('refresh_token');
    const viaPost = await server.app.inject({
      method: 'POST',
      url: '/auth',
      headers: FORM,
      payload: new URLSearchParams({
        grant_type: 'password',
        username: 'ci',
        password: token,
        service: 'test-registry',
        scope: 'repository:myorg/app:pull',
        access_type: 'offline',
        client_id: 'docker',
      }).toString(),
    });
    expect(viaPost.statusCode, viaPost.body).toBe(200);
    expect(viaPost.json()).toHaveProperty('access_token');
    expect(viaPost.json()).not.toHaveProperty('refresh_token');
    // The same request with a password does get one: refresh tokens are on in this server.
    const alice = await get('offline_token=true&client_id=docker', basic('alice', 'alice-pw'));
    expect(alice.json()).toHaveProperty('refresh_token');
  });

  it('let passwords that are not JWTs (or JWTs of issuers not configured) through to the static users', async () => {
    const ok = await get('scope=repository:myorg/app:pull', basic('alice', 'alice-pw'));
    expect(ok.statusCode).toBe(200);
    expect(audit.last()).toMatchObject({ account: 'alice', backend: 'static' });
    expect((await get('', basic('alice', 'a.b.c'))).statusCode).toBe(401);
    expect(audit.last().reason).toBe('wrong password');
    // Signed and well-formed, but by an issuer nobody trusts: not ours to judge, so the user backends decide.
    const stranger = await unconfigured.sign(githubClaims(unconfigured.issuer));
    await expectDenied(basic('alice', stranger), /^wrong password$/);
    await expectDenied(basic('ci', stranger), /^unknown account$/);
  });
});

describe('refused tokens: 401 with the reason in the audit', () => {
  it('a wrong audience', async () => {
    await expectDenied(basic('ci', await github.sign(githubClaims(github.issuer, { aud: 'someone-else' }))), /^trusted issuer github: the token's audience "someone-else" is not "sts-test"$/);
    await expectDenied(basic('k8s', await k8s.sign(k8sClaims(k8s.issuer, { aud: ['https://kubernetes.default.svc'] }))), /audience/);
  });

  it("a token naming one trusted issuer but signed with another's key", async () => {
    const forged = await github.sign(githubClaims(k8s.issuer), { kid: 'gh-1' });
    await expectDenied(basic('k8s', forged), /^trusted issuer k8s: algorithm "RS256" is not allowed \(allowed: ES256\)$/);
    const k8sKeyForGithub = await k8s.sign(githubClaims(github.issuer));
    await expectDenied(basic('ci', k8sKeyForGithub), /^trusted issuer github: no key in the issuer's key set matches kid "k8s-1"/);
  });

  it('an expired token, beyond the clock tolerance', async () => {
    const now = seconds();
    await expectDenied(basic('ci', await github.sign(githubClaims(github.issuer, { iat: now - 400, nbf: now - 400, exp: now - 31 }))), /the token has expired$/);
    // Within the default 30 s tolerance it still counts.
    const late = await github.sign(githubClaims(github.issuer, { iat: now - 400, nbf: now - 400, exp: now - 20 }));
    expect((await get('scope=repository:myorg/app:pull', basic('ci', late))).statusCode).toBe(200);
  });

  it('a token that is not valid yet', async () => {
    const now = seconds();
    await expectDenied(basic('ci', await github.sign(githubClaims(github.issuer, { iat: now, nbf: now + 120 }))), /the token is not valid yet \(nbf\)$/);
  });

  it('a token without an expiry, and one older than max_token_age', async () => {
    const claims = githubClaims(github.issuer);
    delete claims.exp;
    await expectDenied(basic('ci', await github.sign(claims)), /the token has no expiry \(exp\)$/);
    const now = seconds();
    const old = await k8s.sign(k8sClaims(k8s.issuer, { iat: now - 7200, nbf: now - 7200, exp: now + 3600 }));
    await expectDenied(basic('k8s', old), /older than max_token_age \(3600s\)$/);
  });

  it('a bad signature', async () => {
    const genuine = await github.sign(githubClaims(github.issuer));
    const impostor = await github.sign(githubClaims(github.issuer), { kid: 'gh-impostor', header: { kid: 'gh-1' } });
    const [h, p] = genuine.split('.');
    const spliced = `${h}.${p}.${impostor.split('.')[2]}`;
    await expectDenied(basic('ci', spliced), /^trusted issuer github: bad signature$/);
    // Claims changed after signing.
    const tampered = `${h}.${b64json({ ...githubClaims(github.issuer), repository: 'myorg/secret' })}.${genuine.split('.')[2]}`;
    await expectDenied(basic('ci', tampered), /bad signature$/);
  });

  it('alg: none', async () => {
    const unsigned = `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(githubClaims(github.issuer))}.`;
    await expectDenied(basic('ci', unsigned), /^trusted issuer github: algorithm "none" is not allowed \(allowed: RS256, ES256\)$/);
  });

  it('HS256 signed with the public key (algorithm confusion)', async () => {
    const secret = new TextEncoder().encode(github.publicPem('gh-1'));
    const confused = await new SignJWT(githubClaims(github.issuer)).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: 'gh-1' }).sign(secret);
    await expectDenied(basic('ci', confused), /algorithm "HS256" is not allowed/);
  });

  it('a claim that does not match required_claims', async () => {
    await expectDenied(
      basic('ci', await github.sign(githubClaims(github.issuer, { repository: 'evil/app', sub: 'repo:evil/app:ref:refs/heads/main' }))),
      /^trusted issuer github: claim repository "evil\/app" does not match \(required: "myorg\/\*"\)$/,
    );
    await expectDenied(basic('ci', await github.sign(githubClaims(github.issuer, { ref: 'refs/heads/feature' }))), /claim ref "refs\/heads\/feature" does not match/);
    const claims = githubClaims(github.issuer);
    delete claims.ref;
    await expectDenied(basic('ci', await github.sign(claims)), /claim ref is missing/);
    // A tag matches the regex alternative.
    const tag = await github.sign(githubClaims(github.issuer, { ref: 'refs/tags/v1.2.0' }));
    expect((await get('scope=repository:myorg/app:pull', basic('ci', tag))).statusCode).toBe(200);
  });

  it('a user name the issuer does not allow', async () => {
    await expectDenied(basic('admin', await k8s.sign(k8sClaims(k8s.issuer))), /^trusted issuer k8s: user name "admin" is not allowed with its tokens \(only "k8s"\)$/);
  });

  it('a token the account template cannot be filled from', async () => {
    const claims = k8sClaims(k8s.issuer);
    delete (claims['kubernetes.io'] as Record<string, unknown>).serviceaccount;
    await expectDenied(basic('k8s', await k8s.sign(claims)), /account template .* cannot be filled: the token has no claims\.kubernetes\.io\.serviceaccount\.name$/);
  });
});

describe('the key set', () => {
  it('is fetched once and reused until jwks_refresh', async () => {
    const before = github.jwksFetches();
    for (let i = 0; i < 3; i++) {
      expect((await get('', basic('ci', await github.sign(githubClaims(github.issuer))))).statusCode).toBe(200);
    }
    expect(github.jwksFetches()).toBe(before);
    clock += 10 * 60_000 + 1000;
    expect((await get('', basic('ci', await github.sign(githubClaims(github.issuer))))).statusCode).toBe(200);
    expect(github.jwksFetches()).toBe(before + 1);
  });

  it('is fetched again once for an unknown kid, then not again within the cooldown', async () => {
    clock += 31_000;
    const before = github.jwksFetches();
    const bogus = await github.sign(githubClaims(github.issuer), { header: { kid: 'made-up-1' } });
    await expectDenied(basic('ci', bogus), /^trusted issuer github: no key in the issuer's key set matches kid "made-up-1" and alg RS256$/);
    expect(github.jwksFetches()).toBe(before + 1);
    for (let i = 2; i < 6; i++) {
      await expectDenied(basic('ci', await github.sign(githubClaims(github.issuer), { header: { kid: `made-up-${i}` } })), /matches kid/);
    }
    expect(github.jwksFetches()).toBe(before + 1);
  });

  it('follows a key rotation at the issuer: a new kid is accepted after the re-fetch', async () => {
    const rotated = await github.sign(githubClaims(github.issuer), { kid: 'gh-2' });
    clock += 31_000;
    await expectDenied(basic('ci', rotated), /matches kid "gh-2"/);
    github.publish('gh-2');
    // Within the cooldown the new key is not fetched yet ...
    await expectDenied(basic('ci', rotated), /matches kid "gh-2"/);
    clock += 31_000;
    const before = github.jwksFetches();
    // ... after it, it is, and both keys work.
    expect((await get('scope=repository:myorg/app:push', basic('ci', rotated))).statusCode).toBe(200);
    expect(github.jwksFetches()).toBe(before + 1);
    expect((await get('', basic('ci', await github.sign(githubClaims(github.issuer), { kid: 'gh-1' })))).statusCode).toBe(200);
    expect(github.jwksFetches()).toBe(before + 1);
  });

  it('comes from discovery (.well-known/openid-configuration under the issuer path)', () => {
    expect(k8s.requests).toContain('/k8s/.well-known/openid-configuration');
    expect(k8s.requests).toContain('/k8s/jwks');
  });
});

describe('an issuer that cannot be reached: 503, fail closed', () => {
  it('answers 503 UNAVAILABLE with Retry-After when the issuer is down', async () => {
    await gone.close();
    const token = await gone.sign(githubClaims(gone.issuer));
    const res = await get('scope=repository:myorg/app:pull', basic('ci', token));
    expect(res.statusCode, res.body).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({ errors: [{ code: 'UNAVAILABLE' }] });
    expect(audit.last()).toMatchObject({ result: 'error' });
    expect(audit.last().reason).toMatch(/^trusted issuer gone: cannot fetch the discovery document at http:\/\/127\.0\.0\.1:\d+\/\.well-known\/openid-configuration/);
  });

  it('does not keep using keys past jwks_refresh when the issuer goes down later', async () => {
    const first = await flaky.sign(githubClaims(flaky.issuer));
    expect((await get('', basic('ci', first))).statusCode).toBe(200);
    await flaky.close();
    // Still cached: fine.
    expect((await get('', basic('ci', await flaky.sign(githubClaims(flaky.issuer))))).statusCode).toBe(200);
    clock += 61_000;
    const res = await get('', basic('ci', await flaky.sign(githubClaims(flaky.issuer))));
    expect(res.statusCode).toBe(503);
    expect(audit.last().reason).toMatch(/^trusted issuer flaky: cannot fetch the JWKS at http:\/\/127\.0\.0\.1:\d+\/jwks/);
  });

  it('times a slow JWKS out and answers 503', async () => {
    slow.jwksDelayMs = 5_000;
    const started = Date.now();
    const res = await get('', basic('ci', await slow.sign(githubClaims(slow.issuer))));
    const took = Date.now() - started;
    expect(res.statusCode, res.body).toBe(503);
    expect(audit.last().reason).toMatch(/^trusted issuer slow: no answer within 1000 ms for the JWKS at /);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(4_000);
    // Once the issuer answers in time again, its tokens work.
    slow.jwksDelayMs = 0;
    expect((await get('', basic('ci', await slow.sign(githubClaims(slow.issuer))))).statusCode).toBe(200);
  });
});
