import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from '../../src/security/password.js';
import { decodeJwt } from '../helpers/fixtures.js';
import { runCli, serveCli } from '../helpers/cli.js';

let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'sts-cli-'));
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

const env = () => ({ STS_DATA_DIR: join(dataDir, 'data'), STS_ADDR: '127.0.0.1:0', STS_LOG_LEVEL: 'info' });

describe('first start with nothing prepared', () => {
  let adminPassword = '';

  it('creates key, certificate, config and admin, prints the password once and the registry block', async () => {
    const served = await serveCli([], env());
    try {
      // The password goes to stderr just before "listening" goes to stdout; two pipes, read in any order.
      for (let waited = 0; !served.stderr().includes('rootcertbundle') && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      const printed = served.stderr();
      adminPassword = /admin password, shown only this once: (\S+)/.exec(printed)?.[1] ?? '';
      expect(adminPassword.length).toBeGreaterThanOrEqual(20);
      expect(printed).toMatch(/auth:\n {2}token:\n {4}realm: "http:\/\/127\.0\.0\.1:\d+\/auth"\n {4}service: "docker-registry"\n {4}issuer: "sts-docker-auth"\n {4}rootcertbundle: ".*keys\/bundle\.pem"/);

      const data = join(dataDir, 'data');
      const [first] = (JSON.parse(await readFile(join(data, 'keys', 'keyring.json'), 'utf8')) as { keys: { key: string; certificate: string }[] }).keys;
      expect((await stat(join(data, 'keys', first?.key ?? ''))).mode & 0o077).toBe(0);
      expect((await stat(join(data, 'config.yml'))).mode & 0o077).toBe(0);
      const cert = new X509Certificate(await readFile(join(data, 'keys', first?.certificate ?? '')));
      expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      const config = parse(await readFile(join(data, 'config.yml'), 'utf8'));
      expect(await verifyPassword(adminPassword, config.users.admin.password)).toBe(true);
      expect(JSON.stringify(config)).not.toContain(adminPassword);

      // The admin can get a catalog token right away.
      const res = await fetch(`${served.url}/auth?service=docker-registry&scope=registry:catalog:*`, {
        headers: { authorization: `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}` },
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { token: string };
      expect(decodeJwt(body.token).claims.access).toEqual([{ type: 'registry', name: 'catalog', actions: ['*'] }]);
      expect(served.stdout()).not.toContain(adminPassword);
    } finally {
      expect(await served.stop('SIGTERM')).toBe(0);
    }
  });

  it('reuses what is there on the next start, printing no password', async () => {
    const before = await readFile(join(dataDir, 'data', 'keys', 'keyring.json'), 'utf8');
    const served = await serveCli([], env());
    try {
      expect(served.stderr()).not.toMatch(/admin password/);
      expect(await readFile(join(dataDir, 'data', 'keys', 'keyring.json'), 'utf8')).toBe(before);
    } finally {
      expect(await served.stop('SIGINT')).toBe(0);
    }
  });

  it('logs one audit line per decision with no secret', async () => {
    const served = await serveCli([], env());
    try {
      await fetch(`${served.url}/auth?service=docker-registry&scope=repository:admin/x:push`, {
        headers: { authorization: `Basic ${Buffer.from('admin:not-the-password').toString('base64')}` },
      });
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await served.stop();
    }
    const lines = served.stdout().split('\n').filter((l) => l.includes('"audit":"token"'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ result: 'unauthorized', account: 'admin', requested: ['repository:admin/x:push'] });
    expect(served.stdout()).not.toContain('not-the-password');
  });
});

describe('graceful shutdown', () => {
  it('finishes a request in flight on SIGTERM, then exits 0', async () => {
    const data = join(dataDir, 'data');
    const slowHash = await hashPassword('slow-pw', 13); // ~0.5 s to check: still running when the signal lands
    const file = join(data, 'slow.yml');
    await writeFile(file, `token: {issuer: i, keyring: {dir: keys}}\nusers: {slow: {password: "${slowHash}"}}\nacl: []\n`);
    const served = await serveCli(['--config', file], env());
    const pending = fetch(`${served.url}/auth?service=x`, { headers: { authorization: `Basic ${Buffer.from('slow:slow-pw').toString('base64')}` } });
    await new Promise((r) => setTimeout(r, 100));
    const exit = served.stop('SIGTERM');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await exit).toBe(0);
  });
});

describe('check-config', () => {
  it('prints a summary and exits 0 for a good file', async () => {
    const res = await runCli(['check-config', join(dataDir, 'data', 'config.yml')]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/config\.yml: OK/);
    expect(res.stdout).toMatch(/signing ES256, jwt header x5c/);
  });

  it('exits 2 naming the file, each key path and the problem', async () => {
    const file = join(dataDir, 'bad.yml');
    await writeFile(file, 'server:\n  adr: ":5001"\ntoken:\n  issuer: x\n  expiration: 10\nusers: {}\nacl:\n  - match: {account: "/(/"}\n    actions: [pull]\n');
    const res = await runCli(['check-config', file]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`${file}: invalid configuration`);
    expect(res.stderr).toMatch(/server: unknown key "adr"/);
    expect(res.stderr).toMatch(/token\.expiration: must be at least 60/);
    expect(res.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('serve refuses a bad config at start with the same message', async () => {
    const file = join(dataDir, 'bad.yml');
    const res = await runCli(['serve', '--config', file]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/unknown key "adr"/);
  });
});

describe('hash-password and import-users', () => {
  it('hashes a password read from stdin', async () => {
    const res = await runCli(['hash-password', '--cost', '5'], { input: 'pa:ss word\n' });
    expect(res.code).toBe(0);
    const hash = res.stdout.trim();
    expect(hash).toMatch(/^\$2b\$05\$/);
    expect(await verifyPassword('pa:ss word', hash)).toBe(true);
  });

  it('refuses an empty password and a bad cost', async () => {
    expect((await runCli(['hash-password'], { input: '' })).code).toBe(1);
    expect((await runCli(['hash-password', '--cost', '99'], { input: 'x' })).code).not.toBe(0);
  });

  it('turns a users.auth JSON file into a users section that loads', async () => {
    const file = join(dataDir, 'users.auth');
    await writeFile(file, JSON.stringify({ alice: 'a-pass', bob: 'b:pass' }));
    const res = await runCli(['import-users', file, '--cost', '4']);
    expect(res.code).toBe(0);
    const users = parse(res.stdout).users;
    expect(Object.keys(users)).toEqual(['alice', 'bob']);
    expect(await verifyPassword('b:pass', users.bob.password)).toBe(true);
    expect(res.stdout).not.toContain('a-pass');
  });

  it.each([
    ['not JSON', 'nope', /not a JSON file/],
    ['an array', '[]', /expected a JSON object/],
    ['a number as password', '{"a": 1}', /is not a string/],
  ])('rejects a users file that is %s', async (_why, text, message) => {
    const file = join(dataDir, 'bad.auth');
    await writeFile(file, text);
    const res = await runCli(['import-users', file]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(message);
  });
});

describe('explain', () => {
  it('names the rule that decides each scope and what is granted', async () => {
    const res = await runCli(['explain', '--config', join(dataDir, 'data', 'config.yml'), '--account', 'alice', '--scope', 'repository:alice/app:push', '--scope', 'repository:team/app:push,pull']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/repository:alice\/app:push\n {2}rule: acl\[1\] \(every signed-in user owns[^\n]*\n {2}granted: push/);
    expect(res.stdout).toMatch(/repository:team\/app:push,pull\n {2}rule: no rule matched\n {2}granted: \(nothing\)/);
  });

  it('says when no rule matches', async () => {
    const res = await runCli(['explain', '--config', join(dataDir, 'data', 'config.yml'), '--account', '', '--scope', 'repository:x:pull']);
    expect(res.stdout).toMatch(/rule: no rule matched\n {2}granted: \(nothing\)/);
  });

  it('rejects a malformed scope clearly', async () => {
    const res = await runCli(['explain', '--config', join(dataDir, 'data', 'config.yml'), '--account', 'a', '--scope', 'repository:A:pull']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/invalid scope/);
  });
});

describe('registry-config', () => {
  it('prints the 2.8, 3.x and zot blocks and writes the bundle and a JWKS', async () => {
    const bundle = join(dataDir, 'bundle.pem');
    const jwks = join(dataDir, 'jwks.json');
    const res = await runCli([
      'registry-config', '--config', join(dataDir, 'data', 'config.yml'),
      '--realm', 'https://auth.example.test/auth', '--write-bundle', bundle, '--write-jwks', jwks,
    ]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('realm: "https://auth.example.test/auth"');
    expect(res.stdout).toContain(`rootcertbundle: "${bundle}"`);
    expect(res.stdout).toContain('signingalgorithms: [ES256]');
    expect(res.stdout).toContain(`jwks: "${jwks}"`);
    expect(res.stdout).toContain('"bearer"');
    expect(await readFile(bundle, 'utf8')).toBe(await readFile(join(dataDir, 'data', 'keys', 'bundle.pem'), 'utf8'));
    const set = JSON.parse(await readFile(jwks, 'utf8'));
    expect(set.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(set.keys[0].kid).toMatch(/^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$/);
    expect(set.keys[0]).not.toHaveProperty('d');
  });
});
