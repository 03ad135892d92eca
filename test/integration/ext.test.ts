/**
 * ext_auth and ext_authz with real programs (bash scripts written here into a temp folder), through
 * the real token endpoint: docker_auth's exit-status contract, labels reaching an ACL rule, the
 * exact stdin each program reads, timeouts that leave no process behind, the concurrency limit and
 * its queue, and a password that never shows in a program's argv or environment.
 */
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StsServer } from '../../src/server/app.js';
import { baseConfig, decodeJwt, loadTestConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess, type MemoryAudit } from '../helpers/server.js';

let keys: KeyDir;
/** Where the programs write what they saw. */
let out: string;
let authProgram: string;
let authzProgram: string;
const servers: StsServer[] = [];

const PASSWORD = 'correct horse battery staple';

/**
 * The ext_auth program: behaves according to the user name, writes the exact stdin it read (and
 * for some users its pid, argv and environment) into the folder given as its first argument.
 */
const AUTH_SCRIPT = `#!/bin/bash
out="$1"
input="$(cat; printf x)"; input="\${input%x}"
user="\${input%% *}"; password="\${input#* }"
printf '%s' "$input" > "$out/stdin-$user"
case "$user" in
  alice) [ "$password" = "${PASSWORD}" ] && exit 0; exit 1 ;;
  labeled) printf '{"labels": {"team": ["x", "y"], "ignored": null}, "other": 1}' ; exit 0 ;;
  newline) echo '{"labels": {"team": ["x"]}}' ; exit 0 ;;
  denied) exit 1 ;;
  nomatch) exit 2 ;;
  badjson) echo 'this is not json'; exit 0 ;;
  badlabels) echo '{"labels": {"team": "x"}}'; exit 0 ;;
  exit3) echo "failing for $password" >&2; exit 3 ;;
  crash) kill -SEGV $$ ;;
  sleeper)
    echo $$ > "$out/sleeper.pid"
    sleep 1000 &
    echo $! > "$out/sleeper-child.pid"
    wait
    ;;
  background)
    sleep 1000 &
    echo $! > "$out/background.pid"
    exit 0 ;;
  dump)
    printf '%s\\0' "$0" "$@" > "$out/argv"
    cat /proc/$$/cmdline > "$out/cmdline"
    env -0 > "$out/env"
    cat /proc/$$/environ > "$out/environ"
    exit 0 ;;
  slow*)
    echo "$user" >> "$out/started"
    while [ ! -e "$out/release" ]; do sleep 0.02; done
    exit 0 ;;
  *) exit 2 ;;
esac
`;

/** The ext_authz program: decides by repository name and records its stdin. */
const AUTHZ_SCRIPT = `#!/bin/bash
out="$1"
input="$(cat; printf x)"; input="\${input%x}"
printf '%s' "$input" >> "$out/authz-stdin"
printf '\\n' >> "$out/authz-stdin"
case "$input" in
  *'"Name":"grant/'*) exit 0 ;;
  *'"Name":"refuse/'*) exit 1 ;;
  *) exit 5 ;;
esac
`;

async function writeProgram(name: string, text: string): Promise<string> {
  const path = join(keys.dir, name);
  await writeFile(path, text);
  await chmod(path, 0o755);
  return path;
}

beforeAll(async () => {
  keys = await makeKeyDir();
  out = join(keys.dir, 'out');
  await mkdir(out);
  authProgram = await writeProgram('auth.sh', AUTH_SCRIPT);
  authzProgram = await writeProgram('authz.sh', AUTHZ_SCRIPT);
});

afterEach(async () => {
  while (servers.length > 0) await servers.pop()?.app.close();
});

afterAll(async () => {
  await keys.cleanup();
});

async function start(overrides: Partial<ConfigInput>, options: { now?: () => number } = {}): Promise<{ server: StsServer; audit: MemoryAudit }> {
  const started = await startInProcess(keys, baseConfig(overrides), options);
  servers.push(started.server);
  return started;
}

function token(server: StsServer, scope: string, authorization?: string) {
  return server.app.inject({
    method: 'GET',
    url: `/auth?service=test-registry${scope ? `&scope=${encodeURIComponent(scope)}` : ''}`,
    headers: authorization ? { authorization } : {},
  });
}

const exists = (path: string) =>
  readFile(path).then(
    () => true,
    () => false,
  );

/** Alive unless gone or a zombie (a reparented grandchild waits for whatever reaps orphans here). */
async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

