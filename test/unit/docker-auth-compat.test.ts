/**
 * The docker_auth migration check (`check-config --docker-auth FILE`) and the loader's message for
 * docker_auth sections we do not implement. The files below are docker_auth configurations in
 * the shapes its documentation and examples use (reference docker_auth.md §2), written anew.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  analyseDockerAuthConfig,
  checkDockerAuthConfig,
  formatCompatReport,
  type Finding,
} from '../../src/config/docker-auth-compat.js';
import { DOCKER_AUTH_SECTIONS, isSupportedHere, unsupportedSectionMessage } from '../../src/config/docker-auth-sections.js';
import { ConfigError, type ConfigIssue } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { configSchema, serverSchema } from '../../src/config/schema.js';
import { baseConfig, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';

let keys: KeyDir;
/** A real bcrypt hash under the `$2y$` prefix that htpasswd writes and docker_auth's examples use. */
let htpasswdHash: string;

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  htpasswdHash = (await hash('s3cret', 5)).replace(/^\$2b\$/, '$2y$');
});

afterAll(async () => {
  await keys.cleanup();
});

async function write(name: string, text: string): Promise<string> {
  const file = join(keys.dir, name);
  await writeFile(file, text);
  return file;
}

const at = (findings: Finding[], path: string): Finding[] => findings.filter((f) => f.path === path);
const kinds = (findings: Finding[], path: string): string[] => at(findings, path).map((f) => f.kind);

const supportedTopLevel = (key: string) => Object.hasOwn(configSchema.shape, key);

/** docker_auth's minimal example: TLS pair also signing tokens, one admin, one rule. */
const simpleFile = () => `
server:
  addr: ":5001"
  certificate: "token.crt"
  key: "token.key"
token:
  issuer: "Acme auth server"
  expiration: 900
users:
  "admin":
    password: "${htpasswdHash}"
acl:
  - match: {account: "admin"}
    actions: ["*"]
    comment: "Admin has full access to everything."
`;

/** Every backend docker_auth has, in one file, as its reference example lists them. */
const everyBackendFile = () => `
server:
  addr: ":5001"
  net: tcp
  certificate: "token.crt"
  key: "token.key"
  tls_min_version: TLS12
  tls_curve_preferences: [P256, X25519]
  tls_cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
  letsencrypt:
    email: ops@example.com
    cache_dir: /data/acme
token:
  issuer: "Acme auth server"
  expiration: 900
users:
  "admin":
    password: "${htpasswdHash}"
google_auth:
  domain: example.com
  client_id: "1234.apps.googleusercontent.com"
  client_secret_file: /secrets/google
  level_token_db: {path: /data/google_tokens.ldb}
github_auth:
  organization: acme
  client_id: abc
  client_secret_file: /secrets/github
  redis_token_db: {redis_options: {addr: "localhost:6379"}}
oidc_auth:
  issuer: https://accounts.example.com
  redirect_url: https://auth.example.com/oidc_auth
  client_id: docker
  client_secret_file: /secrets/oidc
  label_claims: [groups]
  level_token_db: {path: /data/oidc_tokens.ldb}
gitlab_auth:
  client_id: abc
  client_secret_file: /secrets/gitlab
  gitlab_web_uri: https://gitlab.example.com
  gitlab_api_uri: https://gitlab.example.com/api/v4
  level_token_db: {path: /data/gitlab_tokens.ldb}
ldap_auth:
  addr: ldap.example.com:636
  tls: always
  base: o=example.com
  filter: "(&(uid=\${account})(objectClass=person))"
  bind_dn: cn=reader,o=example.com
  bind_password_file: /secrets/ldap
mongo_auth:
  dial_info: {addrs: ["mongo:27017"], database: docker_auth}
  collection: users
xorm_auth:
  database_type: postgres
  conn_string: "postgres://docker_auth@db/docker_auth"
ext_auth:
  command: /usr/local/bin/check-password
  args: ["--realm", "registry"]
plugin_authn:
  plugin_path: /plugins/authn.so
acl_mongo:
  dial_info: {addrs: ["mongo:27017"], database: docker_auth}
  collection: acl
  cache_ttl: 1m
acl_xorm:
  database_type: postgres
  conn_string: "postgres://docker_auth@db/docker_auth"
  cache_ttl: 1m
ext_authz:
  command: /usr/local/bin/authorize
plugin_authz:
  plugin_path: /plugins/authz.so
casbin_authz:
  model_path: /casbin/model.conf
  policy_path: /casbin/policy.csv
acl:
  - match: {account: "admin"}
    actions: ["*"]
`;

