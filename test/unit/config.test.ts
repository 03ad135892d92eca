import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig, parseConfig, parseConfigText } from '../../src/config/load.js';
import { baseConfig, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';

let keys: KeyDir;
let goodHash: string;
beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  goodHash = await hash('pw');
});
afterAll(() => keys.cleanup());

async function issuesOf(raw: unknown): Promise<Array<{ path: string; message: string }>> {
  try {
    await parseConfig(raw, { baseDir: keys.dir, source: 'auth.yml', env: {} });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).issues];
  }
  throw new Error('the config was accepted');
}

describe('a valid docker_auth-style config', () => {
  it('loads with defaults', async () => {
    const loaded = await parseConfig(
      { token: { issuer: 'Acme auth server', expiration: 900, certificate: 'token.crt', key: 'token.key' }, users: { admin: { password: goodHash } }, acl: [{ match: { account: 'admin' }, actions: ['*'] }] },
      { baseDir: keys.dir, env: {} },
    );
    expect(loaded.config.server.addr).toBe(':5001');
    expect(loaded.config.server.path_prefix).toBe('');
    expect(loaded.jwtHeader).toBe('x5c');
    expect(loaded.signingKey.alg).toBe('ES256');
    expect(Object.isFrozen(loaded.config.token)).toBe(true);
  });

  it('maps disable_legacy_key_id to kid-only thumbprints', async () => {
    const loaded = await parseConfig(baseConfig({ token: { ...baseConfig().token, disable_legacy_key_id: true } }), { baseDir: keys.dir, env: {} });
    expect(loaded.jwtHeader).toBe('thumbprint');
  });

  it('falls back to the server TLS pair for signing, as docker_auth does', async () => {
    const loaded = await parseConfig(
      { server: { addr: ':5001', certificate: 'token.crt', key: 'token.key' }, token: { issuer: 'i' }, users: {}, acl: [] },
      { baseDir: keys.dir, env: {} },
    );
    expect(loaded.tls).toBeDefined();
    expect(loaded.config.token.expiration).toBe(300);
  });

  it('takes STS_ADDR over server.addr', async () => {
    const loaded = await parseConfig(baseConfig(), { baseDir: keys.dir, env: { STS_ADDR: '127.0.0.1:6000' } });
    expect(loaded.config.server.addr).toBe('127.0.0.1:6000');
  });

  it('reads a file and resolves key paths against its folder', async () => {
    const file = join(keys.dir, 'auth.yml');
    await writeFile(file, `token: {issuer: x, certificate: token.crt, key: token.key}\nusers: {"": {}}\nacl: []\n`);
    const loaded = await loadConfig(file, {});
    expect(loaded.source).toBe(file);
  });
});

describe('config errors name the key path and the problem', () => {
  it.each([
    ['an unknown top-level key', { ...baseConfig(), ldap: {} }, '', /unknown key "ldap"/],
    ['an unknown match key (docker_auth would match everyone)', { ...baseConfig(), acl: [{ match: { team: 'x' }, actions: [] }] }, 'acl[0].match', /unknown key "team"/],
    ['a rule without actions', { ...baseConfig(), acl: [{ match: {} }] }, 'acl[0].actions', /expected array/],
    ['a string where a list belongs', { ...baseConfig(), acl: [{ match: {}, actions: 'pull' }] }, 'acl[0].actions', /expected array/],
    ['an expiration under 60 s', { ...baseConfig(), token: { ...baseConfig().token, expiration: 30 } }, 'token.expiration', /at least 60/],
    ['a fractional expiration', { ...baseConfig(), token: { ...baseConfig().token, expiration: 90.5 } }, 'token.expiration', /whole number/],
    ['a missing issuer', { ...baseConfig(), token: { certificate: 'token.crt', key: 'token.key' } }, 'token.issuer', /./],
    ['a plain-text password', { ...baseConfig(), users: { bob: { password: 'secret' } } }, 'users.bob.password', /bcrypt hash/],
    ['a user with no password', { ...baseConfig(), users: { bob: {} } }, 'users.bob.password', /is required/],
    ['labels that are not lists', { ...baseConfig(), users: { '': { labels: { team: 'a' } } } }, 'users[""].labels.team', /expected array/],
    ['a bad path prefix', { ...baseConfig(), server: { path_prefix: 'auth' } }, 'server.path_prefix', /start with/],
    ['a bad listen address', { ...baseConfig(), server: { addr: 'localhost' } }, 'server.addr', /host:port/],
    ['a certificate without a key', { ...baseConfig(), token: { issuer: 'i', certificate: 'token.crt' } }, 'token', /both/],
    ['a missing key file', { ...baseConfig(), token: { ...baseConfig().token, key: 'nope.key' } }, 'token.key', /no such file/],
    ['a key that is not a key', { ...baseConfig(), token: { ...baseConfig().token, key: 'token.crt' } }, 'token.key', /cannot read the private key/],
    ['no users section', { token: baseConfig().token, acl: [] }, 'users', /no authentication/],
    ['no acl section', { token: baseConfig().token, users: {} }, 'acl', /no authorization/],
    ['an unknown jwt_header', { ...baseConfig(), token: { ...baseConfig().token, jwt_header: 'jwk' } }, 'token.jwt_header', /./],
    ['a bad regex in a rule', { ...baseConfig(), acl: [{ match: {}, actions: [] }, { match: { name: '/(/' }, actions: [] }] }, 'acl[1].match.name', /./],
    ['a bad glob in a rule', { ...baseConfig(), acl: [{ match: { account: '[abc' }, actions: [] }] }, 'acl[0].match.account', /./],
    ['a bad ip in a rule', { ...baseConfig(), acl: [{ match: { ip: '10.0.0.300' }, actions: [] }] }, 'acl[0].match.ip', /./],
  ])('%s', async (_why, raw, path, message) => {
    const issues = await issuesOf(raw);
    const issue = issues.find((i) => i.path === path);
    expect(issue, `expected an issue at ${path}, got ${JSON.stringify(issues)}`).toBeDefined();
    expect(issue?.message).toMatch(message);
  });

  it('puts the file name in the message', async () => {
    await expect(parseConfig({ token: {} }, { baseDir: keys.dir, source: 'auth.yml', env: {} })).rejects.toThrow(/^auth\.yml: invalid configuration/);
  });

  it('reports YAML syntax errors and duplicate keys with the line', async () => {
    await expect(parseConfigText('token:\n  issuer: a\n  issuer: b\n', { baseDir: keys.dir, source: 'dup.yml', env: {} })).rejects.toThrow(/dup\.yml[\s\S]*line 3/);
    await expect(parseConfigText('token: [\n', { baseDir: keys.dir, source: 'bad.yml', env: {} })).rejects.toThrow(ConfigError);
  });

  it('reports an unreadable file', async () => {
    await expect(loadConfig(join(keys.dir, 'missing.yml'), {})).rejects.toThrow(/missing\.yml: invalid configuration[\s\S]*cannot read/);
  });
});

describe('listen address and hashes', () => {
  it.each([
    ['a port above 65535', { ...baseConfig(), server: { addr: ':70000' } }, 'server.addr', /at most 65535/],
    ['a $2x$ hash node bcrypt cannot check', { ...baseConfig(), users: { bob: { password: `$2x$10$${'a'.repeat(53)}` } } }, 'users.bob.password', /bcrypt hash/],
  ])('rejects %s', async (_why, raw, path, message) => {
    const issues = await issuesOf(raw);
    expect(issues.find((i) => i.path === path)?.message).toMatch(message);
  });
});
