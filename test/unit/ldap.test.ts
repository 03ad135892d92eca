import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { endpointOf, ldapAuthSchema, LdapAuthenticator, prepareLdapAuth } from '../../src/authn/ldap.js';
import { commonNameOf, escapeDnValue, escapeFilterValue, fillTemplate, parseDn } from '../../src/authn/ldap-escape.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { baseConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { makeServerCertificate } from '../helpers/slapd.js';

describe('escapeFilterValue (RFC 4515)', () => {
  it.each([
    // plain values pass
    ['alice', 'alice'],
    ['Jöhn Smith', 'Jöhn Smith'],
    ['a.b-c_d@example.org', 'a.b-c_d@example.org'],
    // the five specials
    ['*', '\\2a'],
    ['(', '\\28'],
    [')', '\\29'],
    ['\\', '\\5c'],
    ['\0', '\\00'],
    // injection attempts become literal text
    [')(uid=*', '\\29\\28uid=\\2a'],
    ['admin)(|(uid=*', 'admin\\29\\28|\\28uid=\\2a'],
    ['*)(uid=alice', '\\2a\\29\\28uid=alice'],
    ['alice\0)(uid=*', 'alice\\00\\29\\28uid=\\2a'],
    // an escape typed by the user is escaped again, never decoded
    ['\\2a', '\\5c2a'],
    ['a\\29', 'a\\5c29'],
  ])('%j -> %j', (input, expected) => {
    expect(escapeFilterValue(input)).toBe(expected);
  });
});

describe('escapeDnValue (RFC 4514)', () => {
  it.each([
    ['alice', 'alice'],
    ['smith, john', 'smith\\, john'],
    ['alice,ou=admins,dc=example,dc=org', 'alice\\,ou\\=admins\\,dc\\=example\\,dc\\=org'],
    ['a+cn=x', 'a\\+cn\\=x'],
    ['"quoted"', '\\"quoted\\"'],
    ['a;b<c>d', 'a\\;b\\<c\\>d'],
    ['back\\slash', 'back\\\\slash'],
    [' leading', '\\ leading'],
    ['trailing ', 'trailing\\ '],
    ['#hash', '\\#hash'],
    ['in#side', 'in#side'],
    ['nul\0', 'nul\\00'],
    ['Jöhn', 'Jöhn'],
    ['*', '*'],
  ])('%j -> %j', (input, expected) => {
    expect(escapeDnValue(input)).toBe(expected);
  });

  it('round-trips through the DN parser as one value', () => {
    for (const value of ['smith, john', 'a+b=c', ' x ', '#1', 'q"uote', 'back\\slash', 'nul\0']) {
      expect(parseDn(`uid=${escapeDnValue(value)},dc=example`)).toEqual([[{ type: 'uid', value }], [{ type: 'dc', value: 'example' }]]);
    }
  });
});

describe('fillTemplate', () => {
  it('fills known placeholders, escaped, and leaves others', () => {
    expect(fillTemplate('(&(uid=${account})(x=${other}))', { account: '*' }, escapeFilterValue)).toBe('(&(uid=\\2a)(x=${other}))');
    expect(fillTemplate('(member=${dn})', { dn: 'uid=a\\,b,dc=x' }, escapeFilterValue)).toBe('(member=uid=a\\5c,b,dc=x)');
    expect(fillTemplate('${account}${account}', { account: 'a' }, (v) => v)).toBe('aa');
    // A value that looks like a placeholder is not expanded again.
    expect(fillTemplate('${account}', { account: '${account}' }, (v) => v)).toBe('${account}');
  });
});

describe('parseDn and commonNameOf (parse_cn)', () => {
  it.each([
    ['cn=Devs,ou=groups,dc=example,dc=org', 'Devs'],
    ['CN=Domain Admins,CN=Users,DC=corp,DC=example', 'Domain Admins'],
    ['ou=x,cn=Second,dc=y', 'Second'],
    ['cn=Smith\\, John,ou=people', 'Smith, John'],
    ['cn=caf\\c3\\a9,dc=x', 'café'],
    ['cn="Quoted, Name",dc=x', 'Quoted, Name'],
    ['cn=a+uid=b,dc=x', 'a'],
    ['uid=b+cn=multi,dc=x', 'multi'],
    [' cn = spaced ,dc=x', 'spaced'],
    ['uid=nocn,dc=x', 'uid=nocn,dc=x'],
    ['not a dn', 'not a dn'],
    ['', ''],
  ])('%j -> %j', (dn, cn) => {
    expect(commonNameOf(dn)).toBe(cn);
  });

  it('rejects what is no DN', () => {
    expect(parseDn('no equals sign')).toBeUndefined();
    expect(parseDn('cn=a,=b')).toBeUndefined();
    expect(parseDn('cn="unterminated')).toBeUndefined();
  });
});

