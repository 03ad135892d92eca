/**
 * Static checks of deploy/: what can be checked without a Docker engine, Docker Compose or Helm
 * (none runs on the test machines). test/e2e/deploy.test.ts runs the tools that are there:
 * docker-compose's validation, systemd-analyze, and the compose wiring against a real registry.
 *
 * Not checked anywhere (documented in docs/deployment.md): that the image builds, that the
 * Helm templates render (there is no helm binary; the values they read are checked below), and
 * that the manifests are valid Kubernetes objects.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ISSUER, DEFAULT_SERVICE } from '../../src/config/init.js';
import { parseConfig } from '../../src/config/load.js';
import { generateSigningKey } from '../../src/token/generate.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

// ---- Dockerfile --------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** Instructions with continuation lines joined and comments dropped (no parser directives used). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  let start = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) return;
    if (pending !== '' && line.trimStart().startsWith('#')) return; // comments inside a continuation
    if (pending === '') start = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const keyword = full.split(/\s+/)[0] ?? '';
    out.push({ keyword: keyword.toUpperCase(), args: full.slice(keyword.length).trim(), line: start });
  });
  return out;
}

interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = instruction.args.split(/\s+/);
      stages.push({ image, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** `COPY [--flag=v ...] src... dest` or the JSON form, as flags, sources and destination. */
function copyArgs(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const flags: Record<string, string> = {};
  let rest = args;
  for (let m = /^--([a-z-]+)=(\S+)\s+/.exec(rest); m; m = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) {
    flags[m[1] as string] = m[2] as string;
    rest = rest.slice(m[0].length);
  }
  const parts = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return { flags, sources: parts.slice(0, -1), dest: parts.at(-1) as string };
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * Whether .dockerignore keeps `path` out of the build context: the last pattern that matches the
 * path or one of its parent folders decides, `!` patterns let it back in (Docker's rules).
 */
function dockerIgnored(patterns: string[], path: string): boolean {
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, '');
    const re = globToRegExp(pattern);
    if (prefixes.some((p) => re.test(p))) ignored = !negated;
  }
  return ignored;
}

