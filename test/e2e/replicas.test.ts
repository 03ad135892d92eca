// End to end: two server processes (`sts-docker-auth serve`, as an operator runs them) sharing
// one PostgreSQL store and one signing key, administered through the built CLI. Replicas share
// nothing but the store: what one side writes (a user, an access token, a revocation, a refresh
// token) must hold on the other at the very next request.
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importX509, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explain, type RunResult } from './harness/clients.js';
import { createTestDatabase, databaseExists, type TestDatabase } from './harness/postgres.js';
import { requireBuiltCli, runCli, startServerProcess, writeServerFiles, type ServerFiles, type ServerProcess } from './harness/server-process.js';
import { Teardown } from './harness/teardown.js';

const SETUP_TIMEOUT = 60_000;
const CASE_TIMEOUT = 30_000;

interface TokenBody {
  token?: string;
  access_token?: string;
  refresh_token?: string;
  errors?: { code: string }[];
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('two replicas sharing a PostgreSQL store', () => {
  const teardown = new Teardown();
  const alicePassword = randomBytes(12).toString('base64url');
  let db: TestDatabase;
  let files: ServerFiles;
  let replicaA: ServerProcess;
  let replicaB: ServerProcess;
  let secret: string;
  let tokenId: string;

  const cli = (args: string[], stdin?: string): Promise<RunResult> =>
    runCli([...args, '--config', files.configPath], stdin === undefined ? {} : { stdin });
  const logsOf = () => `\nreplica A: ${replicaA.logs().slice(-3000)}\nreplica B: ${replicaB.logs().slice(-3000)}`;

  /** A GET token request, with the one audit event the replica logged for it. */
  async function getToken(replica: ServerProcess, query: Record<string, string>, authorization?: string) {
    const from = replica.audit().length;
    const params = new URLSearchParams({ service: files.service, ...query });
    const res = await fetch(`${replica.realm}?${params.toString()}`, { headers: authorization ? { authorization } : {} });
    const body = (await res.json()) as TokenBody;
    const events = await replica.waitForAudit(from);
    expect(events).toHaveLength(1);
    return { status: res.status, body, event: events[0] };
  }

  async function verified(jwt: string | undefined) {
    if (!jwt) throw new Error('no token in the response');
    const key = await importX509(files.certPem, 'ES256');
    const { payload } = await jwtVerify(jwt, key, { issuer: files.issuer, audience: files.service });
    return payload as { sub?: string; access?: { type: string; name: string; actions: string[] }[] };
  }

  beforeAll(async () => {
    await requireBuiltCli();
    db = teardown.defer(await createTestDatabase(), async (d) => {
      await d.drop();
      if (await databaseExists(d.name)) throw new Error(`database ${d.name} still exists after the drop`);
    });
    const dir = teardown.defer(await mkdtemp(join(tmpdir(), 'sts-e2e-replicas-')), (d) => rm(d, { recursive: true, force: true }));
    files = await writeServerFiles(dir, {
      store: { driver: 'postgres', url: db.url, pool_size: 4 },
      acl: [{ match: { account: 'alice', name: 'alice/*' }, actions: ['pull', 'push'] }],
    });
    // Both at once on an empty database: they race to migrate it, as replicas rolled out together do.
    [replicaA, replicaB] = await Promise.all([
      startServerProcess(files.configPath, { name: 'replica A' }),
      startServerProcess(files.configPath, { name: 'replica B' }),
    ]);
    teardown.defer(replicaA, (p) => p.stop());
    teardown.defer(replicaB, (p) => p.stop());
    expect(replicaA.url).not.toBe(replicaB.url);

    const added = await cli(['users', 'add', 'alice'], alicePassword);
    expect(added.code, explain(added)).toBe(0);
    expect(added.stdout.trim()).toBe('added user alice');

    const created = await cli(['tokens', 'create', '--user', 'alice', '--name', 'ci', '--scope', 'repository:alice/*:pull,push', '--expires', '1d']);
    expect(created.code, explain(created)).toBe(0);
    // The secret alone on stdout; the rest (id, scopes, expiry) on stderr.
    secret = created.stdout.trim();
    expect(secret).toMatch(/^stsat_[A-Za-z0-9_-]+$/);
    expect(created.stderr).toContain('created access token');

    const listed = await cli(['tokens', 'list', '--json']);
    expect(listed.code, explain(listed)).toBe(0);
    const tokens = JSON.parse(listed.stdout) as { id: string; name: string; user: string; revokedAt: string | null }[];
    expect(tokens).toEqual([expect.objectContaining({ name: 'ci', user: 'alice', revokedAt: null })]);
    expect(listed.stdout).not.toContain(secret);
    tokenId = tokens[0]?.id ?? '';
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('both replicas accept the user created through the CLI', async () => {
    for (const replica of [replicaA, replicaB]) {
      const { status, body, event } = await getToken(replica, { scope: 'repository:alice/tiny:pull' }, basic('alice', alicePassword));
      expect(status, JSON.stringify(body) + logsOf()).toBe(200);
      const claims = await verified(body.token);
      expect(claims.sub).toBe('alice');
      expect(claims.access).toEqual([{ type: 'repository', name: 'alice/tiny', actions: ['pull'] }]);
      expect(event).toMatchObject({ method: 'GET', account: 'alice', backend: 'store', result: 'issued' });
    }
  }, CASE_TIMEOUT);

  it('both replicas issue tokens for the access token, within its scopes', async () => {
    for (const replica of [replicaA, replicaB]) {
      const { status, body, event } = await getToken(
        replica,
        { scope: 'repository:alice/tiny:pull,push' },
        basic('alice', secret),
      );
      expect(status, JSON.stringify(body) + logsOf()).toBe(200);
      const claims = await verified(body.token);
      expect(claims.sub).toBe('alice');
      expect(claims.access).toEqual([{ type: 'repository', name: 'alice/tiny', actions: ['pull', 'push'] }]);
      expect(event).toMatchObject({ account: 'alice', backend: `access-token:${tokenId}`, result: 'issued' });
    }
  }, CASE_TIMEOUT);

  it('refuses the access token on replica B at the very next request after a CLI revoke', async () => {
    const revoked = await cli(['tokens', 'revoke', tokenId]);
    expect(revoked.code, explain(revoked)).toBe(0);
    expect(revoked.stdout.trim()).toBe(`revoked access token ${tokenId}`);

    // No wait, no retry: the first request after the revoke.
    const onB = await getToken(replicaB, { scope: 'repository:alice/tiny:pull' }, basic('alice', secret));
    expect(onB.status, JSON.stringify(onB.body) + logsOf()).toBe(401);
    expect(onB.body.errors?.[0]?.code).toBe('UNAUTHORIZED');
    expect(onB.body.token).toBeUndefined();
    expect(onB.event).toMatchObject({ account: 'alice', result: 'unauthorized', reason: `access token ${tokenId} is revoked` });

    const onA = await getToken(replicaA, { scope: 'repository:alice/tiny:pull' }, basic('alice', secret));
    expect(onA.status).toBe(401);
    expect(onA.event).toMatchObject({ result: 'unauthorized', reason: `access token ${tokenId} is revoked` });

    const listed = await cli(['tokens', 'list', '--json']);
    const [token] = JSON.parse(listed.stdout) as { revokedAt: string | null; lastUsedAt: string | null }[];
    expect(token?.revokedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(token?.lastUsedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  }, CASE_TIMEOUT);

  it('accepts on replica B a refresh token issued by replica A, and stops it on both once revoked', async () => {
    const issued = await getToken(replicaA, { offline_token: 'true', client_id: 'docker', account: 'alice' }, basic('alice', alicePassword));
    expect(issued.status, JSON.stringify(issued.body) + logsOf()).toBe(200);
    const refreshToken = issued.body.refresh_token ?? '';
    expect(refreshToken).toMatch(/^stsrt_/);

    const refresh = async (replica: ServerProcess) => {
      const from = replica.audit().length;
      const res = await fetch(replica.realm, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body: new URLSearchParams({
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
          service: files.service,
          client_id: 'docker',
          scope: 'repository:alice/tiny:pull',
        }).toString(),
      });
      const body = (await res.json()) as TokenBody;
      const events = await replica.waitForAudit(from);
      expect(events).toHaveLength(1);
      return { status: res.status, body, event: events[0] };
    };

    const onB = await refresh(replicaB);
    expect(onB.status, JSON.stringify(onB.body) + logsOf()).toBe(200);
    // Never rotated: the grant hands back the token it was given.
    expect(onB.body.refresh_token).toBe(refreshToken);
    const claims = await verified(onB.body.access_token);
    expect(claims.sub).toBe('alice');
    expect(claims.access).toEqual([{ type: 'repository', name: 'alice/tiny', actions: ['pull'] }]);
    expect(onB.event).toMatchObject({ method: 'POST', account: 'alice', backend: 'refresh-token', result: 'issued' });

    const listed = await cli(['refresh-tokens', 'list', '--json']);
    expect(listed.code, explain(listed)).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ user: 'alice', clientId: 'docker', service: files.service, revokedAt: null })]);
    expect(listed.stdout).not.toContain(refreshToken);

    const revoked = await cli(['refresh-tokens', 'revoke', '--user', 'alice']);
    expect(revoked.code, explain(revoked)).toBe(0);
    expect(revoked.stdout.trim()).toBe('revoked 1 refresh token');
    for (const replica of [replicaB, replicaA]) {
      const after = await refresh(replica);
      expect(after.status, JSON.stringify(after.body)).toBe(401);
      expect(after.body.access_token).toBeUndefined();
      expect(after.event).toMatchObject({ method: 'POST', result: 'unauthorized', reason: expect.stringMatching(/refresh token rt_\S+ is revoked/) });
    }
  }, CASE_TIMEOUT);
});
