/**
 * The administration commands (users, groups, acl, tokens, refresh-tokens, migrate), run as the
 * built program against a SQLite store in a temp folder: output formats, exit codes, secrets
 * kept off argv and out of every output, and a CLI-made access token checked at the token
 * endpoint in-process.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { createServer, type StsServer } from '../../src/server/app.js';
import { openStore } from '../../src/store/open.js';
import { runCli, type RunResult } from '../helpers/cli.js';
import { baseConfig, decodeJwt, hash, makeKeyDir, writeConfig, type KeyDir } from '../helpers/fixtures.js';
import { basic } from '../helpers/server.js';

const BCRYPT = /\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}/;
const SECRET = /^stsat_[A-Za-z0-9_-]{49}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
/** Each run starts a Node process; on a busy machine a dozen of them take a while. */
const SLOW = { timeout: 120_000 };

let keys: KeyDir;
let config: string;
/** Everything the program printed, checked at the end for hashes and digests. */
const printed: string[] = [];
/** The token secrets made here: their digests must never be printed. */
const secrets: string[] = [];

async function cli(args: string[], input?: string, file = config): Promise<RunResult> {
  const result = await runCli([...args, '-c', file], input === undefined ? {} : { input });
  printed.push(result.stdout, result.stderr);
  return result;
}

/** Runs and expects success; returns stdout. */
async function ok(args: string[], input?: string): Promise<string> {
  const result = await cli(args, input);
  expect(result.stderr.replace(/^(created access token|the secret below|warning:|note:).*\n/gm, ''), `${args.join(' ')}: stderr`).toBe('');
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

/** Runs and expects a failure with this exit code and message, without a stack trace. */
async function fails(args: string[], code: number, message: RegExp | string, input?: string): Promise<RunResult> {
  const result = await cli(args, input);
  expect(result.code, `${args.join(' ')}: ${result.stdout}${result.stderr}`).toBe(code);
  expect(result.stderr).toMatch(typeof message === 'string' ? new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : message);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stdout).toBe('');
  return result;
}

function json<T>(stdout: string): T {
  return JSON.parse(stdout) as T;
}

beforeAll(async () => {
  keys = await makeKeyDir();
  config = await writeConfig(
    keys,
    baseConfig({
      users: { admin: { password: await hash('admin-pw') } },
      acl: [{ match: { account: 'admin' }, actions: ['*'] }],
      store: { driver: 'sqlite', path: 'store.db' },
    }),
  );
});

afterAll(() => keys.cleanup());

describe('migrate', SLOW, () => {
  it('creates the schema, then has nothing to do', async () => {
    const first = await ok(['migrate']);
    const version = /^schema version 0 -> (\d+)\n$/.exec(first)?.[1];
    expect(Number(version)).toBeGreaterThan(0);
    expect(await ok(['migrate'])).toBe(`schema version ${version} -> ${version}\n`);
  });
});

