/**
 * ldap_auth against a real OpenLDAP slapd (test/helpers/slapd.ts): search-then-bind and direct
 * bind, labels from memberOf and from a group search used by an ACL rule, LDAP injection, the
 * credential cache, outages (slapd stopped, a server that never answers) and TLS (LDAPS and
 * StartTLS, with and without the CA).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ldapAuthSchema, LdapAuthenticator, prepareLdapAuth, type LdapAuthConfig, type PreparedLdap } from '../../src/authn/ldap.js';
import { BackendUnavailableError } from '../../src/authn/errors.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StsServer } from '../../src/server/app.js';
import { baseConfig, decodeJwt, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess, type MemoryAudit } from '../helpers/server.js';
import { BASE_DN, freePort, GROUPS, PEOPLE, SERVICE_DN, startSlapd, USERS, type Slapd } from '../helpers/slapd.js';

type LdapInput = NonNullable<ConfigInput['ldap_auth']>;

let slapd: Slapd;
let keys: KeyDir;
const servers: StsServer[] = [];
const authenticators: LdapAuthenticator[] = [];

const ACL = [
  { match: { labels: { groups: 'devs' }, name: 'devs/*' }, actions: ['*'], comment: 'developers push' },
  { match: { account: '/.+/', name: 'devs/*' }, actions: ['pull'] },
];
const SCOPE = 'repository:devs/app:pull,push';

beforeAll(async () => {
  [slapd, keys] = await Promise.all([startSlapd(), makeKeyDir('ec-p256')]);
});

afterAll(async () => {
  for (const auth of authenticators) auth.close();
  await Promise.all(servers.map((s) => s.close()));
  await slapd?.close();
  await keys?.cleanup();
});

/** A search-then-bind section for the test directory; no cache unless a test asks for one. */
function section(overrides: Partial<LdapInput> = {}): LdapInput {
  return {
    addr: `127.0.0.1:${slapd.port}`,
    base: BASE_DN,
    filter: '(&(objectClass=inetOrgPerson)(uid=${account}))',
    bind_dn: SERVICE_DN,
    bind_password_file: slapd.servicePasswordFile,
    labels: { groups: { attribute: 'memberOf', parse_cn: true, lower_case: true } },
    cache_ttl: 0,
    ...overrides,
  };
}

async function serve(
  ldap: LdapInput,
  options: { now?: () => number } = {},
  extra: Partial<ConfigInput> = {},
): Promise<{ server: StsServer; audit: MemoryAudit }> {
  const started = await startInProcess(keys, baseConfig({ users: undefined, acl: ACL, ldap_auth: ldap, ...extra }), options);
  servers.push(started.server);
  return started;
}

/** The authenticator alone, for outcomes the HTTP layer folds into one 401. */
async function authenticator(ldap: LdapInput, extra: PreparedLdap = {}): Promise<LdapAuthenticator> {
  const parsed: LdapAuthConfig = ldapAuthSchema.parse(ldap);
  const issues: { path: string; message: string }[] = [];
  const prepared = await prepareLdapAuth(parsed, '/', issues);
  expect(issues).toEqual([]);
  const auth = new LdapAuthenticator(parsed, { ...prepared, ...extra });
  authenticators.push(auth);
  return auth;
}

function token(server: StsServer, user: string, password: string, scope = SCOPE) {
  return server.app.inject({
    method: 'GET',
    url: `/auth?service=test-registry&scope=${encodeURIComponent(scope)}`,
    headers: { authorization: basic(user, password) },
  });
}

const actionsOf = (body: { token: string }) => (decodeJwt(body.token).claims.access as { actions: string[] }[])[0]?.actions;

/** slapd writes its log asynchronously to our pipe: wait until the count settles. */
async function bindsOf(dn: string): Promise<number> {
  let last = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 150));
    const now = slapd.binds(dn);
    if (now === last) return now;
    last = now;
  }
}

const ALICE_DN = `uid=alice,${PEOPLE}`;

function lookup(auth: LdapAuthenticator, account: string) {
  if (!auth.lookup) throw new Error('this authenticator has no lookup');
  return auth.lookup(account);
}

