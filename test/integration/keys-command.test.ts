// `sts-docker-auth keys …` on real files, and a server (in process) following the keyring: by
// reload after `keys activate`, and on its own at the time token.keyring.activation_delay sets.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { access, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer, type StsServer } from '../../src/server/app.js';
import { generateSigningKey } from '../../src/token/generate.js';
import { basic, MemoryAudit } from '../helpers/server.js';
import { baseConfig, decodeJwt, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

interface KeyRow {
  state: string;
  kid: string;
  thumbprint: string;
  source: string;
  key_file: string;
  certificate_file: string;
  activates: string | null;
  trusted_until: string | null;
  certificate_expires: string;
}

let keys: KeyDir;
let configPath: string;

async function writeTestConfig(token: Record<string, unknown>): Promise<void> {
  const base = baseConfig();
  const config = { ...base, token: { ...base.token, ...token }, users: { alice: { password: await hash('alice-pw') } }, acl: [{ match: { account: 'alice' }, actions: ['*'] }] };
  await writeFile(configPath, stringify(config));
}

const cli = (...args: string[]) => runCli([...args, '--config', configPath], { env: { STS_DATA_DIR: '', STS_ADDR: '' } });
async function list(): Promise<KeyRow[]> {
  const r = await cli('keys', 'list', '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as KeyRow[];
}
const exists = (file: string) => access(file).then(() => true, () => false);
const bundleCerts = async () =>
  ((await readFile(join(keys.dir, 'keys', 'bundle.pem'), 'utf8')).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (pem) => new X509Certificate(pem),
  );

beforeEach(async () => {
  keys = await makeKeyDir();
  configPath = join(keys.dir, 'config.yml');
});
afterEach(() => keys.cleanup());

describe('keys commands', () => {
  it('need token.keyring, and say how to set it', async () => {
    await writeTestConfig({});
    const r = await cli('keys', 'list');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('token.keyring is not set; add `keyring: {dir: keys}` under token');
  });

  it('take token.key as the oldest key, stage a new one in bundle and JWKS, then switch', async () => {
    await writeTestConfig({ keyring: { dir: 'keys' } });
    const [config] = await list();
    expect(config).toMatchObject({ state: 'active', source: 'token.key', key_file: join(keys.dir, 'token.key'), certificate_file: join(keys.dir, 'token.crt'), activates: 'token.key' });
    expect(config?.certificate_expires).toBe(new Date(new X509Certificate(keys.certPem).validTo).toISOString());

    const rotated = await cli('keys', 'rotate');
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/staged ES256 key \S+ \(kid [A-Z2-7:]+\)/);
    expect(rotated.stdout).toContain('keys activate');
    const [, staged] = await list();
    expect(staged).toMatchObject({ state: 'staged', activates: null });
    expect(await bundleCerts()).toHaveLength(2);
    expect((await bundleCerts())[0]?.checkPrivateKey(createPrivateKey(keys.keyPem))).toBe(true);
    const jwks = JSON.parse(await readFile(join(keys.dir, 'keys', 'jwks.json'), 'utf8')) as { keys: Array<{ kid: string; d?: string }> };
    expect(jwks.keys.map((k) => k.kid)).toEqual([config?.kid, staged?.kid]);
    expect(jwks.keys.some((k) => k.d !== undefined)).toBe(false);
    // The private key is for the owner only.
    expect(staged?.key_file).toMatch(new RegExp(`^${keys.dir}/keys/key-\\d{8}T\\d{6}Z-[0-9a-f]{6}\\.key$`));
    expect((await stat(staged?.key_file ?? '')).mode & 0o077).toBe(0);
    expect(new X509Certificate(await readFile(staged?.certificate_file ?? '')).checkPrivateKey(createPrivateKey(await readFile(staged?.key_file ?? '')))).toBe(true);

    const again = await cli('keys', 'rotate');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`key ${staged?.thumbprint} is already staged`);

    const activated = await cli('keys', 'activate');
    expect(activated.code, activated.stderr).toBe(0);
    const rows = await list();
    expect(rows.map((k) => [k.thumbprint, k.state])).toEqual([
      [config?.thumbprint, 'retiring'],
      [staged?.thumbprint, 'active'],
    ]);
    // Trusted for the token lifetime (300 s) and the registries' clock skew (60 s).
    const until = Date.parse(rows[0]?.trusted_until ?? '') - Date.parse(rows[1]?.activates ?? '');
    expect(until).toBeGreaterThanOrEqual(359_000);
    expect(until).toBeLessThanOrEqual(361_000);
    // The signing key comes first in the bundle (zot reads only that one).
    expect(await bundleCerts()).toHaveLength(2);
    const loaded = await loadConfig(configPath);
    expect(loaded.signingKey.thumbprint).toBe(staged?.thumbprint);
    expect((await bundleCerts())[0]?.serialNumber).toBe(loaded.signingKey.certificate.serialNumber);

    const removeActive = await cli('keys', 'remove', (staged as KeyRow).thumbprint.slice(0, 8));
    expect(removeActive.code).toBe(1);
    expect(removeActive.stderr).toContain('signs now: activate another one first');
    const removeConfig = await cli('keys', 'remove', (config as KeyRow).thumbprint.slice(0, 8));
    expect(removeConfig.code).toBe(1);
    expect(removeConfig.stderr).toContain('is token.key in');
  });

  it('roll back to the key of token.key while it is still trusted', async () => {
    await writeTestConfig({ keyring: { dir: 'keys' } });
    const [config] = await list();
    expect((await cli('keys', 'rotate')).code).toBe(0);
    expect((await cli('keys', 'activate')).code).toBe(0);
    const back = await cli('keys', 'activate', (config as KeyRow).kid.slice(0, 9).toLowerCase());
    expect(back.code, back.stderr).toBe(0);
    const rows = await list();
    expect(rows.map((k) => k.state)).toEqual(['retiring', 'active']);
    expect(rows[1]?.thumbprint).toBe(config?.thumbprint);
    // The keyring took a copy: the history lives in one place.
    expect(rows[1]?.key_file).toMatch(/keys\/config-\d{8}T\d{6}Z\.key$/);
    expect(rows[1]?.source).toBe('keyring');
    expect((await loadConfig(configPath)).signingKey.thumbprint).toBe(config?.thumbprint);

    // The key it replaced is retiring: kept, unless --force (a stolen key) takes it out of the bundle.
    const retiring = rows[0] as KeyRow;
    const refused = await cli('keys', 'remove', retiring.thumbprint.slice(0, 8));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('is retiring: tokens it signed are still in use; --force removes it anyway');
    const forced = await cli('keys', 'remove', retiring.thumbprint.slice(0, 8), '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect((await list()).map((k) => k.thumbprint)).toEqual([config?.thumbprint]);
    expect(await bundleCerts()).toHaveLength(1);
  });

  it('prune deletes retired keys and their files; remove deletes a staged key', async () => {
    await writeTestConfig({ keyring: { dir: 'keys' } });
    expect((await cli('keys', 'rotate')).code).toBe(0);
    expect((await cli('keys', 'activate')).code).toBe(0);
    expect((await cli('keys', 'rotate')).code).toBe(0);
    // Move the first activation two days back: the key it replaced is long retired.
    const manifestPath = join(keys.dir, 'keys', 'keyring.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { keys: Array<{ key: string; created: string; activated?: string }> };
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000).toISOString();
    Object.assign(manifest.keys[0] as object, { created: twoDaysAgo, activated: twoDaysAgo });
    await writeFile(manifestPath, JSON.stringify(manifest));
    // token.key is the retired one here; prune leaves config keys to the config.
    expect((await list()).map((k) => k.state)).toEqual(['retired', 'active', 'staged']);
    const nothing = await cli('keys', 'prune');
    expect(nothing.stdout).toContain('no retired key');

    // A keyring whose own first key retired.
    await writeTestConfig({ keyring: { dir: 'keys' }, certificate: undefined, key: undefined });
    const generated = await generateSigningKey();
    await writeFile(join(keys.dir, 'keys', 'old.key'), generated.keyPem, { mode: 0o600 });
    await writeFile(join(keys.dir, 'keys', 'old.crt'), generated.certPem);
    const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000).toISOString();
    manifest.keys.unshift({ key: 'old.key', certificate: 'old.crt', created: threeDaysAgo, activated: threeDaysAgo } as never);
    await writeFile(manifestPath, JSON.stringify(manifest));
    expect((await list()).map((k) => k.state)).toEqual(['retired', 'active', 'staged']);
    const pruned = await cli('keys', 'prune');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/removed retired key \S+/);
    expect(await exists(join(keys.dir, 'keys', 'old.key'))).toBe(false);
    expect(await exists(join(keys.dir, 'keys', 'old.crt'))).toBe(false);
    expect((await list()).map((k) => k.state)).toEqual(['active', 'staged']);

    const staged = (await list())[1] as KeyRow;
    const removed = await cli('keys', 'remove', staged.thumbprint.slice(0, 6));
    expect(removed.code, removed.stderr).toBe(0);
    expect((await list()).map((k) => k.state)).toEqual(['active']);
    expect(await bundleCerts()).toHaveLength(1);
    expect((await readdir(join(keys.dir, 'keys'))).filter((f) => f.endsWith('.key'))).toHaveLength(1);
  });

  it('a broken keyring fails the start with the file and what is wrong', async () => {
    await writeTestConfig({ keyring: { dir: 'keys' } });
    expect((await cli('keys', 'rotate')).code).toBe(0);
    const manifestPath = join(keys.dir, 'keys', 'keyring.json');
    await writeFile(manifestPath, '{"version": 1, "keys": [');
    const r = await runCli(['check-config', configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/token\.keyring\.dir: .*keyring\.json is not JSON/);

    await writeFile(manifestPath, JSON.stringify({ version: 1, keys: [{ key: '../token.key', certificate: 'x.crt', created: new Date().toISOString() }] }));
    const escaped = await runCli(['check-config', configPath]);
    expect(escaped.code).toBe(2);
    expect(escaped.stderr).toContain('must be a file name inside the keyring folder');

    await writeFile(manifestPath, JSON.stringify({ version: 1, keys: [{ key: 'gone.key', certificate: 'gone.crt', created: new Date().toISOString() }] }));
    const missing = await runCli(['check-config', configPath]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/gone\.key: no such file/);
  });

  it('a keyring with no key that signs (and no token.key) fails the start, saying what to do', async () => {
    await writeTestConfig({ keyring: { dir: 'keys' } });
    expect((await cli('keys', 'rotate')).code).toBe(0);
    await writeTestConfig({ keyring: { dir: 'keys' }, certificate: undefined, key: undefined });
    const r = await runCli(['check-config', configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/token\.keyring: .* has no key that signs yet: activate one \(sts-docker-auth keys activate\)/);
  });

  it('registry-config trusts every key of the bundle, with each algorithm', async () => {
    await writeTestConfig({ keyring: { dir: 'keys' } });
    expect((await cli('keys', 'rotate', '--kind', 'rsa-2048')).code).toBe(0);
    const r = await cli('registry-config', '--format', 'distribution3');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`rootcertbundle: "${join(keys.dir, 'keys', 'bundle.pem')}"`);
    expect(r.stdout).toContain('signingalgorithms: [ES256, RS256]');
  });
});