const minimal = { addr: 'ldap.example.org:389', base: 'dc=example,dc=org', filter: '(uid=${account})' };

describe('ldap_auth schema', () => {
  it('accepts docker_auth sample sections as written (empty keys are YAML nulls)', () => {
    const parsed = ldapAuthSchema.parse({
      addr: 'ldap.example.com:636',
      tls: 'always',
      insecure_tls_skip_verify: false,
      ca_certificate: null,
      bind_dn: null,
      bind_password_file: null,
      base: 'o=example.com',
      filter: '(&(uid=${account})(objectClass=person))',
      labels: {
        title: { attribute: 'title' },
        groups: { attribute: 'memberOf', parse_cn: true, lower_case: true },
      },
    });
    expect(parsed).toMatchObject({ timeout: 5, pool_size: 4, cache_ttl: 60 });
  });

  it('defaults and durations', () => {
    expect(ldapAuthSchema.parse({ ...minimal, timeout: '500ms', cache_ttl: '2m' })).toMatchObject({ timeout: 0.5, cache_ttl: 120 });
    expect(ldapAuthSchema.parse({ ...minimal, timeout: 1.5, cache_ttl: 0 })).toMatchObject({ timeout: 1.5, cache_ttl: 0 });
  });

  it.each([
    ['port 636 means LDAPS', { addr: 'ldap.example.org:636' }, 'always'],
    ['"" on 636 too', { addr: 'ldap.example.org:636', tls: '' }, 'always'],
    ['an explicit mode wins on 636', { addr: 'ldap.example.org:636', tls: 'none' }, 'none'],
    ['plain elsewhere', { addr: 'ldap.example.org:389' }, 'none'],
    ['starttls', { addr: 'ldap.example.org:389', tls: 'starttls' }, 'starttls'],
  ])('TLS mode: %s', (_name, extra, mode) => {
    expect(endpointOf(ldapAuthSchema.parse({ ...minimal, ...extra }), {}).tls).toBe(mode);
  });

  it('reads IPv6 addresses', () => {
    expect(endpointOf(ldapAuthSchema.parse({ ...minimal, addr: '[::1]:1389' }), {})).toMatchObject({ host: '::1', port: 1389 });
  });

  it.each([
    ['no filter', { addr: 'h:389', base: 'dc=x' }, 'filter', 'is required'],
    ['no base', { addr: 'h:389', filter: '(uid=${account})' }, 'base', 'is required'],
    ['a filter without ${account}', { ...minimal, filter: '(uid=alice)' }, 'filter', 'must contain ${account}'],
    ['a filter that does not parse', { ...minimal, filter: '(&(uid=${account})' }, 'filter', 'is not a valid LDAP filter'],
    ['an unknown placeholder', { ...minimal, filter: '(uid=${user})' }, 'filter', 'unknown placeholder ${user}'],
    ['bind_dn without its password file', { ...minimal, bind_dn: 'cn=reader,dc=x' }, 'bind_password_file', 'is required with bind_dn'],
    ['a password file without bind_dn', { ...minimal, bind_password_file: 'pw' }, 'bind_dn', 'is required with bind_password_file'],
    ['${account} in a service bind_dn', { ...minimal, bind_dn: 'uid=${account},dc=x', bind_password_file: 'pw' }, 'bind_dn', 'initial_bind_as_user'],
    ['direct bind without bind_dn', { addr: 'h:389', initial_bind_as_user: true }, 'bind_dn', 'is required with initial_bind_as_user'],
    ['direct bind without ${account}', { addr: 'h:389', initial_bind_as_user: true, bind_dn: 'uid=x,dc=x' }, 'bind_dn', 'must contain ${account}'],
    ['a bad addr', { ...minimal, addr: 'ldap://h:389' }, 'addr', 'host:port'],
    ['a bad tls mode', { ...minimal, tls: 'ssl' }, 'tls', ''],
    ['a zero timeout', { ...minimal, timeout: 0 }, 'timeout', 'more than 0'],
    ['a negative cache_ttl', { ...minimal, cache_ttl: -1 }, 'cache_ttl', 'negative'],
    ['a group filter with neither ${dn} nor ${account}', { ...minimal, group_search: { base: 'dc=x', filter: '(cn=x)' } }, 'group_search.filter', '${dn} or ${account}'],
    ['an unknown key', { ...minimal, group_filter: '(x=y)' }, '', 'group_filter'],
  ])('rejects %s', (_name, section, path, message) => {
    const result = ldapAuthSchema.safeParse(section);
    expect(result.success).toBe(false);
    const issues = result.error?.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) ?? [];
    expect(issues).toContainEqual({ path, message: expect.stringContaining(message) });
  });

  it('is a top-level section, and authn_order must list ldap when it is configured', () => {
    const keys = { token: { issuer: 'i', certificate: 'c', key: 'k' }, acl: [] };
    expect(configSchema.safeParse({ ...keys, ldap_auth: minimal }).success).toBe(true);
    expect(configSchema.parse({ ...keys, ldap_auth: minimal }).authn_order).toContain('ldap');
    const missing = configSchema.safeParse({ ...keys, users: {}, ldap_auth: minimal, authn_order: ['users'] });
    expect(missing.error?.issues).toContainEqual(expect.objectContaining({ path: ['authn_order'], message: expect.stringContaining('ldap') }));
  });
});

