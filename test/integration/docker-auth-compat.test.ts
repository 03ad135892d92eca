/**
 * The compatibility suite: docker_auth-style configurations (static users with labels, the
 * anonymous user "", ACLs with every kind of pattern) run through the real token endpoint, by GET
 * and by POST, and each case checks the `access` claim of the JWT it gets back. The behaviour is
 * the one docker_auth users rely on (reference docker_auth.md §2.3 and §3), in our own cases;
 * the two documented differences (a requested `*` on a repository is spelled out, captures are
 * escaped) are marked as such. The last block runs `check-config --docker-auth` as a program.
 */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StsServer } from '../../src/server/app.js';
import { runCli } from '../helpers/cli.js';
import { baseConfig, decodeJwt, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess } from '../helpers/server.js';

interface Access {
  type: string;
  name: string;
  actions: string[];
}

const repo = (name: string, actions: string[]): Access => ({ type: 'repository', name, actions });
const catalog = (actions: string[]): Access => ({ type: 'registry', name: 'catalog', actions });

/** Every user signs in with `<name>-pw`; labels as docker_auth's static users carry them. */
const USERS: Record<string, { labels?: Record<string, string[]> }> = {
  admin: {},
  alice: { labels: { team: ['dev', 'qa'], tier: ['gold'] } },
  bob: { labels: { team: ['ops'] } },
  ci: { labels: { project: ['api', 'web'], tier: ['silver'] } },
  'jane@test.com': {},
  'x.y': {},
  tools: {},
};

type Rule = { match: Record<string, unknown>; actions: string[]; comment?: string };

/** One ACL per concern; the rules are docker_auth's syntax, the order is part of each test. */
const SCENARIOS = {
  order: {
    anonymous: false,
    acl: [
      { match: { account: 'admin' }, actions: ['*'] },
      { match: { account: 'alice', name: 'secret/*' }, actions: [], comment: 'an explicit deny' },
      { match: { account: 'alice' }, actions: ['pull', 'push'] },
      { match: { account: '/.+/' }, actions: ['pull'] },
    ],
  },
  anonymous: {
    anonymous: true,
    acl: [
      { match: { account: '', name: 'public/*' }, actions: ['pull'] },
      { match: { account: '/.+/' }, actions: ['pull', 'push'] },
    ],
  },
  globs: {
    anonymous: false,
    acl: [
      { match: { name: 'lib?/*' }, actions: ['delete'] },
      { match: { name: '[a-c]*/app' }, actions: ['push'] },
      { match: { name: 'team/*' }, actions: ['pull', 'push'] },
      { match: { name: '*' }, actions: ['pull'] },
    ],
  },
  regex: {
    anonymous: false,
    acl: [
      { match: { account: '/(?i)^ADMIN$/' }, actions: ['*'] },
      { match: { name: '/lib/' }, actions: ['pull'] },
      { match: { name: '/^team\\//' }, actions: ['pull', 'push'] },
      { match: { account: '/.+/', name: '/^(dev|qa)-.+$/' }, actions: ['push'] },
    ],
  },
  placeholders: {
    anonymous: false,
    acl: [
      { match: { account: '/^(.+)@test\\.com$/', name: '${account:1}/*' }, actions: ['pull', 'push'] },
      { match: { name: '/^home\\/([a-z]+)\\//', account: '${name:1}' }, actions: ['pull', 'push', 'delete'] },
      { match: { account: '/.+/', name: '${account}/*' }, actions: ['*'] },
      { match: { account: '${name}' }, actions: ['push'] },
      { match: { account: '/.+/', name: '/^${account}-[a-z]+$/' }, actions: ['pull'] },
      { match: { name: '${service}-cache/*' }, actions: ['pull'] },
      { match: { type: '/^(repository)$/', name: '${type}-mirror/*' }, actions: ['pull'] },
      { match: { name: '${labels:team}/*' }, actions: ['pull', 'push'] },
      { match: { name: '${labels:project}-${labels:tier}/*' }, actions: ['pull'] },
    ],
  },
  labels: {
    anonymous: false,
    acl: [
      { match: { labels: { team: 'dev', tier: '/^(gold|silver)$/' } }, actions: ['pull', 'push'] },
      { match: { labels: { team: 'o*' } }, actions: ['pull'] },
      { match: { labels: { project: '/^ap/' } }, actions: ['delete'] },
    ],
  },
  network: {
    anonymous: false,
    acl: [
      { match: { ip: '10.1.0.0/16', account: 'ci' }, actions: ['pull', 'push'] },
      { match: { ip: '192.0.2.7' }, actions: ['delete'] },
      { match: { ip: '2001:db8::/32' }, actions: ['push'] },
      { match: { service: 'registry-a' }, actions: ['pull'] },
      { match: { service: '*.internal' }, actions: ['pull', 'push'] },
    ],
  },
  catalog: {
    anonymous: false,
    acl: [
      { match: { account: 'admin', type: 'registry', name: 'catalog' }, actions: ['*'] },
      { match: { account: 'bob', type: 'registry' }, actions: ['pull'] },
      { match: { account: 'tools' }, actions: ['pull', '*'] },
      { match: { account: '/.+/', type: 'registry' }, actions: [] },
      { match: { account: '/.+/' }, actions: ['pull'] },
    ],
  },
} satisfies Record<string, { anonymous: boolean; acl: Rule[] }>;