describe('ext_auth', () => {
  const extAuth = (extra: Record<string, unknown> = {}) => ({ command: authProgram, args: [out], ...extra });
  const labelAcl = [
    { match: { labels: { team: 'x' } }, actions: ['pull'] },
    { match: { account: 'alice' }, actions: ['pull', 'push'] },
  ];

  it('exit 0 signs in, and the program read exactly "<user> <password>" with no newline', async () => {
    const { server, audit } = await start({ ext_auth: extAuth(), acl: labelAcl });
    const res = await token(server, 'repository:app:pull,push', basic('alice', PASSWORD));
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().token).claims.access).toEqual([{ type: 'repository', name: 'app', actions: ['pull', 'push'] }]);
    expect(await readFile(join(out, 'stdin-alice'), 'utf8')).toBe(`alice ${PASSWORD}`);
    expect(audit.last()).toMatchObject({ result: 'issued', account: 'alice', backend: 'ext' });
  });

  it('labels from stdout reach an ACL rule; other keys and null labels are ignored', async () => {
    const { server } = await start({ ext_auth: extAuth(), acl: labelAcl });
    for (const user of ['labeled', 'newline']) {
      const res = await token(server, 'repository:app:pull,push', basic(user, 'whatever'));
      expect(res.statusCode, user).toBe(200);
      expect(decodeJwt(res.json().token).claims.access, user).toEqual([{ type: 'repository', name: 'app', actions: ['pull'] }]);
    }
  });

  it('exit 1 is a wrong password (401, the chain stops); exit 2 asks the next backend', async () => {
    const { hash } = await import('../helpers/fixtures.js');
    const users = { nomatch: { password: await hash('static-pw') }, denied: { password: await hash('static-pw') } };
    const { server, audit } = await start({ ext_auth: extAuth(), users, authn_order: ['ext', 'users'], acl: [{ match: {}, actions: ['pull'] }] });

    const wrong = await token(server, '', basic('alice', 'wrong'));
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic realm=/);
    expect(audit.last().reason).toMatch(/refused by ext_auth/);

    // Exit 1 for a user the static backend would accept: no fall-through.
    expect((await token(server, '', basic('denied', 'static-pw'))).statusCode).toBe(401);

    const next = await token(server, 'repository:app:pull', basic('nomatch', 'static-pw'));
    expect(next.statusCode).toBe(200);
    expect(audit.last()).toMatchObject({ account: 'nomatch', backend: 'static' });
    expect(await readFile(join(out, 'stdin-nomatch'), 'utf8')).toBe('nomatch static-pw');
  });

  it('an unknown user everywhere is 401', async () => {
    const { server, audit } = await start({ ext_auth: extAuth() });
    const res = await token(server, '', basic('nomatch', 'x'));
    expect(res.statusCode).toBe(401);
    expect(audit.last().reason).toBe('unknown account');
  });

  it.each([
    ['badjson', /not JSON/],
    ['badlabels', /not a list of strings/],
    ['exit3', /exited with status 3: failing for \*\*\*/],
    ['crash', /killed by SIGSEGV/],
  ])('%s is a failing program: 503 with Retry-After, never 401 or 500', async (user, reason) => {
    const { server, audit } = await start({ ext_auth: extAuth() });
    const res = await token(server, '', basic(user, 'sekrit-pw'));
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json().errors[0].code).toBe('UNAVAILABLE');
    expect(audit.last().reason).toMatch(reason);
    expect(audit.last().reason).not.toContain('sekrit-pw');
  });

  it('an anonymous request is no match, and runs nothing', async () => {
    await rm(join(out, 'stdin-'), { force: true });
    const { server } = await start({ ext_auth: extAuth() });
    const res = await token(server, '');
    expect(res.statusCode).toBe(401);
    expect(await exists(join(out, 'stdin-'))).toBe(false);
  });

  it('anonymous access still works through users "" before ext_auth', async () => {
    const { server } = await start({ ext_auth: extAuth(), users: { '': {} }, acl: [{ match: { account: '' }, actions: ['pull'] }] });
    const res = await token(server, 'repository:public/app:pull');
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().token).claims.access).toEqual([{ type: 'repository', name: 'public/app', actions: ['pull'] }]);
  });

  it('the password is never in the argv or the environment of the program', async () => {
    const secret = 'pw-that-must-not-leak-42';
    const { server } = await start({ ext_auth: extAuth({ args: [out, '--flag', 'two words'] }) });
    const res = await token(server, '', basic('dump', secret));
    expect(res.statusCode).toBe(200);
    const argv = (await readFile(join(out, 'argv'), 'utf8')).split('\0').slice(0, -1);
    expect(argv).toEqual([authProgram, out, '--flag', 'two words']);
    for (const file of ['argv', 'cmdline', 'env', 'environ']) {
      const content = await readFile(join(out, file), 'utf8');
      expect(content.length, file).toBeGreaterThan(0);
      expect(content, file).not.toContain(secret);
    }
    expect(await readFile(join(out, 'stdin-dump'), 'utf8')).toBe(`dump ${secret}`);
  });

  it('a program that runs too long is killed with its children: 503 within the timeout', async () => {
    await rm(join(out, 'sleeper.pid'), { force: true });
    const { server, audit } = await start({ ext_auth: extAuth({ timeout: '700ms' }) });
    const started = Date.now();
    const res = await token(server, '', basic('sleeper', 'x'));
    const elapsed = Date.now() - started;
    expect(res.statusCode).toBe(503);
    expect(audit.last().reason).toMatch(/did not finish within 700 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(650);
    expect(elapsed).toBeLessThan(1_700);
    const pid = Number(await readFile(join(out, 'sleeper.pid'), 'utf8'));
    const childPid = Number(await readFile(join(out, 'sleeper-child.pid'), 'utf8'));
    expect(pid).toBeGreaterThan(1);
    expect(await alive(pid)).toBe(false);
    // The script's own child (sleep 1000) was in its process group and went with it.
    for (let i = 0; i < 50 && (await alive(childPid)); i++) await sleep(20);
    expect(await alive(childPid)).toBe(false);
  });

  it('a background job left holding stdout does not hold up the answer, and is killed', async () => {
    const { server } = await start({ ext_auth: extAuth() });
    const started = Date.now();
    expect((await token(server, '', basic('background', 'x'))).statusCode).toBe(200);
    expect(Date.now() - started).toBeLessThan(1_500);
    const pid = Number(await readFile(join(out, 'background.pid'), 'utf8'));
    for (let i = 0; i < 50 && (await alive(pid)); i++) await sleep(20);
    expect(await alive(pid)).toBe(false);
  });

  it('runs at most max_concurrency programs; later requests wait, and a full queue is 503', async () => {
    await rm(join(out, 'started'), { force: true });
    await rm(join(out, 'release'), { force: true });
    const { server } = await start({ ext_auth: extAuth({ max_concurrency: 2, max_queue: 1 }), acl: [{ match: {}, actions: ['pull'] }] });
    const first = [token(server, '', basic('slow1', 'x')), token(server, '', basic('slow2', 'x'))];
    const startedLines = async () => (await readFile(join(out, 'started'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
    for (let i = 0; i < 200 && (await startedLines()).length < 2; i++) await sleep(20);
    expect((await startedLines()).sort()).toEqual(['slow1', 'slow2']);

    // The third waits in the queue: it does not start while two run.
    let thirdDone = false;
    const third = token(server, '', basic('slow3', 'x')).then((res) => {
      thirdDone = true;
      return res;
    });
    await sleep(300);
    expect(await startedLines()).toHaveLength(2);
    expect(thirdDone).toBe(false);

    // The queue (one place) is full: the fourth is refused at once.
    const fourth = await token(server, '', basic('slow4', 'x'));
    expect(fourth.statusCode).toBe(503);
    expect(fourth.json().errors[0].code).toBe('UNAVAILABLE');

    await writeFile(join(out, 'release'), '');
    const results = await Promise.all([...first, third]);
    expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    expect((await startedLines()).sort()).toEqual(['slow1', 'slow2', 'slow3']);
  });

  it('docker login gets no refresh token (the owner could not be re-checked without a password)', async () => {
    const { server } = await start({ ext_auth: extAuth(), store: { driver: 'sqlite', path: 'ext-store.db' } });
    const res = await token(server, '', basic('alice', PASSWORD));
    expect(res.statusCode).toBe(200);
    const login = await server.app.inject({
      method: 'GET',
      url: '/auth?service=test-registry&offline_token=true&client_id=docker&account=alice',
      headers: { authorization: basic('alice', PASSWORD) },
    });
    expect(login.statusCode).toBe(200);
    expect(login.json()).not.toHaveProperty('refresh_token');
  });

  it('cache_ttl reuses a successful answer for the same password only, until it expires', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const { server } = await start({ ext_auth: extAuth({ cache_ttl: '1m' }), acl: [{ match: {}, actions: ['pull'] }] }, { now: () => now });
    const stdinFile = join(out, 'stdin-alice');
    await rm(stdinFile, { force: true });
    expect((await token(server, '', basic('alice', PASSWORD))).statusCode).toBe(200);
    expect(await exists(stdinFile)).toBe(true);

    await rm(stdinFile);
    expect((await token(server, '', basic('alice', PASSWORD))).statusCode).toBe(200);
    expect(await exists(stdinFile), 'the second login ran the program').toBe(false);

    // Another password is checked, and its failure is not remembered.
    expect((await token(server, '', basic('alice', 'wrong'))).statusCode).toBe(401);
    expect(await readFile(stdinFile, 'utf8')).toBe('alice wrong');

    await rm(stdinFile);
    now += 61_000;
    expect((await token(server, '', basic('alice', PASSWORD))).statusCode).toBe(200);
    expect(await exists(stdinFile), 'the expired entry ran the program again').toBe(true);
  });
});

describe('ext_authz', () => {
  const extAuthz = (extra: Record<string, unknown> = {}) => ({ command: authzProgram, args: [out], ...extra });
  const users = async () => {
    const { hash } = await import('../helpers/fixtures.js');
    return { alice: { password: await hash('alice-pw'), labels: { team: ['x'], env: ['b', 'a'] } } };
  };

  it('runs after the ACL, reads the request as JSON with Go field names, and decides by exit status', async () => {
    await rm(join(out, 'authz-stdin'), { force: true });
    const acl = [{ match: { name: 'acl/*' }, actions: ['pull'] }];
    const { server } = await start({ users: await users(), acl, ext_authz: extAuthz() });
    const res = await token(server, 'repository:acl/app:pull,push repository:grant/app:pull,push repository:refuse/app:pull', basic('alice', 'alice-pw'));
    expect(res.statusCode).toBe(200);
    expect(decodeJwt(res.json().token).claims.access).toEqual([
      { type: 'repository', name: 'acl/app', actions: ['pull'] },
      { type: 'repository', name: 'grant/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'refuse/app', actions: [] },
    ]);
    const lines = (await readFile(join(out, 'authz-stdin'), 'utf8')).split('\n').filter((l) => l !== '');
    // One run per scope the ACL did not decide; the exact bytes a docker_auth program reads.
    expect(lines).toEqual([
      '{"Account":"alice","Type":"repository","Name":"grant/app","Service":"test-registry","IP":"127.0.0.1","Actions":["pull","push"],"Labels":{"env":["b","a"],"team":["x"]}}',
      '{"Account":"alice","Type":"repository","Name":"refuse/app","Service":"test-registry","IP":"127.0.0.1","Actions":["pull"],"Labels":{"env":["b","a"],"team":["x"]}}',
    ]);
  });

  it('any other exit status fails the request with 503', async () => {
    const { server, audit } = await start({ users: await users(), ext_authz: extAuthz() });
    const res = await token(server, 'repository:other/app:pull', basic('alice', 'alice-pw'));
    expect(res.statusCode).toBe(503);
    expect(audit.last().reason).toMatch(/exited with status 5/);
  });

  it('is enough on its own as the authorization method (no acl section)', async () => {
    const config = baseConfig({ users: await users(), ext_authz: extAuthz() });
    delete config.acl;
    const loaded = await loadTestConfig(keys, config);
    expect(loaded.external?.extAuthzCommand).toBe(authzProgram);
  });
});

describe('configuration', () => {
  it('a missing or non-executable program fails at load with its key path', async () => {
    await writeFile(join(keys.dir, 'not-executable.sh'), '#!/bin/bash\nexit 0\n');
    const config = baseConfig({
      ext_auth: { command: 'no-such-program-anywhere' },
      ext_authz: { command: './not-executable.sh' },
    });
    const error = await loadTestConfig(keys, config).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    expect(issues).toContainEqual({ path: 'ext_auth.command', message: expect.stringMatching(/not found on PATH/) });
    expect(issues).toContainEqual({ path: 'ext_authz.command', message: expect.stringMatching(/not executable/) });
  });

  it('a bare name is looked up on PATH, a relative path against the config folder', async () => {
    const onPath = await loadTestConfig(keys, baseConfig({ ext_auth: { command: 'true' }, ext_authz: { command: './authz.sh' } }));
    expect(onPath.external?.extAuthCommand).toMatch(/^\/.*\/true$/);
    expect(onPath.external?.extAuthzCommand).toBe(authzProgram);
  });

  it('ext_auth left out of an explicit authn_order is an error, not a silent no-op', async () => {
    const error = await loadTestConfig(keys, baseConfig({ ext_auth: { command: 'true' }, authn_order: ['users'] })).catch((err: unknown) => err);
    expect((error as ConfigError).issues).toContainEqual({ path: 'authn_order', message: expect.stringMatching(/does not list ext/) });
  });

  it('rejects unknown keys and bad limits', async () => {
    const error = await loadTestConfig(
      keys,
      baseConfig({ ext_auth: { command: 'true', shell: true, max_concurrency: 0, timeout: '5 seconds' } as never }),
    ).catch((err: unknown) => err);
    const paths = (error as ConfigError).issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['ext_auth', 'ext_auth.max_concurrency', 'ext_auth.timeout']));
  });
});
