/**
 * The examples in docs/external-auth.md, run as they are written: the ext_auth and ext_authz
 * scripts and the Node webhook, each through the real token endpoint. A doc example that stops
 * working fails here.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.js';
import type { StsServer } from '../../src/server/app.js';
import { requireBinaries } from '../e2e/harness/require-binary.js';
import { baseConfig, decodeJwt, hash, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { basic, startInProcess } from '../helpers/server.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The code block that follows `<!-- example: NAME -->` in docs/external-auth.md. */
async function example(name: string): Promise<string> {
  const doc = await readFile(join(root, 'docs', 'external-auth.md'), 'utf8');
  const at = doc.indexOf(`<!-- example: ${name} -->`);
  if (at < 0) throw new Error(`docs/external-auth.md has no example ${name}`);
  const block = /```[a-z]*\n([\s\S]*?)\n```/.exec(doc.slice(at));
  if (!block?.[1]) throw new Error(`the example ${name} has no code block`);
  return `${block[1]}\n`;
}

let keys: KeyDir;
let tools: Record<string, string>;
const servers: StsServer[] = [];

beforeAll(async () => {
  // Fails (never skips) when a tool the examples use is missing, naming the install script.
  tools = await requireBinaries(['bash', 'openssl', 'jq']);
  keys = await makeKeyDir();
});

afterAll(async () => {
  for (const server of servers) await server.app.close();
  await keys.cleanup();
});

async function start(config: Partial<ConfigInput>): Promise<StsServer> {
  const { server } = await startInProcess(keys, baseConfig(config));
  servers.push(server);
  return server;
}

async function install(name: string): Promise<string> {
  const path = join(keys.dir, name);
  await writeFile(path, await example(name));
  await chmod(path, 0o755);
  return path;
}

async function access(server: StsServer, scope: string, user: string, password: string) {
  const res = await server.app.inject({
    method: 'GET',
    url: `/auth?service=test-registry&scope=${encodeURIComponent(scope)}`,
    headers: { authorization: basic(user, password) },
  });
  return { status: res.statusCode, access: res.statusCode === 200 ? decodeJwt(res.json().token).claims.access : undefined };
}

