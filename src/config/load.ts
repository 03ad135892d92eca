import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { compileAcl, AclCompileError, type CompiledAcl } from '../authz/acl/index.js';
import { KeyError, signingKeyFromPem, type SigningKey } from '../token/keys.js';
import type { HeaderMode } from '../token/signer.js';
import { keyringView, type KeyringKey, type KeyringSettings } from '../token/keyring.js';
import { KeyringError, loadKeyringKeys } from '../token/keyring-files.js';
import { prepareSso, type PreparedSso } from '../sso/prepare.js';
import { prepareExternal, type PreparedExternal } from '../external/prepare.js';
import { prepareLdapAuth, type PreparedLdap } from '../authn/ldap.js';
import { unsupportedSectionMessage } from './docker-auth-sections.js';
import { prepareMetrics, type PreparedMetrics } from '../server/metrics-route.js';
import { ConfigError, formatPath, type ConfigIssue } from './errors.js';
import { prepareLockoutRedis } from '../security/lockout.js';
import { configSchema, type Config } from './schema.js';

/** A validated configuration with everything that can fail at start already done. */
export interface LoadedConfig {
  /** The file it came from, or a label such as `<inline>` for a config object. */
  readonly source: string;
  /** Relative paths in the config resolve against this folder. */
  readonly baseDir: string;
  readonly config: Readonly<Config>;
  /** The key that signs at load time; with a keyring, the server moves on to the next one on time. */
  readonly signingKey: SigningKey;
  /** token.keyring: every key with its activation time (token.key, if set, is the oldest). */
  readonly keyring?: LoadedKeyring;
  readonly jwtHeader: HeaderMode;
  readonly acl: CompiledAcl;
  /** TLS material for the listener, when server.certificate is set. */
  readonly tls?: { cert: string; key: string };
  /** The `sso` section with its secret files read, when it is configured. */
  readonly sso?: PreparedSso;
  /** The ext_auth/ext_authz programs found and the webhook secrets read at start. */
  readonly external?: PreparedExternal;
  /** ldap_auth's CA certificate and service-account password, read at start. */
  readonly ldap?: PreparedLdap;
  /** The metrics section's bearer token (its digest), read at start. */
  readonly metrics?: PreparedMetrics;
  /** lockout.redis.url, or the URL its url_file holds, read at start. */
  readonly lockoutRedisUrl?: string;
}

export interface LoadedKeyring {
  /** The keyring folder, absolute. */
  readonly dir: string;
  readonly keys: readonly KeyringKey[];
  readonly settings: KeyringSettings;
}

export interface ParseOptions {
  /** Relative paths in the config (keys, certificates) resolve against this folder. */
  baseDir: string;
  /** Where the config came from, for messages. */
  source?: string;
  /** Environment overrides; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** The clock (epoch ms) that picks the keyring's signing key; Date.now by default. */
  now?: () => number;
}

function zodIssues(error: z.ZodError): ConfigIssue[] {
  return error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      // A docker_auth section we do not implement gets its own line saying what to use instead.
      const sections = issue.keys.flatMap((key) => {
        const path = formatPath([...issue.path, key]);
        const message = unsupportedSectionMessage(path);
        return message ? [{ path, message }] : [];
      });
      const unknown = issue.keys.filter((key) => !unsupportedSectionMessage(formatPath([...issue.path, key])));
      if (unknown.length === 0) return sections;
      const message = `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}`;
      return [...sections, { path: formatPath(issue.path), message }];
    }
    return [{ path: formatPath(issue.path), message: issue.message }];
  });
}