describe('a running server follows the keyring', () => {
  let server: StsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const tokenKid = async (s: StsServer) => {
    const res = await s.app.inject({ url: '/auth?service=test-registry&scope=repository:a/b:pull', headers: { authorization: basic('alice', 'alice-pw') } });
    expect(res.statusCode).toBe(200);
    return decodeJwt((res.json() as { token: string }).token).header.kid;
  };
  const start = async () => {
    const s = await createServer(await loadConfig(configPath), { logger: createLogger({ level: 'silent' }), audit: new MemoryAudit() });
    await s.app.ready();
    return s;
  };

  it('after keys activate, on reload (what SIGHUP and the keyring watch do)', async () => {
    await writeTestConfig({ keyring: { dir: 'keys' } });
    expect((await cli('keys', 'rotate')).code).toBe(0);
    const [config, staged] = await list();
    server = await start();
    expect(await tokenKid(server)).toBe(config?.kid);
    expect((await cli('keys', 'activate')).code).toBe(0);
    await server.reload(await loadConfig(configPath));
    expect(await tokenKid(server)).toBe(staged?.kid);
    const metrics = await server.app.inject({ url: '/metrics' });
    expect(metrics.body).toContain(`sts_signing_certificate_expiry_timestamp_seconds{kid="${staged?.kid}"}`);
    expect(metrics.body).not.toContain(`kid="${config?.kid}"`);
    expect((await server.app.inject({ url: '/readyz' })).statusCode).toBe(200);
  });

  it('on its own when token.keyring.activation_delay has passed', async () => {
    await writeTestConfig({ keyring: { dir: 'keys', activation_delay: '1h' } });
    const rotated = await cli('keys', 'rotate');
    expect(rotated.stdout).toMatch(/it starts signing at \S+ \(token\.keyring\.activation_delay\)/);
    const [config, staged] = await list();
    expect(Date.parse(staged?.activates ?? '') - Date.now()).toBeGreaterThan(3_500_000);
    // Made an hour ago, less 4 s: the delay ends 4 s from now, however slow the CLI was.
    const manifestPath = join(keys.dir, 'keys', 'keyring.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { keys: Array<{ created: string }> };
    const activatesAt = Date.now() + 4_000;
    (manifest.keys[0] as { created: string }).created = new Date(activatesAt - 3_600_000).toISOString();
    await writeFile(manifestPath, JSON.stringify(manifest));
    server = await start();
    const first = await tokenKid(server);
    // On a machine busy enough to take 4 s over the start, the test would show nothing: say so.
    expect(Date.now(), 'the server started after the activation time').toBeLessThan(activatesAt);
    expect(first).toBe(config?.kid);
    const deadline = activatesAt + 10_000;
    let kid = first;
    while (kid !== staged?.kid && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      kid = await tokenKid(server);
    }
    expect(kid).toBe(staged?.kid);
    expect(Date.now()).toBeGreaterThanOrEqual(activatesAt);
  }, 30_000);
});