describe('docs/external-auth.md', () => {
  it('ext-auth.sh checks SHA-512-crypt hashes and turns teams into labels an ACL rule uses', async () => {
    await install('ext-auth.sh');
    const crypt = (password: string) => {
      const run = spawnSync(tools.openssl as string, ['passwd', '-6', '-salt', 'docsalt1', '-stdin'], { input: password, encoding: 'utf8' });
      expect(run.status).toBe(0);
      return run.stdout.trim();
    };
    await writeFile(join(keys.dir, 'users'), `alice:${crypt('alice has spaces')}:dev,ops,bad"name\nbob:${crypt('bob-pw')}:\n`);
    const server = await start({
      ext_auth: { command: './ext-auth.sh', args: [join(keys.dir, 'users')] },
      acl: [{ match: { name: '${labels:team}/*' }, actions: ['pull', 'push'] }],
    });

    const alice = await access(server, 'repository:dev/app:pull,push,delete repository:ops/app:pull repository:other/app:pull', 'alice', 'alice has spaces');
    expect(alice).toEqual({
      status: 200,
      access: [
        { type: 'repository', name: 'dev/app', actions: ['pull', 'push'] },
        { type: 'repository', name: 'ops/app', actions: ['pull'] },
        { type: 'repository', name: 'other/app', actions: [] },
      ],
    });
    expect((await access(server, 'repository:dev/app:pull', 'bob', 'bob-pw')).access).toEqual([{ type: 'repository', name: 'dev/app', actions: [] }]);
    expect((await access(server, 'repository:dev/app:pull', 'alice', 'wrong')).status).toBe(401);
    expect((await access(server, 'repository:dev/app:pull', 'carol', 'x')).status).toBe(401);
    // awk sees the user name as data: no pattern, no field separator trick matches alice.
    expect((await access(server, 'repository:dev/app:pull', 'alice:x', 'alice has spaces')).status).toBe(401);
  });

  it('ext-authz.sh grants an own namespace fully and team namespaces pull and push only', async () => {
    await install('ext-authz.sh');
    const users = { alice: { password: await hash('alice-pw'), labels: { team: ['dev'] } } };
    const server = await start({ users, ext_authz: { command: './ext-authz.sh' } });
    const result = await access(
      server,
      'repository:alice/app:pull,push,delete repository:dev/app:pull,push repository:dev/lib:pull,delete repository:ops/app:pull',
      'alice',
      'alice-pw',
    );
    expect(result).toEqual({
      status: 200,
      access: [
        { type: 'repository', name: 'alice/app', actions: ['delete', 'pull', 'push'] },
        { type: 'repository', name: 'dev/app', actions: ['pull', 'push'] },
        // All or nothing: delete was asked, so nothing.
        { type: 'repository', name: 'dev/lib', actions: [] },
        { type: 'repository', name: 'ops/app', actions: [] },
      ],
    });
  });

  describe('webhook.mjs', () => {
    let webhook: ChildProcess | undefined;
    let url: string;

    beforeAll(async () => {
      const script = await install('webhook.mjs');
      const added = spawnSync(process.execPath, [script, 'add-user', 'alice', 'dev,ops'], { input: 'alice-pw\n', encoding: 'utf8' });
      expect(added.status).toBe(0);
      await writeFile(join(keys.dir, 'users.json'), added.stdout);
      await writeFile(join(keys.dir, 'webhook.secret'), 'an-example-secret-of-32-characters\n');
      await writeFile(join(keys.dir, 'other.secret'), 'a-different-secret-of-32-characters\n');
      webhook = spawn(process.execPath, [script], {
        env: { ...process.env, WEBHOOK_SECRET_FILE: join(keys.dir, 'webhook.secret'), USERS_FILE: join(keys.dir, 'users.json'), PORT: '0' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const lines = createInterface({ input: webhook.stdout as NonNullable<ChildProcess['stdout']> });
      const first = await new Promise<string>((resolve, reject) => {
        lines.once('line', resolve);
        webhook?.once('exit', (code) => reject(new Error(`webhook.mjs exited with ${code}`)));
      });
      url = /listening on (http:\/\/\S+)/.exec(first)?.[1] ?? '';
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    });

    afterAll(() => {
      // Only the process this test started, by its PID.
      if (webhook?.pid !== undefined && webhook.exitCode === null) process.kill(webhook.pid, 'SIGTERM');
    });

    it('signs in with scrypt hashes and decides scopes, the signature checked by the example', async () => {
      const server = await start({
        webhook_auth: { url: `${url}/authn`, secret_file: 'webhook.secret' },
        webhook_authz: { url: `${url}/authz`, secret_file: 'webhook.secret' },
      });
      const result = await access(
        server,
        'repository:alice/app:pull,push,delete repository:ops/app:pull,push,delete repository:public/base:pull,push repository:other/app:pull',
        'alice',
        'alice-pw',
      );
      expect(result).toEqual({
        status: 200,
        access: [
          { type: 'repository', name: 'alice/app', actions: ['delete', 'pull', 'push'] },
          { type: 'repository', name: 'ops/app', actions: ['pull', 'push'] },
          { type: 'repository', name: 'public/base', actions: ['pull'] },
          { type: 'repository', name: 'other/app', actions: [] },
        ],
      });
      expect((await access(server, 'repository:alice/app:pull', 'alice', 'wrong')).status).toBe(401);
      expect((await access(server, 'repository:alice/app:pull', 'nobody', 'x')).status).toBe(401);
    });

    it('answers 401 to a wrong signature, which the server reports as 503', async () => {
      const server = await start({ webhook_auth: { url: `${url}/authn`, secret_file: 'other.secret' } });
      expect((await access(server, 'repository:alice/app:pull', 'alice', 'alice-pw')).status).toBe(503);
    });
  });
});