function applyEnv(raw: unknown, env: NodeJS.ProcessEnv): unknown {
  // STS_ADDR exists for containers and tests: the same file, another listen address.
  if (!env.STS_ADDR || typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const doc = raw as Record<string, unknown>;
  const server = typeof doc.server === 'object' && doc.server !== null ? (doc.server as object) : {};
  return { ...doc, server: { ...server, addr: env.STS_ADDR } };
}

async function readPem(baseDir: string, file: string, path: string, issues: ConfigIssue[]): Promise<string | undefined> {
  const full = isAbsolute(file) ? file : resolve(baseDir, file);
  try {
    return await readFile(full, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    issues.push({ path, message: `cannot read ${full}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}` });
    return undefined;
  }
}

/** Validates a config object (already parsed from YAML or built in code) and prepares it to run. */
export async function parseConfig(raw: unknown, options: ParseOptions): Promise<LoadedConfig> {
  const source = options.source ?? '<inline>';
  const parsed = configSchema.safeParse(applyEnv(raw, options.env ?? process.env));
  if (!parsed.success) throw new ConfigError(source, zodIssues(parsed.error));
  const config = parsed.data;
  const issues: ConfigIssue[] = [];

  let acl: CompiledAcl | undefined;
  try {
    acl = compileAcl(config.acl ?? []);
  } catch (err) {
    if (!(err instanceof AclCompileError)) throw err;
    issues.push({ path: formatPath(['acl', ...err.path]), message: err.message });
  }

  // docker_auth falls back to the server's TLS pair when the token section has none (and no keyring).
  const serverPair: { key?: string | undefined; certificate?: string | undefined } = config.token.keyring ? {} : config.server;
  const keyFile = config.token.key ?? serverPair.key;
  const certFile = config.token.certificate ?? serverPair.certificate;
  const keyPath = config.token.key ? 'token.key' : 'server.key';
  const certPath = config.token.certificate ? 'token.certificate' : 'server.certificate';
  let signingKey: SigningKey | undefined;
  if (keyFile && certFile) {
    const [keyPem, certPem] = await Promise.all([
      readPem(options.baseDir, keyFile, keyPath, issues),
      readPem(options.baseDir, certFile, certPath, issues),
    ]);
    if (keyPem !== undefined && certPem !== undefined) {
      try {
        signingKey = signingKeyFromPem(keyPem, certPem);
      } catch (err) {
        if (!(err instanceof KeyError)) throw err;
        issues.push({ path: keyPath, message: err.message });
      }
    }
  }

  let keyring: LoadedKeyring | undefined;
  if (config.token.keyring) {
    const { dir: folder, activation_delay: delay } = config.token.keyring;
    const dir = isAbsolute(folder) ? folder : resolve(options.baseDir, folder);
    const settings: KeyringSettings = { activationDelayMs: delay === undefined ? undefined : delay * 1000, tokenLifetimeMs: config.token.expiration * 1000 };
    try {
      // With a keyring, token.key (if set) is its oldest key; server.key stays the listener's own.
      const keys = await loadKeyringKeys(dir, signingKey, settings);
      keyring = { dir, keys, settings };
      const signing = keyringView(keys, settings, (options.now ?? Date.now)()).signing;
      if (signing) signingKey = signing.key;
      else if (!config.token.key) {
        issues.push({ path: 'token.keyring', message: `${dir} has no key that signs yet: activate one (sts-docker-auth keys activate) or create one (keys rotate)` });
      }
    } catch (err) {
      if (!(err instanceof KeyringError)) throw err;
      issues.push({ path: 'token.keyring.dir', message: err.message });
    }
  }

  let tls: { cert: string; key: string } | undefined;
  if (config.server.certificate && config.server.key) {
    const [cert, key] = await Promise.all([
      readPem(options.baseDir, config.server.certificate, 'server.certificate', issues),
      readPem(options.baseDir, config.server.key, 'server.key', issues),
    ]);
    if (cert !== undefined && key !== undefined) tls = { cert, key };
  }

  if (config.token.disable_legacy_key_id && config.token.jwt_header && config.token.jwt_header !== 'thumbprint') {
    issues.push({
      path: 'token.disable_legacy_key_id',
      message: `contradicts token.jwt_header: ${config.token.jwt_header}; keep one of them`,
    });
  }

  const external = await prepareExternal(config, options.baseDir, issues);

  const sso = await prepareSso(config, options.baseDir, options.env ?? process.env, issues);

  const ldap = config.ldap_auth ? await prepareLdapAuth(config.ldap_auth, options.baseDir, issues) : undefined;

  const metrics = await prepareMetrics(config.metrics, options.baseDir, issues);

  const lockoutRedisUrl = await prepareLockoutRedis(config.lockout, options.baseDir, issues);

  if (issues.length > 0 || !acl || !signingKey) throw new ConfigError(source, issues);
  const jwtHeader: HeaderMode = config.token.jwt_header ?? (config.token.disable_legacy_key_id ? 'thumbprint' : 'x5c');
  return Object.freeze({ source, baseDir: options.baseDir, config: deepFreeze(config), signingKey, ...(keyring ? { keyring } : {}), jwtHeader, acl, external, ...(tls ? { tls } : {}), ...(sso ? { sso } : {}), ...(ldap ? { ldap } : {}), metrics, ...(lockoutRedisUrl ? { lockoutRedisUrl } : {}) });
}

/** Reads, parses and validates a YAML config file. Relative paths in it resolve against its folder. */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file: ${(err as Error).message}` }]);
  }
  return parseConfigText(text, { baseDir: dirname(resolve(file)), source: file, env });
}

/** Parses YAML text (duplicate keys are errors) and validates it. */
export async function parseConfigText(text: string, options: ParseOptions): Promise<LoadedConfig> {
  const source = options.source ?? '<inline>';
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({ path: e.linePos ? `line ${e.linePos[0].line}` : '', message: e.message.split('\n')[0] ?? e.message })),
    );
  }
  return parseConfig(doc.toJS() ?? {}, { ...options, source });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
