import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Identity } from '../authn/types.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { dataDir, CONFIG_FILE } from '../config/init.js';
import {
  distribution2Block,
  distribution3Block,
  trustedKeys,
  zotBlock,
  type RegistryConfigOptions,
} from '../config/registry-config.js';
import { parseScopes } from '../protocol/scope.js';
import { DEFAULT_COST, hashPassword } from '../security/password.js';
import { buildIssuer } from '../server/app.js';
import type { Store } from '../store/types.js';
import { buildJwks } from '../token/jwks.js';
import { readSecret } from './read-secret.js';

export function defaultConfigPath(): string {
  return join(dataDir(), CONFIG_FILE);
}

export async function checkConfig(file: string): Promise<LoadedConfig> {
  return loadConfig(file);
}

export function describeConfig(loaded: LoadedConfig): string {
  const { config, signingKey } = loaded;
  return [
    `${loaded.source}: OK`,
    `  listen ${config.server.addr}${loaded.tls ? ' (HTTPS)' : ' (HTTP)'}${config.server.path_prefix ? `, prefix ${config.server.path_prefix}` : ''}`,
    `  issuer ${JSON.stringify(config.token.issuer)}, tokens live ${config.token.expiration} s`,
    `  signing ${signingKey.alg}, jwt header ${loaded.jwtHeader}, kid ${signingKey.libtrustKid}`,
    `  certificate valid until ${signingKey.certificate.validTo}`,
    ...(loaded.keyring ? [`  keyring ${loaded.keyring.dir}: ${loaded.keyring.keys.length} key(s), ${trustedKeys(loaded).length} trusted (keys list)`] : []),
    `  ${Object.keys(config.users ?? {}).length} static user(s), ${loaded.acl.rules.length} ACL rule(s)`,
    ...(config.trusted_issuers?.length ? [`  trusted issuers: ${config.trusted_issuers.map((i) => `${i.name} (${i.issuer})`).join(', ')}`] : []),
  ].join('\n');
}

export async function hashPasswordCommand(cost: number): Promise<string> {
  const password = await readSecret('Password');
  if (password.length === 0) throw new Error('the password is empty');
  return hashPassword(password, cost);
}

/**
 * Turns `{"user": "password"}` JSON (the plain users file of the service this project replaces)
 * into a `users:` section with bcrypt hashes.
 */
export async function importUsers(file: string, cost = DEFAULT_COST): Promise<string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a JSON file: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${file}: expected a JSON object of "user": "password"`);
  }
  const users: Record<string, { password: string }> = {};
  for (const [name, password] of Object.entries(parsed)) {
    if (typeof password !== 'string') throw new Error(`${file}: the password of ${JSON.stringify(name)} is not a string`);
    if (name === '') throw new Error(`${file}: an empty user name is not allowed (the empty name means anonymous)`);
    if (password === '') throw new Error(`${file}: the password of ${JSON.stringify(name)} is empty`);
    users[name] = { password: await hashPassword(password, cost) };
  }
  return stringify({ users });
}

export interface ExplainOptions {
  account: string;
  scopes: string[];
  service?: string;
  ip?: string;
  labels?: string[];
}

function parseLabels(values: string[]): Record<string, string[]> {
  const labels: Record<string, string[]> = {};
  for (const value of values) {
    for (const pair of value.split(',')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new Error(`--labels expects key=value, got ${JSON.stringify(pair)}`);
      (labels[pair.slice(0, eq)] ??= []).push(pair.slice(eq + 1));
    }
  }
  return labels;
}

/** Which rule decides each scope for an account, and what would be granted; no password needed. */
export async function explain(loaded: LoadedConfig, options: ExplainOptions, store?: Store): Promise<string> {
  const { issuer, directory } = buildIssuer(loaded, { store });
  const service = options.service ?? loaded.config.token.services?.[0] ?? 'docker-registry';
  const scopes = parseScopes(options.scopes);
  const found = options.account === '' ? undefined : await directory(options.account);
  const known = found?.outcome === 'identity' ? found.identity : undefined;
  const labels = options.labels?.length ? parseLabels(options.labels) : (known?.labels ?? {});
  const identity: Identity = { account: options.account, labels, backend: 'explain', anonymous: options.account === '' };
  const decisions = await issuer.authorizeAll(identity, scopes, options.ip, service);
  const who = options.account === '' ? 'anonymous' : known ? `${known.backend} user` : found?.outcome === 'denied' ? `cannot sign in: ${found.reason}` : 'unknown user';
  const lines = [
    `account ${JSON.stringify(options.account)} (${who}), service ${JSON.stringify(service)}, ip ${options.ip ?? '(none)'}`,
    `labels ${JSON.stringify(labels)}`,
  ];
  for (const d of decisions) {
    const asked = `${d.requested.type}:${d.requested.name}:${d.requested.actions.join(',')}`;
    lines.push(`${asked}\n  rule: ${d.reason}\n  granted: ${d.granted.actions.length ? d.granted.actions.join(',') : '(nothing)'}`);
  }
  return lines.join('\n');
}

export interface RegistryConfigCommandOptions extends RegistryConfigOptions {
  format: 'distribution2' | 'distribution3' | 'zot' | 'all';
  writeBundle?: string;
  writeJwks?: string;
}

export async function registryConfig(loaded: LoadedConfig, options: RegistryConfigCommandOptions): Promise<string> {
  const blockOptions: RegistryConfigOptions = { ...options };
  if (options.writeBundle) {
    await writeFile(options.writeBundle, trustedKeys(loaded).map((k) => k.certificatePem).join(''), { mode: 0o644 });
    blockOptions.bundlePath ??= options.writeBundle;
  }
  if (options.writeJwks) {
    await writeFile(options.writeJwks, `${JSON.stringify(buildJwks(trustedKeys(loaded), loaded.jwtHeader), null, 2)}\n`);
    blockOptions.jwksPath ??= options.writeJwks;
  }
  const parts: string[] = [];
  if (options.format === 'distribution2' || options.format === 'all') {
    parts.push(`# distribution 2.8 (registry:2), /etc/docker/registry/config.yml\n${distribution2Block(loaded, blockOptions)}`);
  }
  if (options.format === 'distribution3' || options.format === 'all') {
    parts.push(`# distribution 3.x (registry:3), /etc/distribution/config.yml\n${distribution3Block(loaded, blockOptions)}`);
  }
  if (options.format === 'zot' || options.format === 'all') {
    parts.push(`# zot, config.json\n${zotBlock(loaded, blockOptions)}`);
  }
  return parts.join('\n');
}