describe('search-then-bind', () => {
  let server: StsServer;
  let audit: MemoryAudit;
  beforeAll(async () => {
    ({ server, audit } = await serve(section()));
  });

  it('lets alice in, with her memberOf groups as labels that an ACL rule grants push on', async () => {
    const res = await token(server, 'alice', USERS.alice);
    expect(res.statusCode).toBe(200);
    expect(actionsOf(res.json())).toEqual(['pull', 'push']);
    expect(audit.last()).toMatchObject({ result: 'issued', account: 'alice', backend: 'ldap' });
    expect(audit.last().reason).toContain('developers push');
  });

  it('gives bob, who is not in Devs, pull only', async () => {
    const res = await token(server, 'bob', USERS.bob);
    expect(res.statusCode).toBe(200);
    expect(actionsOf(res.json())).toEqual(['pull']);
  });

  it('answers a wrong password 401', async () => {
    const res = await token(server, 'alice', 'not-her-password');
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
    expect(audit.last()).toMatchObject({ result: 'unauthorized', account: 'alice' });
    expect(audit.last().reason).toMatch(/refused the bind: invalid credentials/);
  });

  it('answers an unknown user 401 "unknown account" (no entry: the next backend would have been asked)', async () => {
    const res = await token(server, 'mallory', 'whatever');
    expect(res.statusCode).toBe(401);
    expect(audit.last().reason).toBe('unknown account');
  });

  it('denies a user whose bind the server refuses (carol, disabled by an ACL)', async () => {
    const res = await token(server, 'carol', USERS.carol);
    expect(res.statusCode).toBe(401);
    expect(audit.last().reason).toMatch(/refused the bind/);
  });

  it('never sends an empty password to the server (an unauthenticated bind would "succeed")', async () => {
    const auth = await authenticator(section());
    const before = await bindsOf(ALICE_DN);
    expect(await auth.authenticate({ username: 'alice', password: '' })).toEqual({ outcome: 'no-match' });
    expect(await auth.authenticate({ username: '', password: USERS.alice })).toEqual({ outcome: 'no-match' });
    expect(await auth.authenticate(null)).toEqual({ outcome: 'no-match' });
    expect(await bindsOf(ALICE_DN)).toBe(before);
    const res = await token(server, 'alice', '');
    expect(res.statusCode).toBe(401);
  });

  it('denies, with a clear reason, a filter that finds more than one entry', async () => {
    const auth = await authenticator(section({ filter: '(mail=${account})' }));
    const result = await auth.authenticate({ username: 'shared@example.org', password: USERS.erin });
    expect(result).toEqual({ outcome: 'denied', reason: expect.stringMatching(/filter matches more than one entry for "shared@example.org"; it must match exactly one/) });
  });

  it('finds the account without a password (lookup), for the owners of refresh and access tokens', async () => {
    const auth = await authenticator(section());
    expect(await lookup(auth, 'alice')).toEqual({
      outcome: 'identity',
      identity: { account: 'alice', labels: { groups: ['devs', 'everyone'] }, backend: 'ldap', anonymous: false },
    });
    expect(await lookup(auth, 'nobody')).toEqual({ outcome: 'no-match' });
    expect(await lookup(auth, '*')).toEqual({ outcome: 'no-match' });
  });

  it('maps several attributes, keeping docker_auth parse_cn and lower_case apart', async () => {
    const auth = await authenticator(
      section({
        labels: {
          groups: { attribute: 'memberOf', parse_cn: true },
          group_dns: { attribute: 'memberof' },
          title: { attribute: 'title', lower_case: true },
          phone: { attribute: 'telephoneNumber' },
        },
      }),
    );
    const result = await auth.authenticate({ username: 'alice', password: USERS.alice });
    expect(result.outcome).toBe('identity');
    const labels = result.outcome === 'identity' ? result.identity.labels : {};
    expect(labels.groups).toEqual(['Devs', 'Everyone']);
    expect(labels.group_dns).toEqual([`cn=Devs,${GROUPS}`, `cn=Everyone,${GROUPS}`]);
    expect(labels.title).toEqual(['engineer']);
    // docker_auth sets a label only when the entry has the attribute.
    expect(labels).not.toHaveProperty('phone');
  });
});

