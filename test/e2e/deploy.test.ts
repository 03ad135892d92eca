// End to end, for deploy/: what the tools on this machine can check without a Docker engine.
// - docker-compose (Debian's, 1.29) validates deploy/docker-compose.yml with both registry images.
// - systemd-analyze verifies the unit and scores its sandbox.
// - The compose wiring runs for real without containers: the `auth` service's own command (init,
//   certificate to the bundle volume, exec serve) and Debian's distribution 2.8 configured by
//   the `registry` service's own environment, each named volume a temp folder mounted where the
//   compose file says. Only the ports differ (free loopback ports instead of 5000 and 5001).
//   A token the server issues to the admin with the password init printed opens the registry.
// - The image's and compose's health checks run against the live server.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile, rm, mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, killChild, registryEnv } from './harness/registry.js';
import { requireBinary } from './harness/require-binary.js';
import { CLI_PATH, requireBuiltCli } from './harness/server-process.js';
import { Teardown } from './harness/teardown.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMPOSE_FILE = join(ROOT, 'deploy/docker-compose.yml');
const UNIT_FILE = join(ROOT, 'deploy/systemd/sts-docker-auth.service');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** The environment without the developer's STS_* and REGISTRY_* settings. */
function baseEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(registryEnv()).filter(([key]) => !key.startsWith('STS_')));
}