/** The mistakes docker_auth accepted silently: each one is a finding with its key path. */
const footgunFile = () => `
server:
  addr: ":5001"
token:
  issuer: "Acme auth server"
  expiration: 30
  certificate: "token.crt"
  key: "token.key"
users:
  "admin":
    password: "${htpasswdHash}"
  "test": {}
  "plain":
    password: "hunter2"
  "dev":
    password: "${htpasswdHash}"
    labels:
      project: web
  "": {}
acl:
  - match: {account:"admin"}
    actions: ["*"]
  - match: {team: infrastructure}
    actions: [pull, push]
  - match: {account: "/^(.+)@example\\\\.com$/", name: "\${account:1}/*"}
    actions: [pull, push, delete]
  - match: {name: "\${labels:project}-\${labels:tier}/*"}
    actions: [pull]
  - match: {type: registry, name: catalog}
    actions: [pull]
  - match: {account: ""}
  - actions: [pull]
`;

describe('the loader names docker_auth sections we do not implement', () => {
  const issuesOf = async (raw: unknown): Promise<ConfigIssue[]> => {
    try {
      await parseConfig(raw, { baseDir: keys.dir, source: 'test.yml', env: {} });
    } catch (err) {
      if (err instanceof ConfigError) return [...err.issues];
      throw err;
    }
    return [];
  };

  it('says what to use instead of mongo_auth, with the migration guide, at the section\'s own path', async () => {
    const issues = await issuesOf({ ...baseConfig(), mongo_auth: { collection: 'users' } });
    expect(issues).toContainEqual({
      path: 'mongo_auth',
      message: expect.stringMatching(/^docker_auth's mongo_auth is not supported: use store users .+ \(see docs\/migrating-from-docker_auth\.md\)$/),
    });
    expect(issues.map((i) => i.message).join('\n')).not.toMatch(/unknown key/);
  });

  it('does the same for the server keys docker_auth has and we do not', async () => {
    const issues = await issuesOf({ ...baseConfig(), server: { addr: '127.0.0.1:0', net: 'unix', letsencrypt: { email: 'x' } } });
    for (const key of ['net', 'letsencrypt']) {
      if (Object.hasOwn(serverSchema.shape, key)) continue;
      expect(issues).toContainEqual({ path: `server.${key}`, message: expect.stringMatching(new RegExp(`^docker_auth's server\\.${key} is not supported: use .+\\(see docs/migrating-from-docker_auth\\.md\\)$`)) });
    }
  });

  it('keeps "unknown key" for keys that are not docker_auth sections, next to the section messages', async () => {
    const issues = await issuesOf({ ...baseConfig(), acl_mongo: {}, ldap: {}, server: { addr: '127.0.0.1:0', adr: ':1', tls_cipher_suites: [] } });
    expect(issues).toContainEqual({ path: '', message: 'unknown key "ldap"' });
    expect(issues).toContainEqual({ path: 'server', message: 'unknown key "adr"' });
    expect(issues).toContainEqual({ path: 'acl_mongo', message: expect.stringMatching(/^docker_auth's acl_mongo is not supported: use store ACL rules/) });
    expect(issues).toContainEqual({ path: 'server.tls_cipher_suites', message: expect.stringMatching(/TLS-terminating proxy/) });
  });

  it('never calls a section we support unsupported: support is read from the schema', () => {
    for (const section of DOCKER_AUTH_SECTIONS) {
      const [parent, key] = section.includes('.') ? (section.split('.') as [string, string]) : ['', section];
      const known = parent === 'server' ? Object.hasOwn(serverSchema.shape, key) : supportedTopLevel(key);
      expect(isSupportedHere(section), section).toBe(known);
      expect(unsupportedSectionMessage(section) === undefined, section).toBe(known);
    }
    // Sections of ours and plain typos are not docker_auth sections.
    expect(unsupportedSectionMessage('store')).toBeUndefined();
    expect(unsupportedSectionMessage('acl_mongoo')).toBeUndefined();
  });
});

describe('analyseDockerAuthConfig: findings for each docker_auth behaviour that changes', () => {
  it('finds nothing to reject in the minimal example, and lists what differs on the wire', async () => {
    const { parse } = await import('yaml');
    const findings = analyseDockerAuthConfig(parse(simpleFile()));
    expect(findings.filter((f) => f.kind === 'rejected')).toEqual([]);
    expect(at(findings, 'token.expiration')).toEqual([
      { path: 'token.expiration', kind: 'differs', message: expect.stringMatching(/expires_in: 900 and issued_at/) },
    ]);
    expect(at(findings, 'token')[0]?.message).toMatch(/x5c header .* jwt_header: libtrust/);
    expect(at(findings, 'store')[0]?.message).toMatch(/docker login keeps the password; add store: \{\} for refresh tokens/);
    expect(kinds(findings, 'acl[0].actions')).toEqual(['differs']); // ["*"]: a requested * is spelled out
    expect(at(findings, '(response)')).toHaveLength(1);
  });

  it('reports every docker_auth backend we do not implement, and none that we do', async () => {
    const { parse } = await import('yaml');
    const findings = analyseDockerAuthConfig(parse(everyBackendFile()));
    const sections = ['google_auth', 'github_auth', 'oidc_auth', 'gitlab_auth', 'ldap_auth', 'mongo_auth', 'xorm_auth', 'ext_auth',
      'plugin_authn', 'acl_mongo', 'acl_xorm', 'ext_authz', 'plugin_authz', 'casbin_authz'];
    for (const section of sections) {
      const expected = supportedTopLevel(section)
        ? []
        : [{ path: section, kind: 'rejected', message: expect.stringMatching(new RegExp(`^docker_auth's ${section} is not supported: use `)) }];
      expect(at(findings, section), section).toEqual(expected);
    }
    for (const key of ['net', 'letsencrypt', 'tls_min_version', 'tls_curve_preferences', 'tls_cipher_suites']) {
      expect(kinds(findings, `server.${key}`), key).toEqual(Object.hasOwn(serverSchema.shape, key) ? [] : ['rejected']);
    }
    // Browser sign-in backends point to our replacement for them.
    if (!supportedTopLevel('github_auth')) expect(at(findings, 'github_auth')[0]?.message).toMatch(supportedTopLevel('sso') ? /the sso section/ : /access tokens/);
    if (!supportedTopLevel('mongo_auth')) expect(at(findings, 'mongo_auth')[0]?.message).toMatch(/store users/);
  });

  it('reports each footgun at its key path', async () => {
    const { parse } = await import('yaml');
    const findings = analyseDockerAuthConfig(parse(footgunFile()));
    expect(at(findings, 'token.expiration')[0]).toEqual({ path: 'token.expiration', kind: 'rejected', message: expect.stringMatching(/30 s is below 60/) });
    expect(at(findings, 'users.test.password')).toEqual([
      { path: 'users.test.password', kind: 'rejected', message: expect.stringMatching(/docker_auth let "test" in with any password; set a bcrypt hash/) },
    ]);
    expect(at(findings, 'users.plain.password')[0]?.message).toMatch(/not a bcrypt hash/);
    expect(at(findings, 'users.admin.password')).toEqual([]);
    expect(at(findings, 'users[""].password')).toEqual([]);
    expect(at(findings, 'users.dev.labels.project')[0]?.message).toMatch(/must be a list: write project: \[web\]/);
    expect(at(findings, 'acl[0].match["account:\\"admin\\""]')[0]?.message).toMatch(
      /docker_auth ignored it, so this rule matched every request; write \{account: \.\.\.\} with a space after the colon/,
    );
    expect(at(findings, 'acl[1].match.team')[0]?.message).toMatch(/matched every request; .*labels: \{team: \.\.\.\}/);
    expect(at(findings, 'acl[2].match.name')[0]).toEqual({ path: 'acl[2].match.name', kind: 'differs', message: expect.stringMatching(/^\$\{account:1\} is inserted escaped/) });
    expect(at(findings, 'acl[2].actions')[0]?.message).toMatch(/gets delete, pull, push from this rule; docker_auth granted nothing/);
    expect(at(findings, 'acl[3].match.name').map((f) => f.message)).toEqual([
      expect.stringMatching(/^\$\{labels:project\}: an account without the label "project" never matches/),
      expect.stringMatching(/^\$\{labels:tier\}: /),
    ]);
    expect(at(findings, 'acl[4].actions')).toEqual([{ path: 'acl[4].actions', kind: 'note', message: expect.stringMatching(/catalog .* actions \["\*"\]/) }]);
    expect(at(findings, 'acl[5].actions')[0]?.message).toMatch(/crashed every request this rule matched/);
    expect(at(findings, 'acl[6].match')[0]?.message).toMatch(/panicked at start/);
  });

  it('treats a missing expiration as a difference, not an error (the default applies)', () => {
    const findings = analyseDockerAuthConfig({ token: { issuer: 'x' }, users: {}, acl: [] });
    expect(at(findings, 'token.expiration').map((f) => [f.kind, f.message])).toEqual([
      ['differs', expect.stringMatching(/not set: .* 300 s/)],
      ['differs', expect.stringMatching(/expires_in: 300/)],
    ]);
  });

  it('explains disable_legacy_key_id instead of the x5c header when it is set', () => {
    const findings = analyseDockerAuthConfig({ token: { issuer: 'x', expiration: 300, disable_legacy_key_id: true }, users: {}, acl: [] });
    expect(at(findings, 'token.disable_legacy_key_id')[0]?.message).toMatch(/RFC 7638 .* 3\.1\+/);
    expect(at(findings, 'token')).toEqual([]);
  });

  it('reports unknown keys that are not docker_auth sections as typos', () => {
    const findings = analyseDockerAuthConfig({ token: { issuer: 'x', expiraton: 300 }, users: {}, acl: [], acls: [] });
    expect(at(findings, 'token.expiraton')[0]?.message).toMatch(/docker_auth ignored it, sts-docker-auth refuses it/);
    expect(kinds(findings, 'acls')).toEqual(['rejected']);
  });

  it('mentions refresh tokens as available once the file has a store', () => {
    const findings = analyseDockerAuthConfig({ token: { issuer: 'x' }, store: {}, acl: [] });
    expect(at(findings, 'store')[0]?.message).toMatch(/refresh token .* identitytoken/);
  });

  it('rejects a file that is not a mapping', () => {
    expect(analyseDockerAuthConfig(['a'])).toEqual([{ path: '(top level)', kind: 'rejected', message: 'the file is not a YAML mapping' }]);
  });
});

describe('checkDockerAuthConfig: the report and the verdict of our loader', () => {
  it('runs the minimal example unmodified', async () => {
    const report = await checkDockerAuthConfig(await write('simple.yml', simpleFile()), {});
    expect(report.validation).toEqual([]);
    expect(report.runsUnmodified).toBe(true);
    const text = formatCompatReport(report);
    expect(text).toMatch(/^.*simple\.yml: docker_auth compatibility$/m);
    expect(text).toMatch(/^validation: passes; sts-docker-auth runs this file unmodified$/m);
  });

  it('does not run the file with every backend, and lists the loader\'s problems', async () => {
    const report = await checkDockerAuthConfig(await write('every.yml', everyBackendFile()), {});
    expect(report.runsUnmodified).toBe(false);
    expect(report.validation.length).toBeGreaterThan(0);
    if (!supportedTopLevel('casbin_authz')) {
      expect(report.validation).toContainEqual({ path: 'casbin_authz', message: expect.stringMatching(/^docker_auth's casbin_authz is not supported/) });
    }
    const text = formatCompatReport(report);
    expect(text).toMatch(/^validation: fails with \d+ problems?; the file does not run unmodified:$/m);
  });

  it('prints one line per finding with its key path, rejected first', async () => {
    const report = await checkDockerAuthConfig(await write('footguns.yml', footgunFile()), {});
    const lines = formatCompatReport(report).split('\n');
    const findingLines = lines.filter((l) => /^ {2}(rejected|differs |note {4}) /.test(l));
    expect(findingLines).toHaveLength(report.findings.length);
    for (const finding of report.findings) expect(lines).toContain(`  ${finding.kind.padEnd(8)} ${finding.path}: ${finding.message}`);
    const order = findingLines.map((l) => l.trim().split(' ')[0]);
    expect(order).toEqual([...order].sort((a, b) => ['rejected', 'differs', 'note'].indexOf(a ?? '') - ['rejected', 'differs', 'note'].indexOf(b ?? '')));
    expect(report.validation).toContainEqual({ path: 'token.expiration', message: expect.stringMatching(/at least 60/) });
  });

  it('reports broken YAML as a rejected finding with its line', async () => {
    const report = await checkDockerAuthConfig(await write('broken.yml', 'token:\n  issuer: [unclosed\n'), {});
    expect(report.findings[0]).toMatchObject({ kind: 'rejected', message: expect.stringMatching(/^not valid YAML/) });
    expect(report.runsUnmodified).toBe(false);
  });

  it('fails with the file name when the file cannot be read', async () => {
    await expect(checkDockerAuthConfig(join(keys.dir, 'missing.yml'), {})).rejects.toThrow(/missing\.yml: invalid configuration\n\s+\(top level\): cannot read the file/);
  });
});