describe('deploy/Dockerfile', () => {
  const instructions = parseDockerfile(read('deploy/Dockerfile'));
  const stages = stagesOf(instructions);
  const runtime = stages.at(-1) as Stage;
  const ignore = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const all = (keyword: string, stage: Stage = runtime) => stage.instructions.filter((i) => i.keyword === keyword);
  const last = (keyword: string) => all(keyword).at(-1)?.args;

  it('has a build stage, a production dependencies stage and a runtime stage', () => {
    expect(stages.map((s) => s.name)).toEqual(['build', 'prod-deps', 'runtime']);
  });

  it('pins every base image to a Node.js major and a Debian release, the runtime to bookworm-slim', () => {
    for (const stage of stages) expect(stage.image, `FROM ${stage.image}`).toMatch(/^node:20-bookworm(-slim)?$/);
    expect(runtime.image).toBe('node:20-bookworm-slim');
  });

  it('installs dev dependencies only in the build stage and builds there', () => {
    const [build, deps] = stages as [Stage, Stage];
    expect(all('RUN', build).map((i) => i.args)).toEqual(expect.arrayContaining([expect.stringMatching(/^npm ci\b/), 'npm run build']));
    expect(all('RUN', build).some((i) => /--omit=dev/.test(i.args))).toBe(false);
    expect(all('RUN', deps).every((i) => /npm ci --omit=dev/.test(i.args))).toBe(true);
    // No compiler and no npm install in the final image.
    for (const run of all('RUN')) expect(run.args).not.toMatch(/\b(npm (ci|install|rebuild)|apt-get install|build-essential|g\+\+|python3)\b/);
  });

  it('copies node_modules from the production stage and dist from the build stage', () => {
    const copies = all('COPY').map((i) => copyArgs(i.args));
    expect(copies).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ flags: { from: 'prod-deps' }, sources: ['/app/node_modules'] }),
        expect.objectContaining({ flags: { from: 'build' }, sources: ['/src/dist'] }),
      ]),
    );
    const stageNames = stages.map((s) => s.name);
    for (const copy of instructions.filter((i) => i.keyword === 'COPY').map((i) => copyArgs(i.args))) {
      if (copy.flags.from) expect(stageNames, `COPY --from=${copy.flags.from}`).toContain(copy.flags.from);
    }
  });

  it.each(
    instructions
      .filter((i) => i.keyword === 'COPY' && !copyArgs(i.args).flags.from)
      .flatMap((i) => copyArgs(i.args).sources.map((source) => [source, i.line] as const)),
  )('COPY source %s (line %i) exists in the repository and is in the build context', (source) => {
    expect(existsSync(join(root, source)), `${source} is not in the repository`).toBe(true);
    expect(dockerIgnored(ignore, source), `.dockerignore leaves ${source} out of the build context`).toBe(false);
    if (statSync(join(root, source)).isDirectory()) {
      const sample = readdirSync(join(root, source))[0];
      if (sample) expect(dockerIgnored(ignore, `${source}/${sample}`), `.dockerignore leaves ${source}/${sample} out`).toBe(false);
    }
  });

  it('keeps host builds, data and secrets out of the build context', () => {
    for (const path of ['node_modules/fastify/package.json', 'dist/index.js', 'data/token.key', '.git/config', 'test/unit/deploy.test.ts', 'deploy/Dockerfile']) {
      expect(dockerIgnored(ignore, path), path).toBe(true);
    }
  });

  it('runs as the unprivileged uid 10001 with WORKDIR /app, VOLUME /data and EXPOSE 5001', () => {
    const user = last('USER') ?? '';
    expect(user).toBe('10001:10001');
    expect(user.split(':')[0]).not.toMatch(/^(0|root)$/);
    expect(last('WORKDIR')).toBe('/app');
    expect(last('VOLUME')).toBe('/data');
    expect(last('EXPOSE')).toBe('5001');
    // USER comes after the RUN that creates the user and before the entry point.
    const order = runtime.instructions.map((i) => i.keyword);
    expect(order.lastIndexOf('RUN')).toBeLessThan(order.indexOf('USER'));
  });

  it('sets the data folder and the listen address in the environment', () => {
    const env = all('ENV').map((i) => i.args).join(' ');
    expect(env).toMatch(/\bSTS_DATA_DIR=\/data\b/);
    expect(env).toMatch(/\bSTS_ADDR=:5001\b/);
    expect(env).toMatch(/\bSTS_HEALTHCHECK_URL=http:\/\/127\.0\.0\.1:5001\/healthz\b/);
  });

  it('checks /healthz with node (no curl in the slim image)', () => {
    const healthcheck = last('HEALTHCHECK') ?? '';
    const cmd = /\bCMD\s+(\[.*\])$/.exec(healthcheck)?.[1];
    expect(cmd, 'HEALTHCHECK ... CMD ["node", ...]').toBeDefined();
    const argv = JSON.parse(cmd as string) as string[];
    expect(argv.slice(0, 2)).toEqual(['node', '-e']);
    expect(argv[2]).toContain('process.env.STS_HEALTHCHECK_URL');
  });

  it('starts node directly on the built CLI, serve by default', () => {
    expect(JSON.parse(last('ENTRYPOINT') ?? 'null')).toEqual(['node', '/app/dist/cli/main.js']);
    expect(JSON.parse(last('CMD') ?? 'null')).toEqual(['serve']);
    const manifest = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    expect(`/app/${manifest.bin['sts-docker-auth']}`).toBe('/app/dist/cli/main.js');
  });
});

// ---- docker-compose.yml ------------------------------------------------------------------------

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval: string; retries: number };
}

