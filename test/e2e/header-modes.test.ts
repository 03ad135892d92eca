// Which JWT header modes distribution 2.8 accepts, with the registry configured by the block that
// `registry-config` prints (protocol.md §3.3): x5c and the libtrust kid work; an RFC 7638 kid is
// for distribution 3.x and is refused by 2.8.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distribution2Block, type KeyKind } from '../../src/index.js';
import { fetchToken, startAuthServer, type RunningAuthServer } from './harness/auth-server.js';
import { startRegistry, type RunningRegistry } from './harness/registry.js';
import { requireBinaries } from './harness/require-binary.js';

const CASES: Array<[KeyKind, 'x5c' | 'libtrust' | 'thumbprint', number]> = [
  ['ec-p256', 'x5c', 200],
  ['ec-p256', 'libtrust', 200],
  ['ec-p256', 'thumbprint', 401],
  ['rsa-2048', 'x5c', 200],
  ['rsa-2048', 'libtrust', 200],
];

describe.each(CASES)('%s key, jwt_header %s, registry 2.8 configured from registry-config', (keyKind, jwtHeader, expected) => {
  let auth: RunningAuthServer;
  let registry: RunningRegistry;
  let dir: string;

  beforeAll(async () => {
    await requireBinaries(['docker-registry']);
    dir = await mkdtemp(join(tmpdir(), 'sts-e2e-modes-'));
    auth = await startAuthServer({ keyKind, jwtHeader, users: { admin: 'admin-pw' }, acl: [{ match: { account: 'admin' }, actions: ['*'] }] });
    const bundlePath = join(dir, 'bundle.crt');
    await writeFile(bundlePath, auth.loaded.signingKey.certificatePem);
    const authBlock = distribution2Block(auth.loaded, { realm: auth.realm, bundlePath });
    registry = await startRegistry({ realm: auth.realm, service: auth.service, issuer: auth.issuer, certPem: auth.certPem, authBlock });
  }, 60_000);

  afterAll(async () => {
    await registry?.stop();
    await auth?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(`the registry answers ${expected} to the catalog with our token`, async () => {
    const { status, token } = await fetchToken(auth, ['registry:catalog:*'], { username: 'admin', password: 'admin-pw' });
    expect(status).toBe(200);
    const res = await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(expected);
    if (expected === 200) expect(await res.json()).toEqual({ repositories: [] });
    else expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('the registry refuses a token whose signature was tampered with', async () => {
    const { token } = await fetchToken(auth, ['registry:catalog:*'], { username: 'admin', password: 'admin-pw' });
    const [h, c, s] = (token ?? '').split('.');
    const claims = JSON.parse(Buffer.from(c ?? '', 'base64url').toString());
    claims.sub = 'someone-else';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    const res = await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${forged}` } });
    expect(res.status).toBe(401);
  });
});
