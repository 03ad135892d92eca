// End to end: a CI job's ID token as the password. A local OIDC issuer on 127.0.0.1 (discovery +
// JWKS) signs a token in GitHub Actions shape; skopeo 1.9 pushes with `--dest-creds ci:<token>` to
// Debian's distribution 2.8 registry, which trusts our server's tokens. What the ACL allows is
// pushed (checked in the registry's storage), what it does not is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JWTPayload } from 'jose';
import type { AuditEvent } from '../../src/index.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { startAuthServer, type RunningAuthServer } from './harness/auth-server.js';
import { createClientSession, explain, type ClientSession, type RunResult } from './harness/clients.js';
import { buildOciLayout, type OciLayout } from './harness/oci-image.js';
import { startRegistry, type RunningRegistry } from './harness/registry.js';
import { requireBinaries } from './harness/require-binary.js';
import { Teardown } from './harness/teardown.js';

const SETUP_TIMEOUT = 120_000;
const CASE_TIMEOUT = 60_000;
const SERVICE = 'sts-e2e-registry';

const since = (audit: AuditEvent[], from: number) => audit.slice(from);

function diagnose(result: RunResult, auth: RunningAuthServer, registry: RunningRegistry, from: number): string {
  return `${explain(result)}\naudit: ${JSON.stringify(since(auth.audit, from))}\nregistry log: ${registry.logs().slice(-2000)}`;
}

describe('skopeo ↔ registry 2.8 ↔ sts-docker-auth with a CI ID token as the password', () => {
  const teardown = new Teardown();
  let issuer: TestIssuer;
  let auth: RunningAuthServer;
  let registry: RunningRegistry;
  let clients: ClientSession;
  let image: OciLayout;

  /** A GitHub Actions-shaped ID token for `repository`, valid for five minutes. */
  const idToken = (repository: string, overrides: JWTPayload = {}) => {
    const now = Math.floor(Date.now() / 1000);
    const owner = repository.split('/')[0] ?? '';
    return issuer.sign({
      iss: issuer.issuer,
      aud: SERVICE,
      sub: `repo:${repository}:ref:refs/heads/main`,
      repository,
      repository_owner: owner,
      ref: 'refs/heads/main',
      workflow: 'release',
      actor: 'octocat',
      iat: now,
      nbf: now,
      exp: now + 300,
      ...overrides,
    });
  };

  beforeAll(async () => {
    await requireBinaries(['docker-registry', 'skopeo']);
    issuer = teardown.defer(await startIssuer(), (i) => i.close());
    await issuer.addKey('RS256', 'ci-key-1');
    auth = teardown.defer(
      await startAuthServer({
        keyKind: 'ec-p256',
        service: SERVICE,
        users: {},
        acl: [
          { match: { labels: { issuer: 'github', repository: 'myorg/app' }, name: 'myorg/app' }, actions: ['pull', 'push'], comment: 'CI of myorg/app' },
          { match: { account: '/^gha:/' }, actions: ['pull'], comment: 'CI jobs may pull everything' },
        ],
        configExtra: {
          trusted_issuers: [
            {
              name: 'github',
              issuer: issuer.issuer,
              allow_insecure_http: true,
              audience: SERVICE,
              required_claims: { repository_owner: 'myorg', ref: 'refs/heads/main' },
              account: 'gha:${claims.repository}',
              labels: { repository: '${claims.repository}', ref: '${claims.ref}' },
            },
          ],
        },
      }),
      (a) => a.close(),
    );
    registry = teardown.defer(await startRegistry(auth), (r) => r.stop());
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    image = teardown.defer(await buildOciLayout(), (i) => i.remove());
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('pushes to the repository the job is allowed, with no stored secret', async () => {
    const from = auth.audit.length;
    const token = await idToken('myorg/app');
    const r = await clients.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `ci:${token}`, image.reference, `docker://${registry.host}/myorg/app:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect(await registry.hasTag('myorg/app', 'v1')).toBe(true);
    const events = since(auth.audit, from);
    expect(events).toContainEqual(
      expect.objectContaining({ account: 'gha:myorg/app', backend: 'workload:github', result: 'issued', granted: expect.arrayContaining(['repository:myorg/app:pull,push']) }),
    );
    // The ID token never reaches the audit trail.
    expect(JSON.stringify(events)).not.toContain(token.split('.')[2]);
  }, CASE_TIMEOUT);

  it('is refused a push to any other repository', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `ci:${await idToken('myorg/app')}`, image.reference, `docker://${registry.host}/myorg/other:v1`,
    ]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('myorg/other', 'v1')).toBe(false);
    const events = since(auth.audit, from);
    expect(events.length).toBeGreaterThan(0);
    // Authenticated, but the rules grant no push there.
    for (const event of events) {
      expect(event).toMatchObject({ account: 'gha:myorg/app', result: 'issued' });
      expect(event.granted.filter((scope) => scope.includes('push'))).toEqual([]);
    }
  }, CASE_TIMEOUT);

  it('pulls back what it pushed', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', `ci:${await idToken('myorg/app')}`, `docker://${registry.host}/myorg/app:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
  }, CASE_TIMEOUT);

  it("refuses a job of another organisation's repository (required_claims) with 401", async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `ci:${await idToken('evil/app')}`, image.reference, `docker://${registry.host}/myorg/app:v2`,
    ]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('myorg/app', 'v2')).toBe(false);
    expect(since(auth.audit, from)).toContainEqual(
      expect.objectContaining({ result: 'unauthorized', reason: expect.stringContaining('claim repository_owner "evil" does not match') }),
    );
    expect(since(auth.audit, from).filter((e) => e.result === 'issued')).toEqual([]);
  }, CASE_TIMEOUT);
});