describe('LDAP injection in the user name', () => {
  // Each is tried with alice's real password: if any matched her entry, it would get in.
  const attempts = [
    '*',
    'al*',
    '*ice',
    ')(uid=*',
    'alice)(uid=*',
    'admin)(|(uid=*',
    '*)(uid=alice',
    'alice)(|(objectClass=*',
    'alice\0',
    'alice\0)(uid=*',
    'alice\\',
    '\\2a',
    'alice\\29',
    'uid=alice',
  ];

  let auth: LdapAuthenticator;
  let alicesBinds: number;
  beforeAll(async () => {
    auth = await authenticator(section());
    alicesBinds = await bindsOf(ALICE_DN);
  });

  it.each(attempts)('search-then-bind: %j matches no entry', async (username) => {
    expect(await auth.authenticate({ username, password: USERS.alice })).toEqual({ outcome: 'no-match' });
  });

  it('search-then-bind: none of them got as far as a bind as alice', async () => {
    expect(await bindsOf(ALICE_DN)).toBe(alicesBinds);
  });

  it.each([...attempts, 'alice,ou=people', `alice,${PEOPLE}`, 'alice+cn=x', '#alice', 'alice\\,x'])(
    'direct bind: %j is never alice',
    async (username) => {
      const auth = await authenticator({ addr: `127.0.0.1:${slapd.port}`, initial_bind_as_user: true, bind_dn: `uid=\${account},${PEOPLE}`, cache_ttl: 0 });
      const result = await auth.authenticate({ username, password: USERS.alice });
      expect(result.outcome).toBe('denied');
    },
  );

  it('through the token endpoint too', async () => {
    const { server } = await serve(section());
    for (const username of ['*', ')(uid=*', 'admin)(|(uid=*']) {
      const res = await token(server, username, USERS.alice);
      expect(res.statusCode, username).toBe(401);
    }
  });
});

describe('direct bind (initial_bind_as_user)', () => {
  it('binds as the user DN built from bind_dn and reads labels from the entry as the user', async () => {
    const { server } = await serve({
      addr: `127.0.0.1:${slapd.port}`,
      initial_bind_as_user: true,
      bind_dn: `uid=\${account},${PEOPLE}`,
      labels: { groups: { attribute: 'memberOf', parse_cn: true, lower_case: true } },
      cache_ttl: 0,
    });
    const res = await token(server, 'alice', USERS.alice);
    expect(res.statusCode).toBe(200);
    expect(actionsOf(res.json())).toEqual(['pull', 'push']);
    expect((await token(server, 'alice', 'wrong')).statusCode).toBe(401);
    expect((await token(server, 'carol', USERS.carol)).statusCode).toBe(401);
  });

  it('has no lookup (no service account), so token owners cannot be re-checked and no refresh token is made', async () => {
    const auth = await authenticator({ addr: `127.0.0.1:${slapd.port}`, initial_bind_as_user: true, bind_dn: `uid=\${account},${PEOPLE}` });
    expect(auth.lookup).toBeUndefined();
  });

  it('escapes the account for the DN (RFC 4514): "smith, john" is one RDN value', async () => {
    const auth = await authenticator({ addr: `127.0.0.1:${slapd.port}`, initial_bind_as_user: true, bind_dn: `uid=\${account},${PEOPLE}`, cache_ttl: 0 });
    const result = await auth.authenticate({ username: 'smith, john', password: USERS['smith, john'] });
    expect(result).toMatchObject({ outcome: 'identity', identity: { account: 'smith, john', backend: 'ldap' } });
  });

  it('with base and filter (docker_auth), searches as the user after the bind; no entry is no match', async () => {
    const ldap: LdapInput = {
      addr: `127.0.0.1:${slapd.port}`,
      initial_bind_as_user: true,
      bind_dn: `uid=\${account},${PEOPLE}`,
      base: BASE_DN,
      filter: '(&(uid=${account})(memberOf=cn=Devs,ou=groups,dc=example,dc=org))',
      labels: { groups: { attribute: 'memberOf', parse_cn: true, lower_case: true } },
      cache_ttl: 0,
    };
    const auth = await authenticator(ldap);
    expect(await auth.authenticate({ username: 'alice', password: USERS.alice })).toMatchObject({
      outcome: 'identity',
      identity: { labels: { groups: ['devs', 'everyone'] } },
    });
    expect(await auth.authenticate({ username: 'bob', password: USERS.bob })).toEqual({ outcome: 'no-match' });
  });
});

