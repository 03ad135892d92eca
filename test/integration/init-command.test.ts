import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyPassword } from '../../src/security/password.js';
import { runCli } from '../helpers/cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sts-init-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** No STS_* setting of the developer's leaks in. */
const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({ STS_DATA_DIR: '', STS_ADDR: '', ...extra });

describe('sts-docker-auth init', () => {
  it('creates the data folder given by --data-dir, prints the admin password once and the registry block', async () => {
    const data = join(dir, 'explicit');
    const result = await runCli(['init', '--data-dir', data], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    const password = /The admin password, shown only this once: (\S+)/.exec(result.stdout)?.[1] ?? '';
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect(result.stdout).toContain(
      ['auth:', '  token:', '    realm: "http://localhost:5001/auth"', '    service: "docker-registry"', '    issuer: "sts-docker-auth"', `    rootcertbundle: ${JSON.stringify(join(data, 'keys', 'bundle.pem'))}`].join('\n'),
    );
    // The first key of the keyring signs at once, and it is the one registries trust.
    const manifest = JSON.parse(await readFile(join(data, 'keys', 'keyring.json'), 'utf8')) as { keys: { key: string; certificate: string; activated?: string }[] };
    expect(manifest.keys).toHaveLength(1);
    expect(manifest.keys[0]?.activated).toBeDefined();
    expect((await stat(join(data, 'keys', manifest.keys[0]?.key ?? ''))).mode & 0o077).toBe(0);
    expect((await stat(join(data, 'keys'))).mode & 0o077).toBe(0);
    expect(await readFile(join(data, 'keys', 'bundle.pem'), 'utf8')).toBe(await readFile(join(data, 'keys', manifest.keys[0]?.certificate ?? ''), 'utf8'));
    expect((await stat(join(data, 'config.yml'))).mode & 0o077).toBe(0);
    const config = parse(await readFile(join(data, 'config.yml'), 'utf8')) as { users: { admin: { password: string } } };
    expect(await verifyPassword(password, config.users.admin.password)).toBe(true);
  });

  it('leaves an existing config alone and exits 0, saying so', async () => {
    const data = join(dir, 'explicit');
    const files = ['config.yml', 'keys/keyring.json', 'keys/bundle.pem', 'keys/jwks.json'];
    const before = await Promise.all(files.map((f) => readFile(join(data, f), 'utf8')));
    const result = await runCli(['init', '--data-dir', data], { env: env() });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`${join(data, 'config.yml')} exists already; nothing was changed`);
    expect(await Promise.all(files.map((f) => readFile(join(data, f), 'utf8')))).toEqual(before);
  });

  it('uses $STS_DATA_DIR by default, and STS_ADDR for the realm it prints', async () => {
    const data = join(dir, 'from-env');
    const result = await runCli(['init'], { env: env({ STS_DATA_DIR: data, STS_ADDR: '127.0.0.1:7001' }) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('realm: "http://127.0.0.1:7001/auth"');
    expect(result.stdout).toContain(`Created ${data}:`);
  });

  it('refuses to replace a signing key whose certificate is missing (exit 1, files untouched)', async () => {
    const data = join(dir, 'half');
    await mkdir(data);
    await writeFile(join(data, 'token.key'), 'a key the registries trust');
    const result = await runCli(['init', '--data-dir', data], { env: env() });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/token\.crt is missing but .*token\.key exists/);
    expect(await readFile(join(data, 'token.key'), 'utf8')).toBe('a key the registries trust');
  });

  it('keeps the token.key pair of a folder restored without its config: registries trust it', async () => {
    const older = join(dir, 'older');
    expect((await runCli(['init', '--data-dir', older], { env: env() })).code).toBe(0);
    const manifest = JSON.parse(await readFile(join(older, 'keys', 'keyring.json'), 'utf8')) as { keys: { key: string; certificate: string }[] };
    const data = join(dir, 'restored');
    await mkdir(data);
    const [keyPem, certPem] = await Promise.all([readFile(join(older, 'keys', manifest.keys[0]?.key ?? '')), readFile(join(older, 'keys', manifest.keys[0]?.certificate ?? ''), 'utf8')]);
    await writeFile(join(data, 'token.key'), keyPem, { mode: 0o600 });
    await writeFile(join(data, 'token.crt'), certPem);
    const result = await runCli(['init', '--data-dir', data], { env: env() });
    expect(result.code, result.stderr).toBe(0);
    const config = parse(await readFile(join(data, 'config.yml'), 'utf8')) as { token: Record<string, unknown> };
    expect(config.token).toMatchObject({ certificate: 'token.crt', key: 'token.key', keyring: { dir: 'keys' } });
    expect(await readFile(join(data, 'keys', 'bundle.pem'), 'utf8')).toBe(certPem);
    const list = await runCli(['keys', 'list', '--json', '--config', join(data, 'config.yml')], { env: env() });
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { state: string; source: string; key_file: string }[]).map((k) => [k.state, k.source, k.key_file])).toEqual([['active', 'token.key', join(data, 'token.key')]]);
  });
});
