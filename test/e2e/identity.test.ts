// End to end: machine and long-lived credentials against Debian's distribution 2.8 registry, with
// our server keeping users, refresh tokens and access tokens in a SQLite store.
//
// - docker CLI `docker login` with no engine (as on CI): the refresh token we hand out becomes
//   config.json's `identitytoken` and the password is not kept.
// - skopeo and podman with that identity token: every token comes from a POST refresh grant.
// - revoking the refresh tokens stops them at once.
// - an access token (stsat_…) used as a password is limited to its own scopes and stops at revocation.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/index.js';
import { startAuthServer, type RecordedRequest, type RunningAuthServer } from './harness/auth-server.js';
import { createClientSession, explain, type ClientSession, type RunResult } from './harness/clients.js';
import { createDockerCliSession, type DockerCliSession } from './harness/docker-cli.js';
import { buildOciLayout, type OciLayout } from './harness/oci-image.js';
import { startRegistry, type RunningRegistry } from './harness/registry.js';
import { requireBinaries, requireRoot } from './harness/require-binary.js';
import { Teardown } from './harness/teardown.js';

const SETUP_TIMEOUT = 120_000;
const CASE_TIMEOUT = 60_000;

const sha256 = (text: string) => `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;

describe('identity tokens and access tokens ↔ registry 2.8 ↔ sts-docker-auth with a SQLite store', () => {
  const teardown = new Teardown();
  const alicePassword = randomBytes(12).toString('base64url');
  let auth: RunningAuthServer;
  let registry: RunningRegistry;
  let clients: ClientSession;
  let docker: DockerCliSession;
  let image: OciLayout;
  let repo: string;
  /** The containers auth file made from docker login's config.json entry. */
  let identityAuthFile: string;
  let identityToken: string;

  const audit = (from: number): AuditEvent[] => auth.audit.slice(from);
  const requests = (from: number): RecordedRequest[] => auth.requests.slice(from).filter((r) => r.path === '/auth');
  const diagnose = (result: RunResult, from: { audit: number; requests: number }) =>
    `${explain(result)}\naudit: ${JSON.stringify(auth.audit.slice(from.audit))}\nrequests: ${JSON.stringify(auth.requests.slice(from.requests))}` +
    `\nregistry log: ${registry.logs().slice(-2000)}`;
  const mark = () => ({ audit: auth.audit.length, requests: auth.requests.length });

  beforeAll(async () => {
    requireRoot('the identity e2e suite (rootful podman with vfs storage)');
    await requireBinaries(['docker-registry', 'skopeo', 'podman', 'docker']);
    auth = teardown.defer(
      await startAuthServer({
        keyKind: 'ec-p256',
        users: {},
        acl: [{ match: { account: 'alice' }, actions: ['*'], comment: 'alice may do anything; her access token may not' }],
        sqliteStore: true,
        storeUsers: { alice: alicePassword },
      }),
      (a) => a.close(),
    );
    registry = teardown.defer(await startRegistry(auth), (r) => r.stop());
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    docker = teardown.defer(await createDockerCliSession(), (d) => d.cleanup());
    image = teardown.defer(await buildOciLayout({ content: 'identity token e2e\n' }), (i) => i.remove());
    repo = `${registry.host}/alice/tiny`;
    identityAuthFile = clients.authFileFor('identity');
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  describe('docker login → identity token', () => {
    it('docker login without an engine keeps an stsrt_ identity token and no password', async () => {
      const from = mark();
      const r = await docker.login(registry.host, 'alice', alicePassword);
      expect(r.code, diagnose(r, from)).toBe(0);

      const config = await docker.readConfig();
      const entry = config?.auths?.[registry.host];
      expect(entry, JSON.stringify(config)).toBeDefined();
      expect(entry?.identitytoken).toMatch(/^stsrt_[A-Za-z0-9_-]{20,}$/);
      // The user name stays (`alice:`), the password does not: not in `auth`, nowhere in the file.
      expect(Buffer.from(entry?.auth ?? '', 'base64').toString('utf8')).toBe('alice:');
      expect(Object.keys(entry ?? {}).sort()).toEqual(['auth', 'identitytoken']);
      expect(await readFile(join(docker.configDir, 'config.json'), 'utf8')).not.toContain(alicePassword);

      // The wire: one GET asking for an offline token, as docker's login does, and no scope.
      const sent = requests(from.requests);
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({
        method: 'GET',
        basicUser: 'alice',
        status: 200,
        query: expect.objectContaining({ offline_token: ['true'], client_id: ['docker'], account: ['alice'] }),
      });
      expect(sent[0]?.query.scope).toBeUndefined();
      expect(audit(from.audit)).toEqual([
        expect.objectContaining({ method: 'GET', client_id: 'docker', account: 'alice', backend: 'store', result: 'issued', requested: [] }),
      ]);
      // What the server remembers of it: one refresh token for alice, this service and client.
      const stored = await auth.admin?.listRefreshTokens('alice');
      expect(stored).toEqual([expect.objectContaining({ user: 'alice', service: auth.service, clientId: 'docker', revokedAt: null })]);

      identityToken = entry?.identitytoken ?? '';
      // containers/image ignores an identitytoken unless `auth` (with `user:`) sits beside it.
      await writeFile(identityAuthFile, JSON.stringify({ auths: { [registry.host]: { auth: entry?.auth, identitytoken: identityToken } } }));
    }, CASE_TIMEOUT);

    it('docker login with a wrong password fails and stores nothing', async () => {
      const other = await createDockerCliSession();
      try {
        const from = mark();
        const r = await other.login(registry.host, 'alice', `${alicePassword}-wrong`);
        expect(r.code, diagnose(r, from)).not.toBe(0);
        expect(r.stderr).toMatch(/unauthorized|invalid username or password/i);
        expect((await other.readConfig())?.auths?.[registry.host]).toBeUndefined();
        expect(audit(from.audit)).toEqual([expect.objectContaining({ method: 'GET', account: 'alice', result: 'unauthorized' })]);
        expect(await auth.admin?.listRefreshTokens('alice')).toHaveLength(1);
      } finally {
        await other.cleanup();
      }
    }, CASE_TIMEOUT);

    it('skopeo pushes with the identity token: POST refresh grants only', async () => {
      expect(identityToken, 'docker login must have run first').toMatch(/^stsrt_/);
      const from = mark();
      const r = await clients.skopeo(['copy', '--dest-tls-verify=false', image.reference, `docker://${repo}:v1`], { authFile: identityAuthFile });
      expect(r.code, diagnose(r, from)).toBe(0);
      expect(await registry.hasTag('alice/tiny', 'v1')).toBe(true);

      const events = audit(from.audit);
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) {
        expect(event).toMatchObject({ method: 'POST', backend: 'refresh-token', account: 'alice', client_id: 'containers/image', result: 'issued' });
      }
      expect(events.flatMap((e) => e.granted)).toContain('repository:alice/tiny:pull,push');
      for (const sent of requests(from.requests)) {
        expect(sent).toMatchObject({ method: 'POST', status: 200, form: expect.objectContaining({ grant_type: ['refresh_token'], refresh_token: ['***'] }) });
      }
    }, CASE_TIMEOUT);

    it('skopeo and podman pull with the identity token, and podman pushes', async () => {
      const from = mark();
      const inspect = await clients.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${repo}:v1`], { authFile: identityAuthFile });
      expect(inspect.code, diagnose(inspect, from)).toBe(0);
      expect(sha256(inspect.stdout)).toBe(image.manifestDigest);

      const pull = await clients.podman(['pull', '--tls-verify=false', `${repo}:v1`], { authFile: identityAuthFile });
      expect(pull.code, diagnose(pull, from)).toBe(0);
      const digest = await clients.podman(['image', 'inspect', '--format', '{{.Digest}}', `${repo}:v1`]);
      expect(digest.code, explain(digest)).toBe(0);
      expect(digest.stdout.trim()).toBe(image.manifestDigest);

      const push = await clients.podman(['push', '--tls-verify=false', `${repo}:v1`, `docker://${registry.host}/alice/podman:v1`], {
        authFile: identityAuthFile,
      });
      expect(push.code, diagnose(push, from)).toBe(0);
      expect(await registry.hasTag('alice/podman', 'v1')).toBe(true);

      const events = audit(from.audit);
      expect(events.length).toBeGreaterThan(0);
      expect(events.filter((e) => e.method !== 'POST' || e.backend !== 'refresh-token' || e.result !== 'issued')).toEqual([]);
      expect(events.flatMap((e) => e.granted)).toEqual(expect.arrayContaining(['repository:alice/tiny:pull', 'repository:alice/podman:pull,push']));
      // Never rotated (protocol.md §1.4): still the one token docker login got.
      expect((await auth.admin?.listRefreshTokens('alice'))?.map((t) => t.revokedAt)).toEqual([null]);
    }, CASE_TIMEOUT * 2);

    it('once alice’s refresh tokens are revoked, the identity token is refused', async () => {
      const revoked = await auth.admin?.revokeRefreshTokens({ user: 'alice' }, 'e2e');
      expect(revoked).toBe(1);
      const from = mark();
      const inspect = await clients.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${repo}:v1`], { authFile: identityAuthFile });
      expect(inspect.code, diagnose(inspect, from)).not.toBe(0);
      expect(inspect.stdout).not.toContain('schemaVersion');

      const pull = await clients.podman(['pull', '--tls-verify=false', `${registry.host}/alice/podman:v1`], { authFile: identityAuthFile });
      expect(pull.code, diagnose(pull, from)).not.toBe(0);

      const events = audit(from.audit);
      expect(events.length).toBeGreaterThan(0);
      expect(events.filter((e) => e.result === 'issued')).toEqual([]);
      for (const event of events) {
        expect(event).toMatchObject({ method: 'POST', result: 'unauthorized', reason: expect.stringMatching(/refresh token rt_\S+ is revoked/) });
      }
      expect(requests(from.requests).every((r) => r.status === 401)).toBe(true);
    }, CASE_TIMEOUT);
  });

  describe('access token (stsat_…) as the password', () => {
    let secret: string;
    let tokenId: string;

    beforeAll(async () => {
      const admin = auth.admin;
      if (!admin) throw new Error('the auth server has no store');
      const created = await admin.createToken({ user: 'alice', name: 'ci', scopes: ['repository:alice/*:pull,push'], expiresIn: 3600 }, 'e2e');
      secret = created.secret;
      tokenId = created.record.id;
      expect(secret).toMatch(/^stsat_/);
    });

    it('pulls with skopeo copy --src-creds alice:<token>', async () => {
      const from = mark();
      const target = join(clients.dir, 'pulled-with-access-token');
      const r = await clients.skopeo(['copy', '--src-tls-verify=false', '--src-creds', `alice:${secret}`, `docker://${repo}:v1`, `oci:${target}:v1`]);
      expect(r.code, diagnose(r, from)).toBe(0);
      const index = JSON.parse(await readFile(join(target, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      expect(index.manifests.map((m) => m.digest)).toEqual([image.manifestDigest]);
      const events = audit(from.audit);
      expect(events).toContainEqual(
        expect.objectContaining({ method: 'GET', account: 'alice', backend: `access-token:${tokenId}`, result: 'issued', granted: ['repository:alice/tiny:pull'] }),
      );
      expect(events.filter((e) => e.result !== 'issued')).toEqual([]);
      const [listed] = (await auth.admin?.listTokens('alice')) ?? [];
      expect(listed?.id).toBe(tokenId);
    }, CASE_TIMEOUT);

    it('pushes inside its scope and is denied a push outside it, though alice herself may', async () => {
      const inside = mark();
      const ok = await clients.skopeo([
        'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${secret}`, image.reference, `docker://${registry.host}/alice/ci:v1`,
      ]);
      expect(ok.code, diagnose(ok, inside)).toBe(0);
      expect(await registry.hasTag('alice/ci', 'v1')).toBe(true);

      const outside = mark();
      const denied = await clients.skopeo([
        'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${secret}`, image.reference, `docker://${registry.host}/shared/tiny:v1`,
      ]);
      expect(denied.code, diagnose(denied, outside)).not.toBe(0);
      expect(await registry.hasTag('shared/tiny', 'v1')).toBe(false);
      const events = audit(outside.audit);
      // Authenticated and answered (a partial grant is no error), but nothing on shared/tiny.
      expect(events).toContainEqual(
        expect.objectContaining({
          account: 'alice',
          backend: `access-token:${tokenId}`,
          result: 'issued',
          reason: expect.stringContaining("limited by the access token's scopes"),
        }),
      );
      // Not even pull: the token's scope is alice/* only.
      expect(events.flatMap((e) => e.granted).filter((g) => g.startsWith('repository:shared/'))).toEqual([]);

      // The same push with alice's password succeeds: the token's scopes, not her rules, refused it.
      const withPassword = mark();
      const allowed = await clients.skopeo([
        'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${alicePassword}`, image.reference, `docker://${registry.host}/shared/tiny:v1`,
      ]);
      expect(allowed.code, diagnose(allowed, withPassword)).toBe(0);
      expect(await registry.hasTag('shared/tiny', 'v1')).toBe(true);
    }, CASE_TIMEOUT * 2);

    it('docker login and podman take it as the password, and no refresh token is traded for it', async () => {
      const before = (await auth.admin?.listRefreshTokens('alice'))?.length;
      const from = mark();
      const login = await docker.login(registry.host, 'alice', secret);
      expect(login.code, diagnose(login, from)).toBe(0);
      const entry = (await docker.readConfig())?.auths?.[registry.host];
      // No identity token: docker keeps the access token itself, which stays limited and revocable.
      expect(entry?.identitytoken).toBeUndefined();
      expect(Buffer.from(entry?.auth ?? '', 'base64').toString('utf8')).toBe(`alice:${secret}`);
      expect((await auth.admin?.listRefreshTokens('alice'))?.length).toBe(before);

      const authFile = clients.authFileFor('access-token');
      await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: entry?.auth } } }));
      const pull = await clients.podman(['pull', '--tls-verify=false', `${repo}:v1`], { authFile });
      expect(pull.code, diagnose(pull, from)).toBe(0);
      const events = audit(from.audit);
      expect(events.length).toBeGreaterThan(1);
      for (const event of events) expect(event).toMatchObject({ account: 'alice', backend: `access-token:${tokenId}`, result: 'issued' });
    }, CASE_TIMEOUT);

    it('is refused at the next pull once revoked', async () => {
      await auth.admin?.revokeToken(tokenId, 'e2e');
      const from = mark();
      const target = join(clients.dir, 'pulled-after-revoke');
      const r = await clients.skopeo(['copy', '--src-tls-verify=false', '--src-creds', `alice:${secret}`, `docker://${repo}:v1`, `oci:${target}:v1`]);
      expect(r.code, diagnose(r, from)).not.toBe(0);
      const events = audit(from.audit);
      expect(events.length).toBeGreaterThan(0);
      expect(events.filter((e) => e.result === 'issued')).toEqual([]);
      expect(events).toContainEqual(
        expect.objectContaining({ method: 'GET', account: 'alice', result: 'unauthorized', reason: `access token ${tokenId} is revoked` }),
      );
      const [listed] = (await auth.admin?.listTokens('alice')) ?? [];
      expect(listed?.revokedAt).not.toBeNull();
    }, CASE_TIMEOUT);
  });
});