describe('ldap_auth files at start', () => {
  let keys: KeyDir;
  let dir: string;
  beforeAll(async () => {
    keys = await makeKeyDir();
    dir = await mkdtemp(join(tmpdir(), 'sts-ldap-unit-'));
    await writeFile(join(dir, 'pw'), 'secret\n');
    await writeFile(join(dir, 'empty'), '  \n');
    await writeFile(join(dir, 'ca.pem'), (await makeServerCertificate()).caPem);
    await writeFile(join(dir, 'junk.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
  });
  afterAll(async () => {
    await keys.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const service = { ...minimal, bind_dn: 'cn=reader,dc=example,dc=org' };

  it('reads the password (trimmed, as docker_auth does) and the CA, relative to the config folder', async () => {
    const issues: { path: string; message: string }[] = [];
    const prepared = await prepareLdapAuth(ldapAuthSchema.parse({ ...service, bind_password_file: 'pw', ca_certificate: 'ca.pem' }), dir, issues);
    expect(issues).toEqual([]);
    expect(prepared.bindPassword).toBe('secret');
    expect(prepared.bindPasswordPath).toBe(join(dir, 'pw'));
    expect(prepared.ca).toContain('BEGIN CERTIFICATE');
  });

  it.each([
    ['a missing password file', { bind_password_file: 'nope' }, 'ldap_auth.bind_password_file', 'no such file'],
    ['an empty password file', { bind_password_file: 'empty' }, 'ldap_auth.bind_password_file', 'is empty'],
    ['a missing CA file', { bind_password_file: 'pw', ca_certificate: 'nope.pem' }, 'ldap_auth.ca_certificate', 'no such file'],
    ['a CA file with no certificate', { bind_password_file: 'pw', ca_certificate: 'pw' }, 'ldap_auth.ca_certificate', 'no PEM certificate'],
    ['a CA file that does not parse', { bind_password_file: 'pw', ca_certificate: 'junk.pem' }, 'ldap_auth.ca_certificate', 'cannot be read'],
  ])('check-config reports %s with its key path', async (_name, extra, path, message) => {
    const config = baseConfig({ ldap_auth: { ...service, ...extra } });
    const error = await parseConfig(config, { baseDir: dir, source: 'test.yml', env: {} }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toContainEqual({ path, message: expect.stringContaining(message) });
  });

  it('the loaded config carries what was read', async () => {
    const loaded = await parseConfig(baseConfig({ ldap_auth: { ...service, bind_password_file: join(dir, 'pw') } }), {
      baseDir: keys.dir,
      source: 'test.yml',
      env: {},
    });
    expect(loaded.ldap?.bindPassword).toBe('secret');
  });
});

describe('LdapAuthenticator before any traffic', () => {
  it('answers empty and overlong names, and empty passwords, no-match without connecting anywhere', async () => {
    // Port 9 (discard) on loopback: nothing listens, and nothing is asked.
    const auth = new LdapAuthenticator(ldapAuthSchema.parse({ ...minimal, addr: '127.0.0.1:9' }), {});
    expect(await auth.authenticate(null)).toEqual({ outcome: 'no-match' });
    expect(await auth.authenticate({ username: 'alice', password: '' })).toEqual({ outcome: 'no-match' });
    expect(await auth.authenticate({ username: '', password: 'pw' })).toEqual({ outcome: 'no-match' });
    expect(await auth.authenticate({ username: 'a'.repeat(257), password: 'pw' })).toEqual({ outcome: 'no-match' });
    expect(await auth.lookup?.('')).toEqual({ outcome: 'no-match' });
    auth.close();
  });
});

describe('docs/ldap.md', () => {
  const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'ldap.md'), 'utf8');
  const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] as string);

  it('has its examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(5);
  });

  it.each(examples.map((text, i) => [i + 1, text] as const))('example %i is a valid config', (_n, text) => {
    const result = configSchema.safeParse(parse(text));
    expect(result.error?.issues ?? []).toEqual([]);
  });
});