describe('group_search (directories without memberOf)', () => {
  const groupSection = () =>
    section({
      group_search: { base: GROUPS, filter: '(&(objectClass=groupOfNames)(member=${dn}))', attribute: 'teams' },
      labels: { groups: { attribute: 'teams', parse_cn: true, lower_case: true } },
    });

  it('labels alice with the groups that name her as a member, and the ACL rule grants push', async () => {
    const auth = await authenticator(groupSection());
    expect(await auth.authenticate({ username: 'alice', password: USERS.alice })).toMatchObject({
      outcome: 'identity',
      identity: { labels: { groups: ['devs', 'everyone'] } },
    });
    const { server } = await serve(groupSection());
    const res = await token(server, 'alice', USERS.alice);
    expect(res.statusCode).toBe(200);
    expect(actionsOf(res.json())).toEqual(['pull', 'push']);
    expect(actionsOf((await token(server, 'bob', USERS.bob)).json())).toEqual(['pull']);
  });

  it('escapes the DN inside the group filter: "uid=smith\\, john,..." still finds his group', async () => {
    const auth = await authenticator(groupSection());
    expect(await auth.authenticate({ username: 'smith, john', password: USERS['smith, john'] })).toMatchObject({
      outcome: 'identity',
      identity: { labels: { groups: ['writers'] } },
    });
  });

  it('a user in no group gets an empty label', async () => {
    const auth = await authenticator(
      section({
        group_search: { base: GROUPS, filter: '(&(objectClass=groupOfNames)(member=${dn})(cn=Nothing))', attribute: 'teams' },
        labels: { groups: { attribute: 'teams' } },
      }),
    );
    expect(await auth.authenticate({ username: 'alice', password: USERS.alice })).toMatchObject({
      outcome: 'identity',
      identity: { labels: { groups: [] } },
    });
  });
});

describe('TLS', () => {
  it('LDAPS with the CA (ca_certificate) works', async () => {
    const { server } = await serve(section({ addr: `127.0.0.1:${slapd.ldapsPort}`, tls: 'always', ca_certificate: slapd.caFile }));
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
  });

  it('StartTLS with the CA works', async () => {
    const { server } = await serve(section({ tls: 'starttls', ca_certificate: slapd.caFile }));
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
    expect((await token(server, 'alice', 'wrong')).statusCode).toBe(401);
  });

  it.each([
    ['LDAPS', () => section({ addr: `127.0.0.1:${slapd.ldapsPort}`, tls: 'always' })],
    ['StartTLS', () => section({ tls: 'starttls' })],
  ])('%s without the CA (and without skip-verify) is 503 with a TLS message, never 401', async (_mode, make) => {
    const { server, audit } = await serve(make());
    const res = await token(server, 'alice', USERS.alice);
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json().errors[0]).toMatchObject({ code: 'UNAVAILABLE' });
    expect(audit.last().reason).toMatch(/TLS with LDAP server 127\.0\.0\.1:\d+ failed: its certificate cannot be verified.*ca_certificate/);
  });

  it('insecure_tls_skip_verify accepts the unknown CA', async () => {
    const { server } = await serve(section({ addr: `127.0.0.1:${slapd.ldapsPort}`, tls: 'always', insecure_tls_skip_verify: true }));
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
  });
});

