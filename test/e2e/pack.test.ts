// End to end: the npm package as a user gets it. The working tree (tracked and new files, not
// ignored ones) is copied to a temp folder and packed there with `npm pack`, so its `prepack`
// build runs without touching the dist/ that other tests are running. The tarball is installed
// with `npm install --omit=dev` into an empty folder from the npm registry, as `npm install
// sts-docker-auth` would, then `npx sts-docker-auth init` prepares a data folder and the
// installed bin serves a token to the admin with the password init printed.
//
// Slow by nature: the install compiles better-sqlite3 from source (its prebuilt binaries come
// from a host this machine cannot reach), about 1 to 1.5 minutes on 2 cores. npm's default
// cache is used, so packages already downloaded are not fetched again.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from '../helpers/fixtures.js';
import { Teardown } from './harness/teardown.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SETUP_TIMEOUT = 360_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment without npm's lifecycle variables (when run under `npm test`) and STS_* settings. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|STS_)/i.test(key) && key !== 'INIT_CWD'));
  return { ...env, ...extra };
}

function run(command: string, args: readonly string[], options: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${options.timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

function expectOk(result: Run, what: string): void {
  if (result.code !== 0) throw new Error(`${what} exited with ${result.code}:\n${result.stderr.slice(-4000)}\n${result.stdout.slice(-2000)}`);
}

/** The files a fresh clone would have: tracked and untracked, not ignored (no node_modules, no dist). */
async function copyWorkingTree(to: string): Promise<void> {
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT });
  expectOk(listed, 'git ls-files');
  for (const file of listed.stdout.split('\0')) {
    if (file === '' || !existsSync(join(ROOT, file))) continue; // deleted but still in the index
    await mkdir(dirname(join(to, file)), { recursive: true });
    await copyFile(join(ROOT, file), join(to, file));
  }
  // The build tools come from the project's own install; the packed tree gets none of them.
  await symlink(join(ROOT, 'node_modules'), join(to, 'node_modules'), 'dir');
}

interface PackResult {
  filename: string;
  files: { path: string }[];
}

describe('the npm package', () => {
  const teardown = new Teardown();
  let work: string;
  let app: string;
  let tarball: string;
  let packed: PackResult;
  let initOutput = '';
  const dataDir = () => join(work, 'data');

  beforeAll(async () => {
    work = teardown.defer(await mkdtemp(join(tmpdir(), 'sts-pack-')), (dir) => rm(dir, { recursive: true, force: true }));
    const tree = join(work, 'tree');
    await copyWorkingTree(tree);

    const pack = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: tree, timeoutMs: 120_000 });
    expectOk(pack, 'npm pack');
    // Lifecycle scripts (prepack's build) print to stdout too; the JSON array is the last thing.
    const json = pack.stdout.slice(pack.stdout.lastIndexOf('\n[') + 1);
    packed = (JSON.parse(json) as PackResult[])[0] as PackResult;
    tarball = join(work, packed.filename);

    app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'sts-pack-test', private: true }));
    // JOBS: node-gyp compiles better-sqlite3's two large sources in parallel.
    const install = await run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', tarball], { cwd: app, env: { JOBS: 'max' }, timeoutMs: 300_000 });
    expectOk(install, 'npm install --omit=dev <tarball>');
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run());

  it('ships the build, docs, README, CHANGELOG and LICENSE, and no sources or tests', () => {
    const paths = packed.files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'docs/configuration.md']));
    expect(paths.filter((p) => /^(src|test|bench|scripts|deploy|\.ci)\//.test(p))).toEqual([]);
    expect(paths.filter((p) => /(^|\/)(tsconfig[^/]*\.json|vitest\.config\.ts|eslint\.config\.js|\.gitignore)$/.test(p))).toEqual([]);
  });

  it('installs no devDependency', async () => {
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    // Only tools no runtime dependency pulls in: ajv, say, is both a devDependency and fastify's.
    const toolsOnly = ['vitest', 'typescript', 'eslint', 'tsx', 'typescript-eslint', 'autocannon'];
    for (const name of toolsOnly) {
      expect(manifest.devDependencies, `${name} is expected to be a devDependency`).toHaveProperty(name);
      expect(existsSync(join(app, 'node_modules', name)), `node_modules/${name} was installed`).toBe(false);
    }
    expect(existsSync(join(app, 'node_modules', 'sts-docker-auth', 'src'))).toBe(false);
  });

  it('exposes the library through its exports map', async () => {
    const result = await run(process.execPath, ['--input-type=module', '-e', "const m = await import('sts-docker-auth'); console.log(typeof m.createServer, typeof m.loadConfig)"], { cwd: app });
    expectOk(result, 'import("sts-docker-auth")');
    expect(result.stdout.trim()).toBe('function function');
  });

  it('`npx sts-docker-auth init` creates the data folder and prints the admin password and the registry block', async () => {
    const result = await run('npx', ['--no', 'sts-docker-auth', 'init'], { cwd: app, env: { STS_DATA_DIR: dataDir() } });
    expectOk(result, 'npx sts-docker-auth init');
    initOutput = result.stdout;
    expect(initOutput).toMatch(/The admin password, shown only this once: \S{20,}/);
    expect(initOutput).toContain(`rootcertbundle: ${JSON.stringify(join(dataDir(), 'keys', 'bundle.pem'))}`);
    for (const file of ['config.yml', 'keys/keyring.json', 'keys/bundle.pem', 'keys/jwks.json']) expect(existsSync(join(dataDir(), file)), file).toBe(true);

    const keys = await run('npx', ['--no', 'sts-docker-auth', 'keys', 'list'], { cwd: app, env: { STS_DATA_DIR: dataDir() } });
    expectOk(keys, 'npx sts-docker-auth keys list');
    expect(keys.stdout).toMatch(/^active +[A-Z2-7]{4}(:[A-Z2-7]{4}){11} +\S{43} +ES256 /m);

    const again = await run('npx', ['--no', 'sts-docker-auth', 'init'], { cwd: app, env: { STS_DATA_DIR: dataDir() } });
    expectOk(again, 'the second init');
    expect(again.stderr).toContain('exists already');
    expect(`${again.stdout}${again.stderr}`).not.toMatch(/shown only this once/);
  });

  it('the installed bin serves a token to the admin and stops on SIGTERM with status 0', async () => {
    const password = /shown only this once: (\S+)/.exec(initOutput)?.[1];
    expect(password, 'the password init printed').toBeDefined();
    // The bin itself, not `npx`: npm exec does not pass SIGTERM on to the program it runs.
    const bin = join(app, 'node_modules', '.bin', 'sts-docker-auth');
    const child = spawn(bin, ['serve'], {
      cwd: app,
      env: cleanEnv({ STS_DATA_DIR: dataDir(), STS_ADDR: '127.0.0.1:0' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    teardown.defer(child, async (c) => {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
    let output = '';
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not log "listening" in 20 s:\n${output}`)), 20_000);
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString();
        const found = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"listening"/.exec(output)?.[1];
        if (found) {
          clearTimeout(timer);
          resolveUrl(found);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`serve exited with ${code}:\n${output}`));
      });
    });
    try {
      const res = await fetch(`${url}/auth?service=docker-registry&scope=repository:admin/app:pull,push`, {
        headers: { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` },
      });
      expect(res.status).toBe(200);
      const { token } = (await res.json()) as { token: string };
      expect(decodeJwt(token).claims).toMatchObject({
        iss: 'sts-docker-auth',
        aud: 'docker-registry',
        sub: 'admin',
        access: [{ type: 'repository', name: 'admin/app', actions: ['pull', 'push'] }],
      });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
