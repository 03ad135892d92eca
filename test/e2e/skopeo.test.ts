// End to end: skopeo 1.9 against Debian's distribution 2.8 registry, which trusts tokens from our
// server. Every case checks what really happened (exit code and the registry's storage or audit).
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent, KeyKind } from '../../src/index.js';
import { fetchToken, startAuthServer, type RunningAuthServer } from './harness/auth-server.js';
import { createClientSession, type ClientSession } from './harness/clients.js';
import { buildOciLayout, type OciLayout } from './harness/oci-image.js';
import { startRegistry, type RunningRegistry } from './harness/registry.js';
import { diagnose } from './harness/diagnose.js';
import { Teardown } from './harness/teardown.js';
import { requireBinaries } from './harness/require-binary.js';

const KEY_KINDS: readonly KeyKind[] = ['ec-p256', 'rsa-2048'];
const SETUP_TIMEOUT = 120_000;
const CASE_TIMEOUT = 60_000;

const newPassword = () => randomBytes(12).toString('base64url');
const sha256 = (text: string) => `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;

/** The audit events written since `from`, for asserting on one client command. */
const since = (audit: AuditEvent[], from: number) => audit.slice(from);


describe.each(KEY_KINDS)('skopeo ↔ registry 2.8 ↔ sts-docker-auth, %s key', (keyKind) => {
  const teardown = new Teardown();
  const alicePassword = newPassword();
  const readerPassword = newPassword();
  let auth: RunningAuthServer;
  let registry: RunningRegistry;
  let clients: ClientSession;
  let image: OciLayout;
  let repo: string;

  beforeAll(async () => {
    await requireBinaries(['docker-registry', 'skopeo']);
    auth = teardown.defer(
      await startAuthServer({
        keyKind,
        users: { alice: alicePassword, reader: readerPassword },
        acl: [
          { match: { account: 'alice' }, actions: ['*'], comment: 'admin: every repository and the catalog' },
          { match: { account: 'reader' }, actions: ['pull'] },
        ],
      }),
      (a) => a.close(),
    );
    registry = teardown.defer(await startRegistry(auth), (r) => r.stop());
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    image = teardown.defer(await buildOciLayout(), (i) => i.remove());
    repo = `${registry.host}/alice/tiny`;
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('logs in with the right password', async () => {
    const authFile = clients.authFileFor('login-ok');
    const from = auth.audit.length;
    const r = await clients.skopeo(['login', '--tls-verify=false', '--authfile', authFile, '-u', 'alice', '--password-stdin', registry.host], {
      stdin: alicePassword,
    });
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    // A login asks for a token without scope, and the registry accepted it on /v2/.
    expect(since(auth.audit, from)).toContainEqual(expect.objectContaining({ account: 'alice', result: 'issued', requested: [] }));
    const saved = JSON.parse(await readFile(authFile, 'utf8')) as { auths?: Record<string, unknown> };
    expect(Object.keys(saved.auths ?? {})).toContain(registry.host);
  }, CASE_TIMEOUT);

  it('refuses a login with a wrong password', async () => {
    const authFile = clients.authFileFor('login-bad');
    const from = auth.audit.length;
    const r = await clients.skopeo(['login', '--tls-verify=false', '--authfile', authFile, '-u', 'alice', '--password-stdin', registry.host], {
      stdin: `${alicePassword}-wrong`,
    });
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(since(auth.audit, from)).toContainEqual(expect.objectContaining({ account: 'alice', result: 'unauthorized' }));
    expect(since(auth.audit, from).filter((e) => e.result === 'issued')).toEqual([]);
    const saved = await readFile(authFile, 'utf8').catch(() => '{}');
    expect(saved).not.toContain(registry.host);
  }, CASE_TIMEOUT);

  it('pushes an OCI image as alice, keeping its manifest digest', async () => {
    const digestFile = join(clients.dir, `pushed-${keyKind}.digest`);
    const from = auth.audit.length;
    const r = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${alicePassword}`, '--digestfile', digestFile,
      image.reference, `docker://${repo}:v1`,
    ]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect((await readFile(digestFile, 'utf8')).trim()).toBe(image.manifestDigest);
    expect(await registry.hasTag('alice/tiny', 'v1')).toBe(true);
    expect(since(auth.audit, from)).toContainEqual(
      expect.objectContaining({ account: 'alice', result: 'issued', granted: expect.arrayContaining(['repository:alice/tiny:pull,push']) }),
    );
  }, CASE_TIMEOUT);

  it('pulls the image back with the same manifest digest', async () => {
    const from = auth.audit.length;
    const target = join(clients.dir, `pulled-${keyKind}`);
    const r = await clients.skopeo([
      'copy', '--src-tls-verify=false', '--src-creds', `alice:${alicePassword}`, `docker://${repo}:v1`, `oci:${target}:v1`,
    ]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    const index = JSON.parse(await readFile(join(target, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests.map((m) => m.digest)).toEqual([image.manifestDigest]);

    const raw = await clients.skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', `alice:${alicePassword}`, `docker://${repo}:v1`]);
    expect(raw.code, diagnose(raw, auth, registry, from)).toBe(0);
    expect(sha256(raw.stdout)).toBe(image.manifestDigest);
  }, CASE_TIMEOUT);

  it('lists the pushed tag', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['list-tags', '--tls-verify=false', '--creds', `alice:${alicePassword}`, `docker://${repo}`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect((JSON.parse(r.stdout) as { Tags: string[] }).Tags).toEqual(['v1']);
  }, CASE_TIMEOUT);

  it('lets the pull-only user pull', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', `reader:${readerPassword}`, `docker://${repo}:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect(sha256(r.stdout)).toBe(image.manifestDigest);
  }, CASE_TIMEOUT);

  it('denies the pull-only user a push to its own namespace', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `reader:${readerPassword}`, image.reference, `docker://${registry.host}/reader/x:v1`,
    ]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('reader/x', 'v1')).toBe(false);
    // The token server authenticated reader and granted only pull: a partial grant is no error.
    const events = since(auth.audit, from);
    expect(events).toContainEqual(expect.objectContaining({ account: 'reader', result: 'issued' }));
    expect(events.flatMap((e) => e.granted).filter((g) => g.includes('push'))).toEqual([]);
  }, CASE_TIMEOUT);

  it("denies the pull-only user a push to alice's repository", async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `reader:${readerPassword}`, image.reference, `docker://${repo}:v2`,
    ]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('alice/tiny', 'v2')).toBe(false);
  }, CASE_TIMEOUT);

  it('denies an anonymous pull when no anonymous account is configured', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${repo}:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(r.stdout).not.toContain('schemaVersion');
    expect(since(auth.audit, from)).toContainEqual(expect.objectContaining({ account: '', result: 'unauthorized' }));
    expect(since(auth.audit, from).filter((e) => e.result === 'issued')).toEqual([]);
  }, CASE_TIMEOUT);

  it('fails a push with a wrong password', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${alicePassword}-wrong`, image.reference, `docker://${repo}:v3`,
    ]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('alice/tiny', 'v3')).toBe(false);
    expect(since(auth.audit, from)).toContainEqual(expect.objectContaining({ account: 'alice', result: 'unauthorized' }));
    expect(since(auth.audit, from).filter((e) => e.result === 'issued')).toEqual([]);
  }, CASE_TIMEOUT);

  it('lets the admin read the catalog with a registry:catalog:* token', async () => {
    const { status, token, body } = await fetchToken(auth, ['registry:catalog:*'], { username: 'alice', password: alicePassword });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(token).toBeTypeOf('string');
    const res = await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${token ?? ''}` } });
    const text = await res.text();
    expect(res.status, text).toBe(200);
    expect((JSON.parse(text) as { repositories: string[] }).repositories).toContain('alice/tiny');
  }, CASE_TIMEOUT);

  it('keeps the catalog from the pull-only user (insufficient_scope)', async () => {
    const { status, token, body } = await fetchToken(auth, ['registry:catalog:*'], { username: 'reader', password: readerPassword });
    // No permission is not an error at the token server: reader gets a token without the catalog.
    expect(status, JSON.stringify(body)).toBe(200);
    const res = await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${token ?? ''}` } });
    const text = await res.text();
    expect(res.status, text).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    expect(text).not.toContain('alice/tiny');
  }, CASE_TIMEOUT);

  it('denies the pull-only user a delete', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['delete', '--tls-verify=false', '--creds', `reader:${readerPassword}`, `docker://${repo}:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('alice/tiny', 'v1')).toBe(true);
  }, CASE_TIMEOUT);

  // Last on purpose: deleting the manifest removes every tag that points at it.
  it('lets the admin delete, expanding the requested repository:…:* into explicit actions', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['delete', '--tls-verify=false', '--creds', `alice:${alicePassword}`, `docker://${repo}:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect(await registry.hasTag('alice/tiny', 'v1')).toBe(false);
    const events = since(auth.audit, from);
    // containers/image asks for `*` to delete; zot would not read a granted `*`, so it must come back spelled out.
    expect(events.flatMap((e) => e.requested)).toContain('repository:alice/tiny:*');
    const granted = events.flatMap((e) => e.granted).filter((g) => g.startsWith('repository:alice/tiny:'));
    expect(granted.some((g) => g.split(':').pop()?.split(',').includes('delete'))).toBe(true);
    expect(granted.join(' ')).not.toContain('*');
  }, CASE_TIMEOUT);
});