describe('deploy/docker-compose.yml', () => {
  const compose = parse(read('deploy/docker-compose.yml')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
  const auth = compose.services.auth as ComposeService;
  const registry = compose.services.registry as ComposeService;
  const mounts = (service: ComposeService) => (service.volumes ?? []).map((v) => v.split(':') as [string, string, string?]);

  it('has the token server and the registry', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['auth', 'registry']);
  });

  it('builds the token server from deploy/Dockerfile with the repository as context', () => {
    expect(auth.build).toEqual({ context: '..', dockerfile: 'deploy/Dockerfile' });
    expect(existsSync(join(root, 'deploy', auth.build?.context ?? '', auth.build?.dockerfile ?? ''))).toBe(true);
  });

  it('runs registry:2 by default and ${REGISTRY_IMAGE} when set', () => {
    expect(registry.image).toBe('${REGISTRY_IMAGE:-registry:2}');
  });

  it('initialises the data volume, copies the certificate to the bundle volume, then execs the server', () => {
    expect(auth.entrypoint).toEqual(['/bin/sh', '-c']);
    const script = (auth.command ?? []).join(' ');
    expect(script).toMatch(/^node \/app\/dist\/cli\/main\.js init && /);
    expect(script).toContain('registry-config --format distribution2 --write-bundle /bundle/token.crt');
    expect(script).toMatch(/&& exec node \/app\/dist\/cli\/main\.js serve$/);
    expect(auth.environment).toMatchObject({ STS_DATA_DIR: '/data', STS_ADDR: ':5001' });
    expect(mounts(auth)).toEqual(expect.arrayContaining([['auth-data', '/data'], ['auth-bundle', '/bundle']]));
  });

  it('gives the registry its auth.token settings in the environment, matching what init generates', () => {
    expect(registry.environment).toMatchObject({
      REGISTRY_AUTH: 'token',
      REGISTRY_AUTH_TOKEN_REALM: 'http://localhost:5001/auth',
      REGISTRY_AUTH_TOKEN_SERVICE: DEFAULT_SERVICE,
      REGISTRY_AUTH_TOKEN_ISSUER: DEFAULT_ISSUER,
      REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: '/auth/token.crt',
    });
    // The realm's port is the one the token server listens on and publishes.
    expect(auth.ports).toContain('5001:5001');
    expect(registry.ports).toContain('5000:5000');
  });

  it('mounts only the certificate bundle in the registry, read-only, never the data volume with the key', () => {
    expect(mounts(registry)).toContainEqual(['auth-bundle', '/auth', 'ro']);
    expect(mounts(registry).map((m) => m[0])).not.toContain('auth-data');
  });

  it('declares every named volume it mounts', () => {
    const named = [...mounts(auth), ...mounts(registry)].map((m) => m[0]).filter((source) => !source.startsWith('.') && !source.startsWith('/'));
    for (const name of named) expect(Object.keys(compose.volumes), name).toContain(name);
  });

  it('has health checks on both, and starts the registry once the token server is healthy', () => {
    expect(auth.healthcheck?.test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
    expect(auth.healthcheck?.test[3]).toContain('http://127.0.0.1:5001/healthz');
    expect(registry.healthcheck?.test[0]).toBe('CMD');
    expect(registry.depends_on).toEqual({ auth: { condition: 'service_healthy' } });
  });
});

// ---- Helm chart --------------------------------------------------------------------------------

const chartDir = 'deploy/helm/sts-docker-auth';

function filesUnder(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((entry) => {
    const path = `${dir}/${entry}`;
    return statSync(join(root, path)).isDirectory() ? filesUnder(path) : [path];
  });
}

/** The `{{ ... }}` actions of a template, comments dropped, trim markers removed. */
function actions(template: string): { text: string; offset: number }[] {
  return [...template.matchAll(/\{\{-?\s*([\s\S]*?)\s*-?\}\}/g)]
    .map((m) => ({ text: (m[1] as string).trim(), offset: m.index }))
    .filter((a) => !a.text.startsWith('/*'));
}

/** Where `if`, `with`, `range`, `define` and `block` are not closed by `end` (or `else` is stray). */
function blockErrors(template: string): string[] {
  const errors: string[] = [];
  const stack: string[] = [];
  for (const { text, offset } of actions(template)) {
    const word = /^([a-z]+)\b/.exec(text)?.[1];
    if (word && ['if', 'with', 'range', 'define', 'block'].includes(word)) stack.push(word);
    else if (word === 'else' && !['if', 'with', 'range'].includes(stack.at(-1) ?? '')) errors.push(`stray else at ${offset}`);
    else if (word === 'end' && stack.pop() === undefined) errors.push(`end without a block at ${offset}`);
  }
  if (stack.length > 0) errors.push(`unclosed: ${stack.join(', ')}`);
  return errors;
}

function hasPath(values: unknown, path: string[]): boolean {
  let node = values;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !(key in node)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return true;
}