type Scenario = keyof typeof SCENARIOS;

interface Case {
  name: string;
  scenario: Scenario;
  /** The account signing in; null for a request without credentials. */
  as: string | null;
  /** Overrides the right password `<as>-pw`. */
  password?: string;
  scopes: string[];
  service?: string;
  ip?: string;
  /** The `access` claim, or 401. */
  expect: Access[] | 401;
}

const ALL = 'pull,push,delete';

const CASES: Case[] = [
  // First match wins; actions: ["*"], a list, and [].
  { name: 'order: ["*"] grants exactly the actions asked for', scenario: 'order', as: 'admin', scopes: ['repository:x/y:pull,push'], expect: [repo('x/y', ['pull', 'push'])] },
  { name: 'order: ["*"] echoes a vendor action too', scenario: 'order', as: 'admin', scopes: ['repository:x/y:scanner-pull'], expect: [repo('x/y', ['scanner-pull'])] },
  { name: 'order: ["*"] grants the catalog its literal *', scenario: 'order', as: 'admin', scopes: ['registry:catalog:*'], expect: [catalog(['*'])] },
  { name: 'order: an empty-actions rule denies although a later rule would allow', scenario: 'order', as: 'alice', scopes: ['repository:secret/app:pull'], expect: [repo('secret/app', [])] },
  { name: 'order: a list grants its intersection with the request, sorted', scenario: 'order', as: 'alice', scopes: [`repository:x/y:push,delete,pull`], expect: [repo('x/y', ['pull', 'push'])] },
  { name: 'order: an account no earlier rule names falls through to /.+/', scenario: 'order', as: 'bob', scopes: ['repository:x/y:pull,push'], expect: [repo('x/y', ['pull'])] },
  { name: 'order: a pull,push rule grants nothing on the catalog', scenario: 'order', as: 'alice', scopes: ['registry:catalog:*'], expect: [catalog([])] },
  { name: 'order: each scope of a request is decided on its own', scenario: 'order', as: 'alice', scopes: ['repository:secret/a:pull', 'repository:team/b:pull'], expect: [repo('secret/a', []), repo('team/b', ['pull'])] },
  { name: 'order: a login without scope gets an empty access list', scenario: 'order', as: 'bob', scopes: [], expect: [] },
  { name: 'order: no "" user: a request without credentials is 401', scenario: 'order', as: null, scopes: ['repository:x/y:pull'], expect: 401 },
  { name: 'order: a wrong password is 401', scenario: 'order', as: 'alice', password: 'nope', scopes: ['repository:x/y:pull'], expect: 401 },

  // Anonymous access with users: {"": {}}.
  { name: 'anonymous: pulls a public repository', scenario: 'anonymous', as: null, scopes: ['repository:public/app:pull'], expect: [repo('public/app', ['pull'])] },
  { name: 'anonymous: asking to push gets pull only', scenario: 'anonymous', as: null, scopes: ['repository:public/app:pull,push'], expect: [repo('public/app', ['pull'])] },
  { name: 'anonymous: /.+/ does not match the account ""', scenario: 'anonymous', as: null, scopes: ['repository:private/app:pull'], expect: [repo('private/app', [])] },
  { name: 'anonymous: a signed-in user skips the rule for ""', scenario: 'anonymous', as: 'alice', scopes: ['repository:public/app:pull,push'], expect: [repo('public/app', ['pull', 'push'])] },
  { name: 'anonymous: a wrong password never falls back to anonymous', scenario: 'anonymous', as: 'alice', password: 'nope', scopes: ['repository:public/app:pull'], expect: 401 },

  // Go path.Match globs: anchored, * and ? do not cross /.
  { name: 'globs: * matches a top-level name', scenario: 'globs', as: 'bob', scopes: [`repository:app:${ALL}`], expect: [repo('app', ['pull'])] },
  { name: 'globs: * does not cross /', scenario: 'globs', as: 'bob', scopes: [`repository:zz/app:${ALL}`], expect: [repo('zz/app', [])] },
  { name: 'globs: team/* matches one level below team', scenario: 'globs', as: 'bob', scopes: [`repository:team/app:${ALL}`], expect: [repo('team/app', ['pull', 'push'])] },
  { name: 'globs: team/* does not match two levels below', scenario: 'globs', as: 'bob', scopes: [`repository:team/app/sub:${ALL}`], expect: [repo('team/app/sub', [])] },
  { name: 'globs: ? matches exactly one character', scenario: 'globs', as: 'bob', scopes: [`repository:lib1/x:${ALL}`], expect: [repo('lib1/x', ['delete'])] },
  { name: 'globs: ? does not match zero characters', scenario: 'globs', as: 'bob', scopes: [`repository:lib/x:${ALL}`], expect: [repo('lib/x', [])] },
  { name: 'globs: a [a-c] class', scenario: 'globs', as: 'bob', scopes: [`repository:b-tools/app:${ALL}`], expect: [repo('b-tools/app', ['push'])] },

  // /regex/: RE2, unanchored.
  { name: 'regex: (?i) at the start makes the match case-insensitive', scenario: 'regex', as: 'admin', scopes: ['repository:x/y:pull,push'], expect: [repo('x/y', ['pull', 'push'])] },
  { name: 'regex: is not anchored (/lib/ matches tools/mylibrary)', scenario: 'regex', as: 'bob', scopes: [`repository:tools/mylibrary:${ALL}`], expect: [repo('tools/mylibrary', ['pull'])] },
  { name: 'regex: an anchored prefix matches any depth', scenario: 'regex', as: 'bob', scopes: [`repository:team/a/b/c:${ALL}`], expect: [repo('team/a/b/c', ['pull', 'push'])] },
  { name: 'regex: alternation', scenario: 'regex', as: 'bob', scopes: [`repository:qa-app:${ALL}`], expect: [repo('qa-app', ['push'])] },
  { name: 'regex: ^ and $ anchor where written', scenario: 'regex', as: 'bob', scopes: [`repository:xqa-app:${ALL}`], expect: [repo('xqa-app', [])] },

  // Placeholders.
  { name: 'placeholders: ${account:1} is the account regex capture', scenario: 'placeholders', as: 'jane@test.com', scopes: ['repository:jane/app:pull,push'], expect: [repo('jane/app', ['pull', 'push'])] },
  { name: 'placeholders: ${account:1} does not open other namespaces', scenario: 'placeholders', as: 'jane@test.com', scopes: ['repository:joe/app:pull,push'], expect: [repo('joe/app', [])] },
  { name: 'placeholders: ${name:1} captures from the name into the account', scenario: 'placeholders', as: 'alice', scopes: ['repository:home/alice/app:delete'], expect: [repo('home/alice/app', ['delete'])] },
  { name: 'placeholders: ${name:1} is someone else\'s home for bob', scenario: 'placeholders', as: 'bob', scopes: ['repository:home/alice/app:delete'], expect: [repo('home/alice/app', [])] },
  { name: 'placeholders: ${account}/* is the user\'s own namespace (requested * spelled out)', scenario: 'placeholders', as: 'bob', scopes: ['repository:bob/tools:*'], expect: [repo('bob/tools', ['delete', 'pull', 'push'])] },
  { name: 'placeholders: ${name} in the account pattern', scenario: 'placeholders', as: 'tools', scopes: ['repository:tools:pull,push'], expect: [repo('tools', ['push'])] },
  { name: 'placeholders: ${account} is quoted inside a regex (x.y matches x.y-app)', scenario: 'placeholders', as: 'x.y', scopes: ['repository:x.y-app:pull'], expect: [repo('x.y-app', ['pull'])] },
  { name: 'placeholders: ${account} is quoted inside a regex (. is not any character)', scenario: 'placeholders', as: 'x.y', scopes: ['repository:xzy-app:pull'], expect: [repo('xzy-app', [])] },
  { name: 'placeholders: ${service} is the requested service', scenario: 'placeholders', as: 'bob', service: 'staging', scopes: ['repository:staging-cache/app:pull'], expect: [repo('staging-cache/app', ['pull'])] },
  { name: 'placeholders: ${service} does not match another service', scenario: 'placeholders', as: 'bob', service: 'prod', scopes: ['repository:staging-cache/app:pull'], expect: [repo('staging-cache/app', [])] },
  { name: 'placeholders: ${type} is the resource type', scenario: 'placeholders', as: 'bob', scopes: ['repository:repository-mirror/app:pull'], expect: [repo('repository-mirror/app', ['pull'])] },
  { name: 'placeholders: ${labels:team} tries each label value', scenario: 'placeholders', as: 'alice', scopes: ['repository:dev/app:pull,push', 'repository:qa/app:pull,push', 'repository:ops/app:pull,push'], expect: [repo('dev/app', ['pull', 'push']), repo('qa/app', ['pull', 'push']), repo('ops/app', [])] },
  { name: 'placeholders: ${labels:team} for another user\'s labels', scenario: 'placeholders', as: 'bob', scopes: ['repository:ops/app:pull,push'], expect: [repo('ops/app', ['pull', 'push'])] },
  { name: 'placeholders: two label placeholders try every combination', scenario: 'placeholders', as: 'ci', scopes: ['repository:web-silver/x:pull', 'repository:api-silver/x:pull', 'repository:web-gold/x:pull'], expect: [repo('web-silver/x', ['pull']), repo('api-silver/x', ['pull']), repo('web-gold/x', [])] },
  { name: 'placeholders: an account without the label never matches ${labels:team}', scenario: 'placeholders', as: 'tools', scopes: ['repository:dev/app:pull'], expect: [repo('dev/app', [])] },

  // labels: conditions.
  { name: 'labels: every key must match (AND)', scenario: 'labels', as: 'alice', scopes: ['repository:x/y:pull,push'], expect: [repo('x/y', ['pull', 'push'])] },
  { name: 'labels: a glob value matches one of the values', scenario: 'labels', as: 'bob', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['pull'])] },
  { name: 'labels: a regex value matches one of several values', scenario: 'labels', as: 'ci', scopes: ['repository:x/y:pull,delete'], expect: [repo('x/y', ['delete'])] },
  { name: 'labels: a missing label never matches', scenario: 'labels', as: 'tools', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', [])] },

  // ip and service.
  { name: 'network: a CIDR and an account together', scenario: 'network', as: 'ci', ip: '10.1.2.3', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['pull', 'push'])] },
  { name: 'network: outside the CIDR the next rule decides', scenario: 'network', as: 'ci', ip: '10.2.0.1', service: 'registry-a', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['pull'])] },
  { name: 'network: inside the CIDR with another account', scenario: 'network', as: 'bob', ip: '10.1.2.3', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', [])] },
  { name: 'network: an exact IPv4 address', scenario: 'network', as: 'bob', ip: '192.0.2.7', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['delete'])] },
  { name: 'network: an IPv4-mapped IPv6 client counts as IPv4', scenario: 'network', as: 'bob', ip: '::ffff:192.0.2.7', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['delete'])] },
  { name: 'network: an IPv6 CIDR', scenario: 'network', as: 'bob', ip: '2001:db8::1', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['push'])] },
  { name: 'network: an exact service', scenario: 'network', as: 'bob', service: 'registry-a', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['pull'])] },
  { name: 'network: a service glob', scenario: 'network', as: 'bob', service: 'cache.internal', scopes: [`repository:x/y:${ALL}`], expect: [repo('x/y', ['pull', 'push'])] },

  // The catalog.
  { name: 'catalog: ["*"] on type registry, name catalog', scenario: 'catalog', as: 'admin', scopes: ['registry:catalog:*'], expect: [catalog(['*'])] },
  { name: 'catalog: actions [pull] grant nothing on the catalog', scenario: 'catalog', as: 'bob', scopes: ['registry:catalog:*'], expect: [catalog([])] },
  { name: 'catalog: an empty rule denies it to everyone else', scenario: 'catalog', as: 'alice', scopes: ['registry:catalog:*'], expect: [catalog([])] },
  { name: 'catalog: a * inside a longer list is an action name, which the catalog asks for', scenario: 'catalog', as: 'tools', scopes: ['registry:catalog:*', 'repository:x/y:pull,push'], expect: [catalog(['*']), repo('x/y', ['pull'])] },
  { name: 'catalog: a requested * on a repository gets the explicit actions (a documented difference)', scenario: 'catalog', as: 'alice', scopes: ['repository:x/y:*'], expect: [repo('x/y', ['pull'])] },
];