// One key kind is enough here: the signing path is the same as above, only the ACL differs.
describe('skopeo anonymous pull with an anonymous account configured (ec-p256)', () => {
  const teardown = new Teardown();
  const alicePassword = newPassword();
  let auth: RunningAuthServer;
  let registry: RunningRegistry;
  let clients: ClientSession;
  let image: OciLayout;
  let repo: string;

  beforeAll(async () => {
    await requireBinaries(['docker-registry', 'skopeo']);
    auth = teardown.defer(
      await startAuthServer({
        keyKind: 'ec-p256',
        users: { alice: alicePassword, '': null },
        acl: [
          { match: { account: 'alice' }, actions: ['*'] },
          { match: { account: '' }, actions: ['pull'], comment: 'anonymous may pull' },
        ],
      }),
      (a) => a.close(),
    );
    registry = teardown.defer(await startRegistry(auth), (r) => r.stop());
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    image = teardown.defer(await buildOciLayout({ content: 'anonymous pull e2e\n' }), (i) => i.remove());
    repo = `${registry.host}/alice/tiny`;
    const push = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${alicePassword}`, image.reference, `docker://${repo}:v1`,
    ]);
    if (push.code !== 0) throw new Error(`setup push failed: ${diagnose(push, auth, registry, 0)}`);
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('pulls without credentials', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${repo}:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect(sha256(r.stdout)).toBe(image.manifestDigest);
    expect(since(auth.audit, from)).toContainEqual(
      expect.objectContaining({ account: '', result: 'issued', granted: ['repository:alice/tiny:pull'] }),
    );
  }, CASE_TIMEOUT);

  it('still denies an anonymous push', async () => {
    const from = auth.audit.length;
    const r = await clients.skopeo(['copy', '--dest-tls-verify=false', '--dest-no-creds', image.reference, `docker://${repo}:anon`]);
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('alice/tiny', 'anon')).toBe(false);
  }, CASE_TIMEOUT);
});
