// End to end: containerd 1.6 (`ctr`, a private daemon) pulling from Debian's distribution 2.8
// registry that trusts our tokens. containerd asks with an OAuth2 POST password grant first
// (client_id containerd-client) and falls back to GET when the POST is answered 404, which is
// what `token.allow_post: false` does. The image is pushed with skopeo first.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/index.js';
import { startAuthServer, type RunningAuthServer } from './harness/auth-server.js';
import { createClientSession, explain, type ClientSession, type RunResult } from './harness/clients.js';
import { startContainerd, type ContainerdDaemon } from './harness/containerd.js';
import { buildOciLayout, type OciLayout } from './harness/oci-image.js';
import { startRegistry, type RunningRegistry } from './harness/registry.js';
import { requireBinaries, requireRoot } from './harness/require-binary.js';
import { Teardown } from './harness/teardown.js';

const SETUP_TIMEOUT = 120_000;
const CASE_TIMEOUT = 60_000;

interface Rig {
  auth: RunningAuthServer;
  registry: RunningRegistry;
}

/** The digest `ctr images ls` shows for a reference, or undefined when it has no such image. */
async function imageDigest(containerd: ContainerdDaemon, ref: string): Promise<string | undefined> {
  const r = await containerd.ctr(['images', 'ls']);
  if (r.code !== 0) throw new Error(explain(r));
  for (const line of r.stdout.split('\n').slice(1)) {
    const [name, , digest] = line.trim().split(/\s+/);
    if (name === ref) return digest;
  }
  return undefined;
}

/** A refresh token for alice, asked for as docker login does (GET with offline_token=true). */
async function refreshTokenFor(auth: RunningAuthServer, password: string): Promise<string> {
  const query = new URLSearchParams({ service: auth.service, offline_token: 'true', client_id: 'docker', account: 'alice' });
  const res = await fetch(`${auth.realm}?${query.toString()}`, {
    headers: { authorization: `Basic ${Buffer.from(`alice:${password}`).toString('base64')}` },
  });
  const body = (await res.json()) as { refresh_token?: unknown };
  if (res.status !== 200 || typeof body.refresh_token !== 'string') throw new Error(`no refresh token: ${res.status} ${JSON.stringify(body)}`);
  return body.refresh_token;
}