let keys: KeyDir;
const servers = new Map<Scenario, StsServer>();

beforeAll(async () => {
  keys = await makeKeyDir('ec-p256');
  const users: NonNullable<ConfigInput['users']> = {};
  for (const [name, user] of Object.entries(USERS)) users[name] = { password: await hash(`${name}-pw`), ...user };
  for (const [scenario, { anonymous, acl }] of Object.entries(SCENARIOS) as [Scenario, { anonymous: boolean; acl: Rule[] }][]) {
    // No token.services: any service is accepted, as in docker_auth.
    const config = baseConfig({ users: anonymous ? { ...users, '': {} } : users, acl });
    config.token = { ...config.token, services: undefined };
    const { server } = await startInProcess(keys, config);
    servers.set(scenario, server);
  }
});

afterAll(async () => {
  for (const server of servers.values()) await server.close();
  await keys?.cleanup();
});

async function ask(method: 'GET' | 'POST', c: Case) {
  const server = servers.get(c.scenario);
  if (!server) throw new Error(`no server for ${c.scenario}`);
  const params = new URLSearchParams({ service: c.service ?? 'registry.example.com' });
  for (const scope of c.scopes) params.append('scope', scope);
  const password = c.password ?? `${c.as}-pw`;
  const remoteAddress = c.ip ?? '198.51.100.20';
  if (method === 'GET') {
    if (c.as !== null) params.set('account', c.as);
    return server.app.inject({
      method,
      url: `/auth?${params}`,
      headers: c.as === null ? {} : { authorization: basic(c.as, password) },
      remoteAddress,
    });
  }
  // The OAuth2 form as containerd sends it: a password grant, or no credentials at all.
  if (c.as !== null) {
    params.set('grant_type', 'password');
    params.set('username', c.as);
    params.set('password', password);
  }
  params.set('client_id', 'compat-suite');
  return server.app.inject({
    method,
    url: '/auth',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: params.toString(),
    remoteAddress,
  });
}

