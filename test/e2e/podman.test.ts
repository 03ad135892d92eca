// End to end: podman 4.3 (as root, vfs storage in a temporary folder, no daemon) against Debian's
// distribution 2.8 registry, which trusts tokens from our server. The image is pushed with skopeo
// first, so that podman's own pull, tag and push are what these cases exercise.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent, KeyKind } from '../../src/index.js';
import { startAuthServer, type RunningAuthServer } from './harness/auth-server.js';
import { createClientSession, explain, type ClientSession } from './harness/clients.js';
import { buildOciLayout, type OciLayout } from './harness/oci-image.js';
import { startRegistry, type RunningRegistry } from './harness/registry.js';
import { diagnose } from './harness/diagnose.js';
import { Teardown } from './harness/teardown.js';
import { requireBinaries, requireRoot } from './harness/require-binary.js';

const KEY_KINDS: readonly KeyKind[] = ['ec-p256', 'rsa-2048'];
const SETUP_TIMEOUT = 120_000;
const CASE_TIMEOUT = 90_000;

const newPassword = () => randomBytes(12).toString('base64url');

const since = (audit: AuditEvent[], from: number) => audit.slice(from);


describe.each(KEY_KINDS)('podman ↔ registry 2.8 ↔ sts-docker-auth, %s key', (keyKind) => {
  const teardown = new Teardown();
  const alicePassword = newPassword();
  const readerPassword = newPassword();
  let auth: RunningAuthServer;
  let registry: RunningRegistry;
  let clients: ClientSession;
  let image: OciLayout;
  let repo: string;
  let readerAuthFile: string;

  beforeAll(async () => {
    requireRoot('the podman e2e suite (rootful podman with vfs storage)');
    await requireBinaries(['docker-registry', 'skopeo', 'podman']);
    auth = teardown.defer(
      await startAuthServer({
        keyKind,
        users: { alice: alicePassword, reader: readerPassword },
        acl: [
          { match: { account: 'alice' }, actions: ['*'] },
          { match: { account: 'reader' }, actions: ['pull'] },
        ],
      }),
      (a) => a.close(),
    );
    registry = teardown.defer(await startRegistry(auth), (r) => r.stop());
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    image = teardown.defer(await buildOciLayout({ content: `podman e2e ${keyKind}\n` }), (i) => i.remove());
    repo = `${registry.host}/alice/tiny`;
    readerAuthFile = clients.authFileFor('reader');
    const push = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${alicePassword}`, image.reference, `docker://${repo}:v1`,
    ]);
    if (push.code !== 0 || !(await registry.hasTag('alice/tiny', 'v1'))) {
      throw new Error(`setup push with skopeo failed: ${diagnose(push, auth, registry, 0)}`);
    }
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('refuses podman login with a wrong password', async () => {
    const authFile = clients.authFileFor('bad');
    const from = auth.audit.length;
    const r = await clients.podman(['login', '--tls-verify=false', '-u', 'alice', '--password-stdin', registry.host], {
      stdin: `${alicePassword}-wrong`,
      authFile,
    });
    expect(r.code, diagnose(r, auth, registry, from)).not.toBe(0);
    expect(since(auth.audit, from)).toContainEqual(expect.objectContaining({ account: 'alice', result: 'unauthorized' }));
    expect(await readFile(authFile, 'utf8').catch(() => '{}')).not.toContain(registry.host);
  }, CASE_TIMEOUT);

  it('logs in with podman login --password-stdin', async () => {
    const from = auth.audit.length;
    const r = await clients.podman(['login', '--tls-verify=false', '-u', 'alice', '--password-stdin', registry.host], {
      stdin: alicePassword,
    });
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect(since(auth.audit, from)).toContainEqual(expect.objectContaining({ account: 'alice', result: 'issued', requested: [] }));
    const saved = JSON.parse(await readFile(clients.authFile, 'utf8')) as { auths?: Record<string, unknown> };
    expect(Object.keys(saved.auths ?? {})).toContain(registry.host);
  }, CASE_TIMEOUT);

  it('pulls the image with the stored credentials', async () => {
    const from = auth.audit.length;
    const r = await clients.podman(['pull', '--tls-verify=false', `${repo}:v1`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect(since(auth.audit, from)).toContainEqual(
      expect.objectContaining({ account: 'alice', result: 'issued', granted: ['repository:alice/tiny:pull'] }),
    );
    const inspect = await clients.podman(['image', 'inspect', '--format', '{{.Digest}}', `${repo}:v1`]);
    expect(inspect.code, explain(inspect)).toBe(0);
    expect(inspect.stdout.trim()).toBe(image.manifestDigest);
  }, CASE_TIMEOUT);

  it('tags and pushes a new tag', async () => {
    const tag = await clients.podman(['tag', `${repo}:v1`, `${repo}:v2`]);
    expect(tag.code, explain(tag)).toBe(0);
    const from = auth.audit.length;
    const r = await clients.podman(['push', '--tls-verify=false', `${repo}:v2`]);
    expect(r.code, diagnose(r, auth, registry, from)).toBe(0);
    expect(await registry.hasTag('alice/tiny', 'v2')).toBe(true);

    const tags = await clients.skopeo(['list-tags', '--tls-verify=false', '--creds', `alice:${alicePassword}`, `docker://${repo}`]);
    expect(tags.code, explain(tags)).toBe(0);
    expect((JSON.parse(tags.stdout) as { Tags: string[] }).Tags.sort()).toEqual(['v1', 'v2']);
  }, CASE_TIMEOUT);

  it('lets the pull-only user log in but denies its pushes', async () => {
    const login = await clients.podman(['login', '--tls-verify=false', '-u', 'reader', '--password-stdin', registry.host], {
      stdin: readerPassword,
      authFile: readerAuthFile,
    });
    expect(login.code, explain(login)).toBe(0);

    const from = auth.audit.length;
    const own = await clients.podman(['push', '--tls-verify=false', `${repo}:v1`, `docker://${registry.host}/reader/x:v1`], {
      authFile: readerAuthFile,
    });
    expect(own.code, diagnose(own, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('reader/x', 'v1')).toBe(false);

    const theirs = await clients.podman(['push', '--tls-verify=false', `${repo}:v1`, `docker://${repo}:v3`], {
      authFile: readerAuthFile,
    });
    expect(theirs.code, diagnose(theirs, auth, registry, from)).not.toBe(0);
    expect(await registry.hasTag('alice/tiny', 'v3')).toBe(false);

    // reader was recognised every time; it was only never granted push.
    const events = since(auth.audit, from);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.account === 'reader' && e.result === 'issued')).toBe(true);
    expect(events.flatMap((e) => e.granted).filter((g) => g.includes('push'))).toEqual([]);
  }, CASE_TIMEOUT);
});
