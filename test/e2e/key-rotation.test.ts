// Key rotation without downtime, as an operator does it: a data folder from `init`, a real server
// process, Debian's distribution 2.8 registry configured from `registry-config`, skopeo pushing
// and pulling. `keys rotate` stages a key in the bundle, the registry restarts to read it, `keys
// activate` switches the running server (it watches keyring.json), and requests made all along
// keep working: tokens of the old key included, until they expire.
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientSession, explain, type ClientSession, type RunResult } from './harness/clients.js';
import { buildOciLayout, type OciLayout } from './harness/oci-image.js';
import { startRegistry, type RunningRegistry } from './harness/registry.js';
import { requireBinaries } from './harness/require-binary.js';
import { runCli, startServerProcess, type ServerProcess } from './harness/server-process.js';
import { Teardown } from './harness/teardown.js';

const SETUP_TIMEOUT = 120_000;
const CASE_TIMEOUT = 90_000;

interface KeyRow {
  state: string;
  kid: string;
  thumbprint: string;
}

const headerOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString()) as { kid: string; x5c?: string[] };

describe('key rotation with a running server, registry 2.8 and skopeo', () => {
  const teardown = new Teardown();
  let dir: string;
  let config: string;
  let password: string;
  let server: ServerProcess;
  let registry: RunningRegistry;
  let authBlock: string;
  let clients: ClientSession;
  let image: OciLayout;

  const cli = async (...args: string[]): Promise<RunResult> => {
    const r = await runCli([...args, '--config', config]);
    expect(r.code, explain(r)).toBe(0);
    return r;
  };
  const keys = async (): Promise<KeyRow[]> => JSON.parse((await cli('keys', 'list', '--json')).stdout) as KeyRow[];
  const token = async (scope = 'registry:catalog:*'): Promise<string> => {
    const url = `${server.realm}?service=docker-registry&scope=${encodeURIComponent(scope)}`;
    const res = await fetch(url, { headers: { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` } });
    expect(res.status).toBe(200);
    return ((await res.json()) as { token: string }).token;
  };
  const catalogWith = async (bearer: string) => (await fetch(`${registry.url}/v2/_catalog`, { headers: { authorization: `Bearer ${bearer}` } })).status;
  const restartRegistry = async () => {
    await registry.stop();
    registry = await startRegistry({ realm: server.realm, service: 'docker-registry', issuer: 'sts-docker-auth', certPem: '', authBlock });
  };
  const skopeo = async (args: string[]) => {
    const r = await clients.skopeo(args);
    expect(r.code, `${explain(r)}\nserver: ${server.logs().slice(-2000)}\nregistry: ${registry.logs().slice(-2000)}`).toBe(0);
  };

  beforeAll(async () => {
    await requireBinaries(['docker-registry', 'skopeo']);
    dir = teardown.defer(await mkdtemp(join(tmpdir(), 'sts-e2e-rotation-')), (d) => rm(d, { recursive: true, force: true }));
    const data = join(dir, 'data');
    const init = await runCli(['init', '--data-dir', data]);
    expect(init.code, explain(init)).toBe(0);
    password = /admin password, shown only this once: (\S+)/.exec(init.stdout + init.stderr)?.[1] as string;
    expect(password).toBeTruthy();
    config = join(data, 'config.yml');
    server = teardown.defer(await startServerProcess(config), (s) => s.stop());
    authBlock = (await cli('registry-config', '--format', 'distribution2', '--realm', server.realm)).stdout.replace(/^#.*\n/, '');
    expect(authBlock).toContain(join(data, 'keys', 'bundle.pem'));
    registry = await startRegistry({ realm: server.realm, service: 'docker-registry', issuer: 'sts-docker-auth', certPem: '', authBlock });
    teardown.defer(undefined, () => registry.stop());
    clients = teardown.defer(await createClientSession(), (c) => c.cleanup());
    image = teardown.defer(await buildOciLayout(), (i) => i.remove());
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('rotates the signing key while clients keep working, old tokens included', async () => {
    const [first] = await keys();
    expect(first?.state).toBe('active');
    // What the server loaded is what keyring.json says: no second load at start.
    expect(server.logs()).not.toContain('changed during start');
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${password}`, image.reference, `docker://${registry.host}/admin/app:v1`]);
    const oldToken = await token();
    expect(headerOf(oldToken).kid).toBe(first?.kid);

    // Staged: in the bundle and the JWKS, but the server still signs with the first key.
    await cli('keys', 'rotate');
    const staged = (await keys()).find((k) => k.state === 'staged') as KeyRow;
    expect(staged).toBeDefined();
    const bundle = await readFile(join(dir, 'data', 'keys', 'bundle.pem'), 'utf8');
    expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const jwks = JSON.parse(await readFile(join(dir, 'data', 'keys', 'jwks.json'), 'utf8')) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([first?.kid, staged.kid].sort());
    expect(headerOf(await token()).kid).toBe(first?.kid);

    // The registry reads the new bundle (a new registry: its storage starts empty); tokens of the
    // first key still pass.
    await restartRegistry();
    expect(await catalogWith(oldToken)).toBe(200);
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${password}`, image.reference, `docker://${registry.host}/admin/app:v1`]);

    // Requests all along the switch: none may fail.
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      while (!stop) statuses.push(await catalogWith(await token()));
    })();
    await cli('keys', 'activate', staged.thumbprint.slice(0, 10));
    const deadline = Date.now() + 10_000;
    let newToken = await token();
    while (headerOf(newToken).kid !== staged.kid && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      newToken = await token();
    }
    stop = true;
    await load;
    expect(headerOf(newToken).kid, server.logs().slice(-2000)).toBe(staged.kid);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(server.logs()).toContain('a new signing key is active');

    // Both generations of tokens work, and real clients do too.
    expect(await catalogWith(newToken)).toBe(200);
    expect(await catalogWith(oldToken)).toBe(200);
    const rows = await keys();
    expect(rows.map((k) => [k.kid, k.state])).toEqual([
      [first?.kid, 'retiring'],
      [staged.kid, 'active'],
    ]);
    await skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', `admin:${password}`, `docker://${registry.host}/admin/app:v1`]);
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `admin:${password}`, image.reference, `docker://${registry.host}/admin/app:v2`]);
    expect(await registry.hasTag('admin/app', 'v2')).toBe(true);

    // zot reads only the first certificate of a bundle: the signing key is first.
    const after = await readFile(join(dir, 'data', 'keys', 'bundle.pem'), 'utf8');
    const x5c = headerOf(newToken).x5c?.[0] as string;
    expect(after.split('-----END CERTIFICATE-----')[0]?.replace(/-----BEGIN CERTIFICATE-----|\s/g, '')).toBe(x5c);
  }, CASE_TIMEOUT);

  it('a registry that never read the new bundle refuses the new key: the reason for staging', async () => {
    const lagging = await startRegistry({
      realm: server.realm,
      service: 'docker-registry',
      issuer: 'sts-docker-auth',
      certPem: (await readFile(join(dir, 'data', 'keys', 'bundle.pem'), 'utf8')).split(/(?<=-----END CERTIFICATE-----\n)/)[1] as string,
    });
    try {
      const res = await fetch(`${lagging.url}/v2/_catalog`, { headers: { authorization: `Bearer ${await token()}` } });
      expect(res.status).toBe(401);
    } finally {
      await lagging.stop();
    }
  }, CASE_TIMEOUT);
});