describe('containerd (ctr) ↔ registry 2.8 ↔ sts-docker-auth', () => {
  const teardown = new Teardown();
  const alicePassword = randomBytes(12).toString('base64url');
  let containerd: ContainerdDaemon;
  let clients: ClientSession;
  let image: OciLayout;

  /** An auth server (store user alice) with its own registry, holding alice/tiny:v1. */
  async function startRig(allowPost: boolean): Promise<Rig> {
    const auth = teardown.defer(
      await startAuthServer({
        keyKind: 'ec-p256',
        users: {},
        acl: [{ match: { account: 'alice', name: 'alice/*' }, actions: ['pull', 'push'] }],
        sqliteStore: true,
        storeUsers: { alice: alicePassword },
        allowPost,
      }),
      (a) => a.close(),
    );
    const registry = teardown.defer(await startRegistry(auth), (r) => r.stop());
    const push = await clients.skopeo([
      'copy', '--dest-tls-verify=false', '--dest-creds', `alice:${alicePassword}`, image.reference, `docker://${registry.host}/alice/tiny:v1`,
    ]);
    if (push.code !== 0) throw new Error(`setup push failed: ${explain(push)}`);
    return { auth, registry };
  }

  function diagnose(result: RunResult, rig: Rig, from: { audit: number; requests: number }): string {
    return (
      `${explain(result)}\naudit: ${JSON.stringify(rig.auth.audit.slice(from.audit))}` +
      `\nrequests: ${JSON.stringify(rig.auth.requests.slice(from.requests))}` +
      `\nregistry log: ${rig.registry.logs().slice(-2000)}\ncontainerd log: ${containerd.logs().slice(-2000)}`
    );
  }

  const mark = (rig: Rig) => ({ audit: rig.auth.audit.length, requests: rig.auth.requests.length });
  /** `ctr images pull` of a reference it does not hold yet, with `--user u:p` or `--refresh <token>`. */
  async function pull(ref: string, credentials: { user: string } | { refresh: string }): Promise<RunResult> {
    const rm = await containerd.ctr(['images', 'rm', ref]);
    if (rm.code !== 0 && !/not found/i.test(rm.stderr)) throw new Error(explain(rm));
    const flags = 'user' in credentials ? ['--user', credentials.user] : ['--refresh', credentials.refresh];
    return containerd.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'native', ...flags, ref], { timeoutMs: 45_000 });
  }

  beforeAll(async () => {
    requireRoot('the containerd e2e suite (a private containerd daemon)');
    await requireBinaries(['docker-registry', 'skopeo', 'containerd', 'ctr']);
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    image = teardown.defer(await buildOciLayout({ content: 'containerd e2e\n' }), (i) => i.remove());
    containerd = teardown.defer(await startContainerd(), (c) => c.stop());
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  describe('with POST allowed (the default)', () => {
    let rig: Rig;
    beforeAll(async () => {
      rig = await startRig(true);
    }, SETUP_TIMEOUT);

    it('pulls with --user alice:<password> through a POST password grant', async () => {
      const ref = `${rig.registry.host}/alice/tiny:v1`;
      const from = mark(rig);
      const r = await pull(ref, { user: `alice:${alicePassword}` });
      expect(r.code, diagnose(r, rig, from)).toBe(0);
      expect(await imageDigest(containerd, ref)).toBe(image.manifestDigest);

      const events: AuditEvent[] = rig.auth.audit.slice(from.audit);
      expect(events.length).toBeGreaterThan(0);
      // Every token came from a POST; none needed the GET fallback.
      for (const event of events) {
        expect(event).toMatchObject({ method: 'POST', client_id: 'containerd-client', account: 'alice', backend: 'store', result: 'issued' });
      }
      expect(events.flatMap((e) => e.granted)).toContain('repository:alice/tiny:pull');
      const sent = rig.auth.requests.slice(from.requests).filter((q) => q.path === '/auth');
      for (const request of sent) {
        expect(request).toMatchObject({
          method: 'POST',
          status: 200,
          form: expect.objectContaining({ grant_type: ['password'], username: ['alice'], password: ['***'], client_id: ['containerd-client'] }),
        });
      }
    }, CASE_TIMEOUT);

    it('pulls with --user alice:<access token>: no bcrypt, the token named in the audit', async () => {
      const admin = rig.auth.admin;
      if (!admin) throw new Error('the auth server has no store');
      const { secret, record } = await admin.createToken({ user: 'alice', name: 'ctr', scopes: ['repository:alice/*:pull'], expiresIn: 3600 }, 'e2e');
      const ref = `${rig.registry.host}/alice/tiny:v1`;
      const from = mark(rig);
      const r = await pull(ref, { user: `alice:${secret}` });
      expect(r.code, diagnose(r, rig, from)).toBe(0);
      expect(await imageDigest(containerd, ref)).toBe(image.manifestDigest);
      const events: AuditEvent[] = rig.auth.audit.slice(from.audit);
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) expect(event).toMatchObject({ method: 'POST', backend: `access-token:${record.id}`, result: 'issued' });

      await admin.revokeToken(record.id, 'e2e');
      const after = mark(rig);
      const refused = await pull(ref, { user: `alice:${secret}` });
      expect(refused.code, diagnose(refused, rig, after)).not.toBe(0);
      expect(rig.auth.audit.slice(after.audit).filter((e) => e.result === 'issued')).toEqual([]);
    }, CASE_TIMEOUT);

    it('fails with a wrong password, trying POST then GET', async () => {
      const ref = `${rig.registry.host}/alice/tiny:v1`;
      const from = mark(rig);
      const r = await pull(ref, { user: `alice:${alicePassword}-wrong` });
      expect(r.code, diagnose(r, rig, from)).not.toBe(0);
      expect(await imageDigest(containerd, ref)).toBeUndefined();
      const events = rig.auth.audit.slice(from.audit);
      expect(events.filter((e) => e.result === 'issued')).toEqual([]);
      // containerd retries a POST answered 401 as GET (protocol.md §4.2): both are refused.
      expect(events).toContainEqual(expect.objectContaining({ method: 'POST', account: 'alice', result: 'unauthorized' }));
      expect(events).toContainEqual(expect.objectContaining({ method: 'GET', account: 'alice', result: 'unauthorized' }));
    }, CASE_TIMEOUT);

    it('pulls with --refresh <identity token> through a POST refresh grant', async () => {
      const refreshToken = await refreshTokenFor(rig.auth, alicePassword);
      const ref = `${rig.registry.host}/alice/tiny:v1`;
      const from = mark(rig);
      const r = await pull(ref, { refresh: refreshToken });
      expect(r.code, diagnose(r, rig, from)).toBe(0);
      expect(await imageDigest(containerd, ref)).toBe(image.manifestDigest);
      const events = rig.auth.audit.slice(from.audit);
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) {
        expect(event).toMatchObject({ method: 'POST', client_id: 'containerd-client', account: 'alice', backend: 'refresh-token', result: 'issued' });
      }
      for (const request of rig.auth.requests.slice(from.requests).filter((q) => q.path === '/auth')) {
        expect(request).toMatchObject({ method: 'POST', status: 200, form: expect.objectContaining({ grant_type: ['refresh_token'] }) });
        // An identity token travels without a user name.
        expect(request.form?.username).toBeUndefined();
      }
    }, CASE_TIMEOUT);
  });

  describe('with token.allow_post: false', () => {
    let rig: Rig;
    beforeAll(async () => {
      rig = await startRig(false);
    }, SETUP_TIMEOUT);

    it('pulls through the GET fallback after the POST is answered 404', async () => {
      const ref = `${rig.registry.host}/alice/tiny:v1`;
      const from = mark(rig);
      const r = await pull(ref, { user: `alice:${alicePassword}` });
      expect(r.code, diagnose(r, rig, from)).toBe(0);
      expect(await imageDigest(containerd, ref)).toBe(image.manifestDigest);

      const events = rig.auth.audit.slice(from.audit);
      expect(events.filter((e) => e.method === 'POST')).toEqual([]);
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) {
        expect(event).toMatchObject({ method: 'GET', account: 'alice', backend: 'store', result: 'issued' });
      }
      expect(events.flatMap((e) => e.granted)).toContain('repository:alice/tiny:pull');
      // On the wire: the POST came and got 404, then a GET with Basic credentials.
      const sent = rig.auth.requests.slice(from.requests).filter((q) => q.path === '/auth');
      expect(sent.filter((q) => q.method === 'POST').map((q) => q.status)).toContain(404);
      expect(sent.filter((q) => q.method === 'POST' && q.status !== 404)).toEqual([]);
      expect(sent).toContainEqual(expect.objectContaining({ method: 'GET', basicUser: 'alice', status: 200 }));
      expect(sent.findIndex((q) => q.method === 'POST')).toBeLessThan(sent.findIndex((q) => q.method === 'GET'));
    }, CASE_TIMEOUT);

    it('pulls with --refresh <identity token> through the GET fallback, sent as Basic ":<token>"', async () => {
      const refreshToken = await refreshTokenFor(rig.auth, alicePassword);
      const ref = `${rig.registry.host}/alice/tiny:v1`;
      const from = mark(rig);
      const r = await pull(ref, { refresh: refreshToken });
      expect(r.code, diagnose(r, rig, from)).toBe(0);
      expect(await imageDigest(containerd, ref)).toBe(image.manifestDigest);
      const events = rig.auth.audit.slice(from.audit);
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) {
        expect(event).toMatchObject({ method: 'GET', account: 'alice', backend: 'refresh-token', result: 'issued' });
      }
      const sent = rig.auth.requests.slice(from.requests).filter((q) => q.path === '/auth');
      expect(sent.filter((q) => q.method === 'POST').map((q) => q.status)).toContain(404);
      expect(sent).toContainEqual(expect.objectContaining({ method: 'GET', basicUser: '', status: 200 }));
    }, CASE_TIMEOUT);
  });
});