describe('docker-compose validates deploy/docker-compose.yml', () => {
  it.each(['registry:2', 'registry:3'])('with REGISTRY_IMAGE=%s', async (image) => {
    const compose = await requireBinary('docker-compose');
    const result = await run(compose, ['-f', COMPOSE_FILE, 'config'], { env: { ...baseEnv(), REGISTRY_IMAGE: image } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    const resolved = parse(result.stdout) as { services: Record<string, { image: string; depends_on: unknown }> };
    expect(resolved.services.registry?.image).toBe(image);
    expect(resolved.services.auth?.image).toBe('sts-docker-auth:local');
  });
});

describe('systemd-analyze on deploy/systemd/sts-docker-auth.service', () => {
  it('verifies the unit with nothing to report', async () => {
    const analyze = await requireBinary('systemd-analyze');
    const result = await run(analyze, ['verify', UNIT_FILE]);
    expect(result.code, result.stderr).toBe(0);
    expect(`${result.stdout}${result.stderr}`).toBe('');
  });

  it('scores its sandbox as exposure below 2.5 ("OK")', async () => {
    const analyze = await requireBinary('systemd-analyze');
    const result = await run(analyze, ['security', '--offline=true', '--no-pager', UNIT_FILE]);
    expect(result.code, result.stderr).toBe(0);
    const score = /Overall exposure level for sts-docker-auth\.service: ([\d.]+)/.exec(result.stdout)?.[1];
    expect(score, result.stdout.slice(-500)).toBeDefined();
    expect(Number(score)).toBeLessThan(2.5);
  });
});

interface ComposeService {
  entrypoint: string[];
  command: string[];
  environment: Record<string, string>;
  volumes: string[];
  healthcheck: { test: string[] };
}

describe('the compose wiring, run without containers', () => {
  const teardown = new Teardown();
  const compose = parse(readFileSync(COMPOSE_FILE, 'utf8')) as { services: Record<string, ComposeService> };
  const auth = compose.services.auth as ComposeService;
  const registrySpec = compose.services.registry as ComposeService;
  let work: string;
  /** named volume -> temp folder standing in for it */
  const volumes = new Map<string, string>();
  let authUrl = '';
  let registryUrl = '';
  let adminPassword = '';
  let firstOutput = '';
  let firstAuth: ChildProcess | undefined;

  /** The service's container paths replaced by the folders of the volumes mounted there. */
  function mapPaths(service: ComposeService, text: string): string {
    let out = text.replaceAll('/app/dist/cli/main.js', CLI_PATH);
    for (const mount of service.volumes) {
      const [name = '', target = ''] = mount.split(':');
      const dir = volumes.get(name);
      if (!dir) throw new Error(`volume ${name} has no folder`);
      out = out.replace(new RegExp(`(?<![\\w/])${target.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(?=/|\\b|$)`, 'g'), dir);
    }
    return out;
  }

  /** `auth` as compose runs it: its entrypoint with its command, its environment, its volumes. */
  async function startAuth(): Promise<{ child: ChildProcess; url: string; output: () => string }> {
    const env: NodeJS.ProcessEnv = { ...baseEnv() };
    for (const [key, value] of Object.entries(auth.environment)) env[key] = mapPaths(auth, value);
    env.STS_ADDR = '127.0.0.1:0'; // instead of :5001, which this machine may be using
    const [shell = '', ...shellArgs] = auth.entrypoint;
    const child = spawn(shell, [...shellArgs, ...auth.command.map((part) => mapPaths(auth, part))], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    teardown.defer(child, killChild);
    let output = '';
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error(`auth did not log "listening" in 30 s:\n${output}`)), 30_000);
      child.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
        const found = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"listening"/.exec(output)?.[1];
        if (found) {
          clearTimeout(timer);
          resolveUrl(found);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`auth exited with ${code}:\n${output}`));
      });
    });
    return { child, url, output: () => output };
  }

  beforeAll(async () => {
    await requireBuiltCli();
    const registryBinary = await requireBinary('docker-registry');
    work = teardown.defer(await mkdtemp(join(tmpdir(), 'sts-compose-')), (dir) => rm(dir, { recursive: true, force: true }));
    for (const mount of [...auth.volumes, ...registrySpec.volumes]) {
      const name = mount.split(':')[0] as string;
      if (!volumes.has(name)) {
        volumes.set(name, join(work, name));
        await mkdir(join(work, name));
      }
    }

    const started = await startAuth();
    authUrl = started.url;
    firstAuth = started.child;
    firstOutput = started.output();
    adminPassword = /The admin password, shown only this once: (\S+)/.exec(firstOutput)?.[1] ?? '';

    // The registry: the image's config file (listen address and storage), then compose's environment.
    const port = await freePort();
    registryUrl = `http://127.0.0.1:${port}`;
    const configPath = join(work, 'registry-config.yml');
    await writeFile(configPath, `version: 0.1\nlog:\n  level: warn\nhttp:\n  addr: 127.0.0.1:${port}\nstorage:\n  filesystem:\n    rootdirectory: ${mapPaths(registrySpec, '/var/lib/registry')}\n`);
    const env: NodeJS.ProcessEnv = { ...baseEnv() };
    for (const [key, value] of Object.entries(registrySpec.environment)) env[key] = mapPaths(registrySpec, value);
    const registry = spawn(registryBinary, ['serve', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    teardown.defer(registry, killChild);
    let registryOutput = '';
    registry.stdout.on('data', (d: Buffer) => (registryOutput += d.toString()));
    registry.stderr.on('data', (d: Buffer) => (registryOutput += d.toString()));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (registry.exitCode !== null) throw new Error(`docker-registry exited (${registry.exitCode}):\n${registryOutput}`);
      const status = await fetch(`${registryUrl}/`).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 0) break;
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer in 15 s:\n${registryOutput}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(() => teardown.run());

  const basic = () => `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}`;

  it('auth initialises the data volume and prints the admin password', async () => {
    expect(adminPassword.length).toBeGreaterThanOrEqual(20);
    expect(firstOutput).toContain('auth:\n  token:\n    realm: ');
    expect((await readdir(volumes.get('auth-data') as string)).sort()).toEqual(expect.arrayContaining(['config.yml', 'keys']));
    expect(await readdir(join(volumes.get('auth-data') as string, 'keys'))).toEqual(expect.arrayContaining(['bundle.pem', 'jwks.json', 'keyring.json']));
  });

  it("init, in the compose environment (STS_ADDR=:5001), prints the realm, service and issuer the registry is given", async () => {
    const env: NodeJS.ProcessEnv = { ...baseEnv() };
    for (const [key, value] of Object.entries(auth.environment)) env[key] = value;
    env.STS_DATA_DIR = join(work, 'init-check');
    const result = await run(process.execPath, [CLI_PATH, 'init'], { env });
    expect(result.code, result.stderr).toBe(0);
    const registryEnvironment = registrySpec.environment;
    expect(result.stdout).toContain(`realm: "${registryEnvironment.REGISTRY_AUTH_TOKEN_REALM}"`);
    expect(result.stdout).toContain(`service: "${registryEnvironment.REGISTRY_AUTH_TOKEN_SERVICE}"`);
    expect(result.stdout).toContain(`issuer: "${registryEnvironment.REGISTRY_AUTH_TOKEN_ISSUER}"`);
  });

  it('puts only the public certificate in the bundle volume the registry mounts', async () => {
    const bundle = volumes.get('auth-bundle') as string;
    expect(await readdir(bundle)).toEqual(['token.crt']);
    const published = await readFile(join(bundle, 'token.crt'), 'utf8');
    expect(published).toBe(await readFile(join(volumes.get('auth-data') as string, 'keys', 'bundle.pem'), 'utf8'));
    expect(published).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(published).not.toContain('PRIVATE KEY');
  });

  it('the registry challenges with the realm and service of the compose file', async () => {
    const res = await fetch(`${registryUrl}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${registrySpec.environment.REGISTRY_AUTH_TOKEN_REALM}",service="${registrySpec.environment.REGISTRY_AUTH_TOKEN_SERVICE}"`);
    // What the registry's wget health check asks for: `/` answers 200 without a token.
    expect((await fetch(`${registryUrl}/`)).status).toBe(200);
  });

  it('a token for the admin, from the password init printed, opens the registry; other repositories stay shut', async () => {
    const service = registrySpec.environment.REGISTRY_AUTH_TOKEN_SERVICE as string;
    const tokenRes = await fetch(`${authUrl}/auth?service=${service}&scope=repository:admin/app:pull,push`, { headers: { authorization: basic() } });
    expect(tokenRes.status).toBe(200);
    const { token } = (await tokenRes.json()) as { token: string };
    const bearer = { authorization: `Bearer ${token}` };
    expect((await fetch(`${registryUrl}/v2/`, { headers: bearer })).status).toBe(200);
    // Authorised for admin/app: the registry looks and finds no such repository.
    const tags = await fetch(`${registryUrl}/v2/admin/app/tags/list`, { headers: bearer });
    expect(tags.status).toBe(404);
    expect(((await tags.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe('NAME_UNKNOWN');
    expect((await fetch(`${registryUrl}/v2/other/app/tags/list`, { headers: bearer })).status).toBe(401);
  });

  it("the image's and compose's health checks pass against the server and fail without one", async () => {
    const dockerfile = await readFile(join(ROOT, 'deploy/Dockerfile'), 'utf8');
    const imageCheck = JSON.parse(/^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? 'null') as string[];
    const composeCheck = auth.healthcheck.test.slice(1);
    const closed = `http://127.0.0.1:${await freePort()}`;
    const [node = '', ...imageArgs] = imageCheck;
    expect(node).toBe('node');
    expect((await run(process.execPath, imageArgs, { env: { ...baseEnv(), STS_HEALTHCHECK_URL: `${authUrl}/healthz` } })).code).toBe(0);
    expect((await run(process.execPath, imageArgs, { env: { ...baseEnv(), STS_HEALTHCHECK_URL: `${closed}/healthz` } })).code).toBe(1);
    const composeArgs = composeCheck.slice(1);
    const pointed = (base: string) => composeArgs.map((a) => a.replace('http://127.0.0.1:5001', base));
    expect((await run(process.execPath, pointed(authUrl))).code).toBe(0);
    expect((await run(process.execPath, pointed(closed))).code).toBe(1);
  });

  it('a restart keeps the key and password: init reports the existing config and the server starts', async () => {
    const keyringBefore = await readFile(join(volumes.get('auth-data') as string, 'keys', 'keyring.json'), 'utf8');
    // Stop the first incarnation as `docker compose stop` does: SIGTERM to the container's PID 1.
    const first = firstAuth as ChildProcess;
    const firstExit = new Promise<number | null>((r) => (first.exitCode !== null ? r(first.exitCode) : first.once('exit', r)));
    first.kill('SIGTERM');
    expect(await firstExit, 'exec makes node the process compose signals: SIGTERM ends it with 0').toBe(0);
    const running = await startAuth();
    try {
      expect(running.output()).toContain('exists already');
      expect(running.output()).not.toMatch(/shown only this once/);
      expect(await readFile(join(volumes.get('auth-data') as string, 'keys', 'keyring.json'), 'utf8')).toBe(keyringBefore);
      const res = await fetch(`${running.url}/auth?service=docker-registry&scope=repository:admin/app:pull`, { headers: { authorization: basic() } });
      expect(res.status).toBe(200);
    } finally {
      running.child.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((r) => (running.child.exitCode !== null ? r(running.child.exitCode) : running.child.once('exit', r)));
    expect(code).toBe(0);
  });
});