describe('users', SLOW, () => {
  it('adds a user with the password from stdin and labels', async () => {
    expect(await ok(['users', 'add', 'alice', '--labels', 'team=dev,team=ops', '--labels', 'env=prod'], 'alice-pw\n')).toBe('added user alice\n');
  });

  it('adds a robot without reading a password', async () => {
    expect(await ok(['users', 'add', 'ci-bot', '--robot'])).toMatch(/^added user ci-bot \(robot/);
  });

  it('refuses a name that is taken, before reading a password', async () => {
    await fails(['users', 'add', 'alice'], 1, 'user "alice" already exists', 'other-pw\n');
    await fails(['users', 'add', 'alice', '--robot'], 1, 'already exists');
  });

  it('refuses a user of the config file', async () => {
    await fails(['users', 'add', 'admin'], 1, /admin is a user of the config file .*manage it there/, 'pw\n');
    await fails(['users', 'passwd', 'admin'], 1, 'user of the config file', 'pw\n');
    await fails(['users', 'disable', 'admin'], 1, 'user of the config file');
    await fails(['users', 'rm', 'admin'], 1, 'user of the config file');
  });

  it('refuses bad names, bad labels and an empty password', async () => {
    await fails(['users', 'add', 'bad name', '--robot'], 1, /user name "bad name" is not valid/);
    await fails(['users', 'add', 'bob', '--robot', '--labels', 'team'], 1, 'expected key=value, got "team"');
    await fails(['users', 'add', 'bob', '--robot', '--labels', '-bad=x'], 1, 'label name "-bad" is not valid');
    await fails(['users', 'add', 'bob'], 1, 'the password is empty', '');
    await fails(['users', 'show', 'bob'], 1, 'user "bob" does not exist');
  });

  it('lists as an aligned table with ISO times, never a hash', async () => {
    const lines = (await ok(['users', 'list'])).trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const [header, ...rows] = lines as [string, ...string[]];
    expect(header).toMatch(/^NAME\s+KIND\s+STATUS\s+GROUPS\s+LABELS\s+CREATED\s+UPDATED$/);
    const alice = rows.find((r) => r.startsWith('alice ')) ?? '';
    const bot = rows.find((r) => r.startsWith('ci-bot ')) ?? '';
    expect(alice.indexOf('password')).toBe(header.indexOf('KIND'));
    expect(bot.indexOf('robot')).toBe(header.indexOf('KIND'));
    expect(alice.slice(header.indexOf('LABELS'))).toMatch(/^team=dev,team=ops,env=prod\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
  });

  it('lists as JSON', async () => {
    const users = json<Record<string, unknown>[]>(await ok(['users', 'list', '--json']));
    expect(users.map((u) => u.name)).toEqual(['alice', 'ci-bot']);
    expect(users[0]).toMatchObject({ name: 'alice', robot: false, disabled: false, labels: { team: ['dev', 'ops'], env: ['prod'] }, groups: [] });
    expect(users[1]).toMatchObject({ name: 'ci-bot', robot: true });
    expect(users[0]?.createdAt).toMatch(ISO);
    expect(Object.keys(users[0] ?? {})).not.toContain('passwordHash');
  });

  it('shows one user', async () => {
    const shown = await ok(['users', 'show', 'alice']);
    expect(shown).toMatch(/^name {5}alice\n/);
    expect(shown).toMatch(/^labels {3}team=dev,team=ops,env=prod$/m);
    expect(json<{ name: string }>(await ok(['users', 'show', 'alice', '--json'])).name).toBe('alice');
  });

  it('replaces and clears labels', async () => {
    expect(await ok(['users', 'set-labels', 'ci-bot', '--labels', 'kind=robot'])).toBe('labels of ci-bot: kind=robot\n');
    expect(await ok(['users', 'set-labels', 'ci-bot', '--labels', 'a=1', '--labels', 'b=2'])).toBe('labels of ci-bot: a=1,b=2\n');
    expect(await ok(['users', 'set-labels', 'ci-bot'])).toBe('labels of ci-bot: (none)\n');
    await fails(['users', 'set-labels', 'ghost', '--labels', 'a=1'], 1, 'user "ghost" does not exist');
  });

  it('disables and enables', async () => {
    expect(await ok(['users', 'disable', 'alice'])).toBe('disabled user alice\n');
    expect(json<{ disabled: boolean }>(await ok(['users', 'show', 'alice', '--json'])).disabled).toBe(true);
    expect(await ok(['users', 'enable', 'alice'])).toBe('enabled user alice\n');
    expect(json<{ disabled: boolean }>(await ok(['users', 'show', 'alice', '--json'])).disabled).toBe(false);
    await fails(['users', 'enable', 'ghost'], 1, 'user "ghost" does not exist');
  });

  it('changes a password only from stdin, and only of an existing user', async () => {
    expect(await ok(['users', 'passwd', 'alice'], 'alice-pw-2\n')).toBe('changed the password of alice\n');
    await fails(['users', 'passwd', 'ghost'], 1, 'user "ghost" does not exist', 'pw\n');
    await fails(['users', 'passwd', 'alice'], 1, 'the password is empty', '\n');
  });

  it('removes a user', async () => {
    await ok(['users', 'add', 'temp', '--robot']);
    expect(await ok(['users', 'rm', 'temp'])).toBe('removed user temp\n');
    await fails(['users', 'rm', 'temp'], 1, 'user "temp" does not exist');
  });
});

describe('groups', SLOW, () => {
  it('adds, lists, manages members and removes', async () => {
    expect(await ok(['groups', 'add', 'devs', '--labels', 'role=dev'])).toBe('added group devs\n');
    await fails(['groups', 'add', 'devs'], 1, 'group "devs" already exists');
    await fails(['groups', 'add', 'bad/name'], 1, 'group name "bad/name" is not valid');
    await fails(['groups', 'add', 'x', '--labels', '=v'], 1, 'expected key=value');
    expect(await ok(['groups', 'add-member', 'devs', 'alice'])).toBe('added alice to devs\n');
    await fails(['groups', 'add-member', 'devs', 'ghost'], 1, 'user "ghost" does not exist');
    await fails(['groups', 'add-member', 'nobody', 'alice'], 1, 'group "nobody" does not exist');

    const lines = (await ok(['groups', 'list'])).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+MEMBERS\s+LABELS\s+CREATED$/);
    expect(lines[1]).toMatch(/^devs\s+alice\s+role=dev\s+\d{4}-/);
    expect(json<unknown[]>(await ok(['groups', 'list', '--json']))).toEqual([
      { name: 'devs', labels: { role: ['dev'] }, members: ['alice'], createdAt: expect.stringMatching(ISO) },
    ]);
    expect(json<{ groups: string[] }>(await ok(['users', 'show', 'alice', '--json'])).groups).toEqual(['devs']);

    await ok(['groups', 'add', 'tmp']);
    await ok(['groups', 'add-member', 'tmp', 'alice']);
    expect(await ok(['groups', 'remove-member', 'tmp', 'alice'])).toBe('removed alice from tmp\n');
    await fails(['groups', 'remove-member', 'tmp', 'alice'], 1, 'does not exist');
    expect(await ok(['groups', 'rm', 'tmp'])).toBe('removed group tmp\n');
    await fails(['groups', 'rm', 'tmp'], 1, 'group "tmp" does not exist');
  });
});

describe('acl', SLOW, () => {
  const ids: string[] = [];

  it('adds rules from --match/--actions and from --rule, at a position', async () => {
    const first = await ok(['acl', 'add', '--match', '{"account":"alice","name":"team/*"}', '--actions', 'pull,push', '--comment', 'team access']);
    ids.push(/^added rule (\S+) at position 0\n$/.exec(first)?.[1] ?? '');
    const second = await ok(['acl', 'add', '--rule', '{"match":{"labels":{"groups":"devs"},"name":"shared/*"},"actions":["pull"]}']);
    ids.push(/^added rule (\S+) at position 1\n$/.exec(second)?.[1] ?? '');
    const third = await ok(['acl', 'add', '--match', '{"account":"nobody"}', '--actions', '', '--position', '0']);
    ids.push(/^added rule (\S+) at position 0\n$/.exec(third)?.[1] ?? '');
    expect(ids.every((id) => id.length > 0)).toBe(true);
  });

  it('refuses bad rules', async () => {
    await fails(['acl', 'add', '--match', '{"account":', '--actions', 'pull'], 1, '--match is not valid JSON');
    await fails(['acl', 'add', '--rule', 'not json'], 1, '--rule is not valid JSON');
    await fails(['acl', 'add', '--match', '{"acount":"x"}', '--actions', 'pull'], 1, /rule match: .*acount/);
    await fails(['acl', 'add', '--rule', '{"match":{},"actions":"pull"}'], 1, /rule actions: /);
    await fails(['acl', 'add', '--match', '{"name":"/((/"}', '--actions', 'pull'], 1, /rule match\.name: /);
    await fails(['acl', 'add', '--match', '{}'], 1, 'give --match');
    await fails(['acl', 'add', '--rule', '{"match":{},"actions":[]}', '--actions', 'pull'], 1, '--rule takes the whole rule');
    await fails(['acl', 'add', '--match', '{}', '--actions', 'pull', '--position', 'first'], 1, '--position "first"');
  });

  it('lists in evaluation order, as a table and as JSON', async () => {
    const lines = (await ok(['acl', 'list'])).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+POSITION\s+MATCH\s+ACTIONS\s+COMMENT\s+CREATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([ids[2], ids[0], ids[1]]);
    expect(lines[2]).toMatch(/\{"account":"alice","name":"team\/\*"\}\s+pull,push\s+team access\s+\d{4}-/);
    expect(lines[1]).toMatch(/\(none\)/);
    const rules = json<{ id: string; position: number; rule: unknown }[]>(await ok(['acl', 'list', '--json']));
    expect(rules.map((r) => [r.id, r.position])).toEqual([
      [ids[2], 0],
      [ids[0], 1],
      [ids[1], 2],
    ]);
    expect(rules[1]?.rule).toEqual({ match: { account: 'alice', name: 'team/*' }, actions: ['pull', 'push'], comment: 'team access' });
  });

  it('tests an account against config and store rules', async () => {
    const out = await ok(['acl', 'test', '--account', 'alice', '--scope', 'repository:team/app:push', '--scope', 'repository:shared/lib:pull,push']);
    expect(out).toContain('account "alice" (store user)');
    expect(out).toContain(`repository:team/app:push\n  rule: store rule ${ids[0]} (team access)\n  granted: push`);
    expect(out).toMatch(new RegExp(`repository:shared/lib:pull,push\\n  rule: store rule ${ids[1]}\\n  granted: pull`));
    const admin = await ok(['acl', 'test', '--account', 'admin', '--scope', 'repository:x/y:push']);
    expect(admin).toMatch(/granted: push/);
    await fails(['acl', 'test', '--account', 'alice', '--scope', 'repository:a/b:pull', '--labels', 'oops'], 1, 'expected key=value');
  });

  it('removes a rule', async () => {
    expect(await ok(['acl', 'rm', ids[2] ?? ''])).toBe(`removed rule ${ids[2]}\n`);
    await fails(['acl', 'rm', ids[2] ?? ''], 1, 'does not exist');
  });
});

describe('tokens', SLOW, () => {
  let tokenId = '';

  it('creates a token: the secret alone on stdout, the rest on stderr', async () => {
    const result = await cli(['tokens', 'create', '--user', 'alice', '--name', 'deploy', '--scope', 'repository:team/*:pull']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.endsWith('\n')).toBe(true);
    const secret = result.stdout.slice(0, -1);
    expect(secret).toMatch(SECRET);
    secrets.push(secret);
    tokenId = /created access token (\S+) \(deploy\) for alice/.exec(result.stderr)?.[1] ?? '';
    expect(tokenId).not.toBe('');
    expect(result.stderr).toContain('shown only this once');
    expect(result.stderr).not.toContain(secret);
    expect(result.stderr).not.toMatch(/warning/);
  });

  it('warns on stderr about a token that never expires; robots may own tokens', async () => {
    const result = await cli(['tokens', 'create', '--user', 'ci-bot', '--name', 'forever', '--scope', 'repository:shared/*:pull', '--expires', 'never']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^stsat_[A-Za-z0-9_-]{49}\n$/);
    secrets.push(result.stdout.trim());
    expect(result.stderr).toMatch(/^warning: this token never expires/m);
    expect(result.stderr).toContain('expires never');
  });

  it('refuses bad input', async () => {
    const create = (...args: string[]) => ['tokens', 'create', '--user', 'alice', ...args];
    await fails(create('--name', 'deploy', '--scope', 'repository:a:pull'), 1, 'access token "deploy" already exists');
    await fails(create('--name', 'x', '--scope', 'repository'), 1, 'scope "repository": expected type:name:actions or admin');
    await fails(create('--name', 'x', '--scope', 'repository:a:PULL'), 1, 'bad action "PULL"');
    await fails(create('--name', 'x', '--scope', 'repository:a:pull', '--expires', '1y'), 1, 'expiry "1y"');
    await fails(create('--name', 'bad name', '--scope', 'repository:a:pull'), 1, 'token name "bad name" is not valid');
    await fails(['tokens', 'create', '--user', 'ghost', '--name', 'x', '--scope', 'repository:a:pull'], 1, 'user "ghost" does not exist');
    await ok(['users', 'add', 'off', '--robot']);
    await ok(['users', 'disable', 'off']);
    await fails(['tokens', 'create', '--user', 'off', '--name', 'x', '--scope', 'repository:a:pull'], 1, 'user "off" cannot sign in: account disabled');
    await ok(['users', 'rm', 'off']);
  });

  it('lists as a table and as JSON, without digests', async () => {
    const lines = (await ok(['tokens', 'list'])).trimEnd().split('\n');
    const header = lines[0] ?? '';
    expect(header).toMatch(/^ID\s+USER\s+NAME\s+SCOPES\s+CREATED\s+EXPIRES\s+LAST USED\s+REVOKED$/);
    expect(lines).toHaveLength(3);
    const deploy = lines.find((l) => l.startsWith(tokenId)) ?? '';
    expect(deploy.slice(header.indexOf('USER'))).toMatch(/^alice\s+deploy\s+repository:team\/\*:pull\s+\S+Z\s+\S+Z\s+-\s+-$/);
    const forever = lines.find((l) => l.includes('forever')) ?? '';
    expect(forever.slice(header.indexOf('EXPIRES'))).toMatch(/^never /);

    const mine = json<Record<string, unknown>[]>(await ok(['tokens', 'list', '--user', 'alice', '--json']));
    expect(mine).toEqual([
      {
        id: tokenId,
        user: 'alice',
        name: 'deploy',
        scopes: ['repository:team/*:pull'],
        createdAt: expect.stringMatching(ISO),
        expiresAt: expect.stringMatching(ISO),
        lastUsedAt: null,
        lastUsedIp: null,
        revokedAt: null,
      },
    ]);
    // The default lifetime is 90 days.
    const days = (Date.parse(mine[0]?.expiresAt as string) - Date.parse(mine[0]?.createdAt as string)) / 86_400_000;
    expect(days).toBeCloseTo(90, 3);
  });

  it('works as a password at the token endpoint until revoked (in-process server)', async () => {
    const [secret] = secrets as [string];
    const server: StsServer = await createServer(await loadConfig(config), { logger: createLogger({ level: 'silent' }) });
    try {
      const get = (authorization: string) =>
        server.app.inject({ method: 'GET', url: '/auth?service=test-registry&scope=repository:team/app:pull,push', headers: { authorization }, remoteAddress: '10.1.2.3' });
      const res = await get(basic('alice', secret));
      expect(res.statusCode, res.body).toBe(200);
      // The token's scope limits it to pull, although alice's rule also grants push.
      expect(decodeJwt(res.json<{ token: string }>().token).claims.access).toEqual([{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
      // The password set through stdin works; the first one no longer does.
      expect((await get(basic('alice', 'alice-pw-2'))).statusCode).toBe(200);
      expect((await get(basic('alice', 'alice-pw'))).statusCode).toBe(401);

      await new Promise((r) => setTimeout(r, 100)); // the use is recorded in the background
      const used = json<{ lastUsedAt: string | null; lastUsedIp: string | null }[]>(await ok(['tokens', 'list', '--user', 'alice', '--json']));
      expect(used[0]?.lastUsedAt).toMatch(ISO);
      expect(used[0]?.lastUsedIp).toBe('10.1.2.3');
      expect(await ok(['tokens', 'list', '--user', 'alice'])).toMatch(/Z from 10\.1\.2\.3\s+-\n$/);

      expect(await ok(['tokens', 'revoke', tokenId])).toBe(`revoked access token ${tokenId}\n`);
      expect((await get(basic('alice', secret))).statusCode).toBe(401);
    } finally {
      await server.close();
    }
    const revoked = json<{ revokedAt: string | null }[]>(await ok(['tokens', 'list', '--user', 'alice', '--json']));
    expect(revoked[0]?.revokedAt).toMatch(ISO);
    await fails(['tokens', 'revoke', 'at_nosuchtoken'], 1, 'does not exist');
  });
});

describe('refresh-tokens', SLOW, () => {
  it('lists and revokes by id, by user and all', async () => {
    const server: StsServer = await createServer(await loadConfig(config), { logger: createLogger({ level: 'silent' }) });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await server.app.inject({
          method: 'GET',
          url: '/auth?service=test-registry&offline_token=true&client_id=docker',
          headers: { authorization: basic('alice', 'alice-pw-2') },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json<{ refresh_token?: string }>().refresh_token).toMatch(/^stsrt_/);
      }
    } finally {
      await server.close();
    }
    const all = json<{ id: string; user: string; service: string; clientId: string; revokedAt: null }[]>(await ok(['refresh-tokens', 'list', '--json']));
    expect(all).toHaveLength(3);
    expect(all[0]).toMatchObject({ user: 'alice', service: 'test-registry', clientId: 'docker', revokedAt: null });
    const lines = (await ok(['refresh-tokens', 'list', '--user', 'alice'])).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+USER\s+SERVICE\s+CLIENT\s+CREATED\s+LAST USED\s+EXPIRES\s+REVOKED$/);
    expect(lines).toHaveLength(4);

    expect(await ok(['refresh-tokens', 'revoke', all[0]?.id ?? ''])).toBe('revoked 1 refresh token\n');
    expect(await ok(['refresh-tokens', 'revoke', '--user', 'alice'])).toBe('revoked 2 refresh tokens\n');
    expect(await ok(['refresh-tokens', 'revoke', '--all'])).toBe('revoked 0 refresh tokens\n');
    const after = json<{ revokedAt: string | null }[]>(await ok(['refresh-tokens', 'list', '--json']));
    expect(after.every((t) => ISO.test(t.revokedAt ?? ''))).toBe(true);

    await fails(['refresh-tokens', 'revoke'], 1, 'give exactly one of');
    await fails(['refresh-tokens', 'revoke', 'rt_x', '--all'], 1, 'give exactly one of');
    await fails(['refresh-tokens', 'revoke', 'rt_nosuchtoken'], 1, 'does not exist');
  });
});

describe('removing a user', SLOW, () => {
  it('takes its access tokens along', async () => {
    expect(json<unknown[]>(await ok(['tokens', 'list', '--user', 'ci-bot', '--json']))).toHaveLength(1);
    await ok(['users', 'rm', 'ci-bot']);
    expect(json<unknown[]>(await ok(['tokens', 'list', '--json'])).map((t) => (t as { user: string }).user)).toEqual(['alice']);
  });
});

describe('the change log and the store', SLOW, () => {
  it('names the operating-system user as the actor, and keeps hashes only in the store', async () => {
    const store = await openStore({ driver: 'sqlite', path: join(keys.dir, 'store.db') });
    try {
      const changes = await store.changes.list({ limit: 500 });
      expect(changes.length).toBeGreaterThan(10);
      expect(new Set(changes.filter((c) => !c.action.startsWith('refresh')).map((c) => c.actor))).toEqual(new Set([`cli:${userInfo().username}`]));
      const alice = await store.users.get('alice');
      expect(alice?.passwordHash).toMatch(BCRYPT);
      expect(printed.join('')).not.toContain(alice?.passwordHash);
      expect(JSON.stringify(changes)).not.toMatch(/\$2[aby]\$|[0-9a-f]{64}/);
    } finally {
      await store.close();
    }
  });
});

describe('errors outside the commands', SLOW, () => {
  it('needs a store section', async () => {
    const file = await writeConfig(keys, baseConfig({ users: { admin: { password: await hash('x') } }, acl: [] }), 'nostore.yml');
    for (const args of [['users', 'list'], ['migrate'], ['tokens', 'create', '--user', 'a', '--name', 'b', '--scope', 'repository:a:pull']]) {
      const result = await cli(args, undefined, file);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('this config has no store section; add `store: {driver: sqlite}`');
    }
  });

  it('answers 3 when the store cannot be opened', async () => {
    await mkdir(join(keys.dir, 'a-folder'), { recursive: true });
    const file = await writeConfig(keys, baseConfig({ store: { driver: 'sqlite', path: 'a-folder' } }), 'broken.yml');
    const result = await cli(['users', 'list'], undefined, file);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/SQLite store .*a-folder is unavailable/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('README.md', SLOW, () => {
  it('shows every top-level command, including those registered outside src/cli/main.ts', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const help = await runCli(['--help']);
    const commands = [...help.stdout.matchAll(/^ {2}([a-z][a-z0-9-]*)\b/gm)].map((m) => m[1] as string).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['users', 'groups', 'acl', 'tokens', 'refresh-tokens', 'migrate']));
    for (const command of commands) expect(readme, `README.md never shows \`sts-docker-auth ${command}\``).toContain(`sts-docker-auth ${command}`);
  });
});

describe('nothing printed holds a secret it should not', SLOW, () => {
  it('no bcrypt hash, no token digest, no password', () => {
    const all = printed.join('\n');
    expect(printed.length).toBeGreaterThan(100);
    expect(all).not.toMatch(BCRYPT);
    expect(all).not.toMatch(/\$2[aby]\$/);
    for (const secret of secrets) expect(all).not.toContain(createHash('sha256').update(secret).digest('hex'));
    expect(all).not.toMatch(/[0-9a-f]{64}/);
    for (const password of ['alice-pw', 'alice-pw-2', 'other-pw']) expect(all).not.toContain(password);
  });
});