describe('a server that never answers', () => {
  let silent: Server;
  let port: number;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    // Accepts connections and reads them, but never writes a byte: a hung directory.
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('data', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    port = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it.each([
    ['plain LDAP', 'none'],
    ['LDAPS (the TLS handshake hangs)', 'always'],
    ['StartTLS (the extended operation hangs)', 'starttls'],
  ] as const)('%s: 503 within the configured timeout', async (_name, tls) => {
    const { server, audit } = await serve(section({ addr: `127.0.0.1:${port}`, tls, timeout: '800ms' }));
    const started = performance.now();
    const res = await token(server, 'alice', USERS.alice);
    const elapsed = performance.now() - started;
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(elapsed).toBeGreaterThanOrEqual(700);
    expect(elapsed).toBeLessThan(1800);
    expect(audit.last().reason).toMatch(/did not answer within 0\.8s/);
  });

  it('lookup times out the same way (a thrown BackendUnavailableError, not "no such user")', async () => {
    const auth = await authenticator(section({ addr: `127.0.0.1:${port}`, timeout: 0.5 }));
    await expect(lookup(auth, 'alice')).rejects.toBeInstanceOf(BackendUnavailableError);
  });
});

describe('outages and the credential cache', () => {
  it('a closed port is 503 with Retry-After, never 401', async () => {
    const { server, audit } = await serve(section({ addr: `127.0.0.1:${await freePort()}` }));
    const res = await token(server, 'alice', USERS.alice);
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json().errors[0].message).toMatch(/ldap backend is unavailable; try again shortly/);
    expect(audit.last().reason).toMatch(/cannot connect to LDAP server 127\.0\.0\.1:\d+: connection refused/);
  });

  it('remembers a login for cache_ttl (no second bind), survives slapd stopping for it, and never caches failures', async () => {
    let clock = Date.now();
    const { server, audit } = await serve(section({ cache_ttl: 60 }), { now: () => clock });

    const before = await bindsOf(ALICE_DN);
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
    expect(await bindsOf(ALICE_DN)).toBe(before + 1);
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
    expect(await bindsOf(ALICE_DN)).toBe(before + 1); // from the cache: no bind
    // A wrong password is never remembered, nor confused with the cached right one.
    expect((await token(server, 'alice', 'wrong')).statusCode).toBe(401);
    expect(await bindsOf(ALICE_DN)).toBe(before + 2);
    expect((await token(server, 'alice', 'wrong')).statusCode).toBe(401);
    expect(await bindsOf(ALICE_DN)).toBe(before + 3);

    await slapd.stop();
    try {
      // The cached login still works; anything that needs the directory is 503.
      expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
      const bob = await token(server, 'bob', USERS.bob);
      expect(bob.statusCode).toBe(503);
      expect(bob.headers['retry-after']).toBe('5');
      expect(audit.last().reason).toMatch(/LDAP server 127\.0\.0\.1:\d+/);
      expect((await token(server, 'alice', 'wrong')).statusCode).toBe(503);
      // Past the TTL the directory is asked again.
      clock += 61_000;
      expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(503);
    } finally {
      await slapd.start();
    }
    // Back: the pool drops its dead connections and opens new ones.
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
    expect((await token(server, 'bob', USERS.bob)).statusCode).toBe(200);
  });

  it('keeps working when slapd restarts between requests (pooled connections are replaced)', async () => {
    const { server } = await serve(section());
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
    await slapd.stop();
    await slapd.start();
    expect((await token(server, 'alice', USERS.alice)).statusCode).toBe(200);
  });

  it('concurrent logins share the pool (pool_size 1) without failing', async () => {
    const { server } = await serve(section({ pool_size: 1 }));
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => token(server, i % 2 ? 'alice' : 'bob', i % 2 ? USERS.alice : USERS.bob)));
    expect(results.map((r) => r.statusCode)).toEqual(Array(8).fill(200));
  });
});

describe('refresh tokens (docker login) for LDAP users', () => {
  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
  const post = (server: StsServer, form: Record<string, string>) =>
    server.app.inject({ method: 'POST', url: '/auth', headers: FORM, payload: new URLSearchParams({ service: 'test-registry', ...form }).toString() });

  it('are issued after a password login, and each use looks the owner up in the directory again', async () => {
    const { server, audit } = await serve(section(), {}, { store: { driver: 'sqlite', path: 'ldap-refresh.db' } });
    const login = await post(server, { grant_type: 'password', username: 'alice', password: USERS.alice, access_type: 'offline', client_id: 'test' });
    expect(login.statusCode).toBe(200);
    const refresh = login.json().refresh_token as string;
    expect(refresh).toMatch(/^stsrt_/);

    const grant = () => post(server, { grant_type: 'refresh_token', refresh_token: refresh, client_id: 'test', scope: SCOPE });
    const res = await grant();
    expect(res.statusCode).toBe(200);
    // The labels come from the lookup: alice is still in Devs.
    expect(actionsOf(res.json())).toEqual(['pull', 'push']);

    await slapd.stop();
    try {
      const down = await grant();
      expect(down.statusCode).toBe(503);
      expect(audit.last().reason).toMatch(/LDAP server/);
    } finally {
      await slapd.start();
    }
    expect((await grant()).statusCode).toBe(200);
  });

  it('are not issued with direct bind, which cannot look an owner up without the password', async () => {
    const { server } = await serve(
      { addr: `127.0.0.1:${slapd.port}`, initial_bind_as_user: true, bind_dn: `uid=\${account},${PEOPLE}`, cache_ttl: 0 },
      {},
      { store: { driver: 'sqlite', path: 'ldap-direct.db' } },
    );
    const login = await post(server, { grant_type: 'password', username: 'alice', password: USERS.alice, access_type: 'offline', client_id: 'test' });
    expect(login.statusCode).toBe(200);
    expect(login.json()).not.toHaveProperty('refresh_token');
  });
});