describe.each(['GET', 'POST'] as const)('docker_auth ACL semantics through %s /auth', (method) => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const res = await ask(method, c);
    if (c.expect === 401) {
      expect(res.statusCode, res.body).toBe(401);
      return;
    }
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as { token: string; access_token: string };
    expect(body.access_token).toBe(body.token);
    const { claims } = decodeJwt(body.access_token);
    expect(claims.sub).toBe(c.as ?? '');
    expect(claims.aud).toBe(c.service ?? 'registry.example.com');
    expect(claims.access).toEqual(c.expect);
  });
});

describe('the suite itself', () => {
  it('has at least 40 named cases, each name once, and uses every scenario', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    expect(new Set(CASES.map((c) => c.scenario))).toEqual(new Set(Object.keys(SCENARIOS)));
  });
});

describe('check-config --docker-auth, the program', () => {
  it('exits 0 for a docker_auth file that runs unmodified, 2 for one that does not', async () => {
    const good = join(keys.dir, 'docker_auth_ok.yml');
    await writeFile(
      good,
      `server: {addr: ":5001"}\ntoken: {issuer: "Acme auth server", expiration: 900, certificate: token.crt, key: token.key}\nusers:\n  admin: {password: "${await hash('admin-pw')}"}\n  "": {}\nacl:\n  - match: {account: admin}\n    actions: ["*"]\n`,
    );
    const ok = await runCli(['check-config', '--docker-auth', good]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^validation: passes/m);
    expect(ok.stdout).toMatch(/^ {2}differs {2}token\.expiration: responses carry expires_in: 900/m);

    const bad = join(keys.dir, 'docker_auth_bad.yml');
    await writeFile(bad, `server: {addr: ":5001"}\ntoken: {issuer: x, expiration: 900, certificate: token.crt, key: token.key}\nusers: {test: {}}\nmongo_auth: {collection: users}\nacl:\n  - match: {team: infra}\n    actions: [pull]\n`);
    const res = await runCli(['check-config', '--docker-auth', bad]);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stdout).toMatch(/^ {2}rejected acl\[0\]\.match\.team: unknown match key: docker_auth ignored it, so this rule matched every request/m);
    expect(res.stdout).toMatch(/^ {2}rejected users\.test\.password: missing/m);
    expect(res.stdout).toMatch(/^ {2}mongo_auth: docker_auth's mongo_auth is not supported: use store users/m);
    expect(res.stdout).toMatch(/^validation: fails/m);
  });

  it('refuses a config file and --docker-auth together', async () => {
    const res = await runCli(['check-config', 'a.yml', '--docker-auth', 'b.yml']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/either a config file or --docker-auth/);
  });
});