describe('deploy/helm/sts-docker-auth', () => {
  const values = parse(read(`${chartDir}/values.yaml`)) as Record<string, unknown>;
  const schema = JSON.parse(read(`${chartDir}/values.schema.json`)) as object;
  const templates = filesUnder(`${chartDir}/templates`);
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  /** values.yaml with the overrides merged as Helm does (maps deep, everything else replaced). */
  const withValues = (overrides: Record<string, unknown>): Record<string, unknown> => {
    const merge = (base: unknown, over: unknown): unknown => {
      if (typeof base !== 'object' || base === null || Array.isArray(base) || typeof over !== 'object' || over === null || Array.isArray(over)) return over;
      const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
      for (const [k, v] of Object.entries(over)) out[k] = merge(out[k], v);
      return out;
    };
    return merge(values, overrides) as Record<string, unknown>;
  };
  const signed = { signingKey: { existingSecret: 'sts-signing' } };

  it('parses every YAML file that is not a template', () => {
    const yamlFiles = [...filesUnder('deploy/helm').filter((f) => /\.ya?ml$/.test(f) && !f.includes('/templates/')), 'deploy/docker-compose.yml'];
    expect(yamlFiles).toEqual(expect.arrayContaining([`${chartDir}/Chart.yaml`, `${chartDir}/values.yaml`, 'deploy/helm/registry-values.yaml']));
    for (const file of yamlFiles) expect(() => parse(read(file)), file).not.toThrow();
  });

  it('has a v2 Chart.yaml whose appVersion is the package version', () => {
    const chart = parse(read(`${chartDir}/Chart.yaml`)) as Record<string, string>;
    const manifest = JSON.parse(read('package.json')) as { version: string };
    expect(chart).toMatchObject({ apiVersion: 'v2', name: 'sts-docker-auth', type: 'application', appVersion: manifest.version });
    expect(chart.version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('has the templates the chart promises', () => {
    const names = templates.map((t) => t.slice(`${chartDir}/templates/`.length)).sort();
    expect(names).toEqual(['NOTES.txt', '_helpers.tpl', 'configmap.yaml', 'deployment.yaml', 'ingress.yaml', 'pdb.yaml', 'pvc.yaml', 'secret.yaml', 'service.yaml']);
  });

  it.each(templates)('%s closes every block it opens', (template) => {
    expect(blockErrors(read(template))).toEqual([]);
  });

  it.each(templates)('%s reads only values that values.yaml defines', (template) => {
    const refs = [...read(template).matchAll(/\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)/g)].map((m) => (m[1] as string).slice(1));
    expect(refs.filter((ref) => !hasPath(values, ref.split('.')))).toEqual([]);
  });

  it('names every include that a define provides', () => {
    const text = templates.map(read).join('\n');
    const defined = new Set([...text.matchAll(/\{\{-?\s*define\s+"([^"]+)"/g)].map((m) => m[1]));
    const used = [...text.matchAll(/\binclude\s+"([^"]+)"/g)].map((m) => m[1]);
    expect(used.filter((name) => !defined.has(name))).toEqual([]);
  });

  it('accepts values.yaml with a signing key, and refuses it without one', () => {
    expect(validate(withValues(signed)), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(values)).toBe(false);
    expect(JSON.stringify(validate.errors)).toContain('signingKey');
  });

  it.each([
    ['two replicas on SQLite', { replicaCount: 2 }, false],
    ['two replicas on PostgreSQL from a Secret', { replicaCount: 2, store: { driver: 'postgres', url: { existingSecret: 'pg' } } }, true],
    ['PostgreSQL without a connection string', { store: { driver: 'postgres' } }, false],
    ['an unknown store driver', { store: { driver: 'mysql' } }, false],
    ['a chart-owned config key', { config: { server: { addr: ':80' } } }, false],
    ['a config store section', { config: { store: { driver: 'sqlite' } } }, false],
    ['a relative public URL', { publicUrl: 'auth.example.com' }, false],
    ['an https public URL', { publicUrl: 'https://auth.example.com' }, true],
    ['a root container', { securityContext: { runAsNonRoot: false } }, false],
  ])('values.schema.json: %s -> valid %s', (_name, overrides, valid) => {
    expect(validate(withValues({ ...signed, ...overrides })), JSON.stringify(validate.errors)).toBe(valid);
  });

  it('fails rendering, with a message, for replicas > 1 without PostgreSQL', () => {
    const helpers = read(`${chartDir}/templates/_helpers.tpl`);
    expect(helpers).toMatch(/if and \(gt \(int \.Values\.replicaCount\) 1\) \(ne \.Values\.store\.driver "postgres"\)/);
    expect(helpers).toContain('more than one replica needs store.driver: postgres');
    expect(read(`${chartDir}/templates/deployment.yaml`)).toMatch(/^\{\{- include "sts-docker-auth\.validate" \. \}\}\n/);
  });

  it('runs non-root on a read-only root file system, with probes on /healthz', () => {
    expect(values.podSecurityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    expect(values.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const deployment = read(`${chartDir}/templates/deployment.yaml`);
    expect(deployment.match(/path: \{\{ printf "%s\/healthz" \(include "sts-docker-auth\.pathPrefix" \.\) \}\}/g)).toHaveLength(2);
    expect(deployment).toContain('livenessProbe:');
    expect(deployment).toContain('readinessProbe:');
  });

  it('renders a config.yml that the server accepts: values.config plus the keys the chart sets', async () => {
    // What the "sts-docker-auth.config" helper builds, with the signing key paths pointed at a
    // generated pair instead of the mounted Secret.
    const dir = await mkdtemp(join(tmpdir(), 'sts-helm-config-'));
    try {
      const key = await generateSigningKey({ kind: 'ec-p256' });
      await writeFile(join(dir, 'tls.key'), key.keyPem);
      await writeFile(join(dir, 'tls.crt'), key.certPem);
      const config = structuredClone(values.config) as Record<string, Record<string, unknown>>;
      const raw = {
        ...config,
        server: { ...config.server, addr: ':5001', public_url: 'https://auth.example.com' },
        token: { ...config.token, certificate: join(dir, 'tls.crt'), key: join(dir, 'tls.key') },
        store: { driver: 'postgres', url_file: '/etc/sts-docker-auth/store/url' },
      };
      const loaded = await parseConfig(raw, { baseDir: dir, env: {} });
      expect(loaded.config.token.services).toEqual([DEFAULT_SERVICE]);
      expect(loaded.config.token.issuer).toBe(DEFAULT_ISSUER);
      expect(loaded.acl.rules.length).toBe(2);
      const sqlite = await parseConfig({ ...raw, store: { driver: 'sqlite', path: '/data/store.db' } }, { baseDir: dir, env: {} });
      expect(sqlite.config.store?.driver).toBe('sqlite');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('registry-values.yaml points the twuni/docker-registry chart at the defaults and mounts only the certificate', () => {
    const registryValues = parse(read('deploy/helm/registry-values.yaml')) as {
      configData: { auth: { token: Record<string, string> } };
      extraVolumes: { name: string; secret: { secretName: string; items: { key: string; path: string }[] } }[];
      extraVolumeMounts: { name: string; mountPath: string; readOnly: boolean }[];
    };
    const token = registryValues.configData.auth.token;
    expect(token).toMatchObject({ service: DEFAULT_SERVICE, issuer: DEFAULT_ISSUER });
    expect(token.realm).toMatch(/^https:\/\/.+\/auth$/);
    const [volume] = registryValues.extraVolumes;
    expect(volume?.secret.secretName).toBe('sts-docker-auth-signing');
    expect(volume?.secret.items).toEqual([{ key: 'tls.crt', path: 'token.crt' }]);
    const [mount] = registryValues.extraVolumeMounts;
    expect(mount).toEqual({ name: volume?.name, mountPath: dirname(token.rootcertbundle as string), readOnly: true });
  });
});

// ---- systemd -----------------------------------------------------------------------------------

describe('deploy/systemd/sts-docker-auth.service', () => {
  const unit = read('deploy/systemd/sts-docker-auth.service');
  const settings = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) settings.set(m[1] as string, [...(settings.get(m[1] as string) ?? []), m[2] as string]);
  }
  const one = (key: string) => settings.get(key)?.at(-1);

  it('runs the built CLI as its own user, with its state directory as the data folder', () => {
    expect(one('User')).toBe('sts-docker-auth');
    expect(one('StateDirectory')).toBe('sts-docker-auth');
    expect(settings.get('Environment')).toContain('STS_DATA_DIR=/var/lib/sts-docker-auth');
    expect(one('ExecStart')).toBe('/usr/bin/node /opt/sts-docker-auth/dist/cli/main.js serve');
    expect(one('ReadWritePaths')).toBe('/var/lib/sts-docker-auth');
  });

  it('stops with SIGTERM and leaves the server time to finish (it gives up after 10 s)', () => {
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(10);
  });

  it.each([
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['ProtectHome', 'yes'],
    ['PrivateTmp', 'yes'],
    ['PrivateDevices', 'yes'],
    ['ProtectKernelTunables', 'yes'],
    ['ProtectKernelModules', 'yes'],
    ['ProtectKernelLogs', 'yes'],
    ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'],
    ['SystemCallFilter', '@system-service'],
    ['CapabilityBoundingSet', ''],
    ['MemoryDenyWriteExecute', 'no'],
  ])('sets %s=%s', (key, value) => {
    expect(one(key)).toBe(value);
  });

  it('explains why MemoryDenyWriteExecute stays off', () => {
    expect(unit).toMatch(/V8[^\n]*\n[^\n]*JIT/);
  });
});
