import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseScopeLimit, ScopeLimitError } from '../authz/scope-limit.js';
import { formatPath, type ConfigIssue } from '../config/errors.js';
import { dataDir } from '../config/init.js';
import type { Config } from '../config/schema.js';
import type { SsoConfig } from './config.js';

/** HMAC keys shorter than this are guessable in principle; 32 bytes matches SHA-256's output. */
export const MIN_SESSION_SECRET_BYTES = 32;

/** The `sso` section with its files read: what the login pages need to run. */
export interface PreparedSso {
  readonly settings: SsoConfig;
  /** Provider id → client secret (from client_secret or client_secret_file). */
  readonly clientSecrets: ReadonlyMap<string, string>;
  /** The absolute path of session_secret_file. */
  readonly sessionSecretPath: string;
  /**
   * The secret that signs the login cookies; undefined when the file does not exist yet and lies in
   * the data folder, where the server creates it on start (check-config writes nothing).
   */
  readonly sessionSecret: Buffer | undefined;
}

const full = (baseDir: string, file: string) => (isAbsolute(file) ? file : resolve(baseDir, file));

async function readSecretFile(path: string): Promise<Buffer | 'missing' | Error> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    return err as Error;
  }
}

/**
 * Reads the files the `sso` section names and checks what zod cannot see: a store to keep the
 * accounts in, the token scopes, the token lifetime against access_tokens.max_lifetime. Problems
 * go to `issues` with their key path, so that check-config reports them all.
 */
export async function prepareSso(config: Config, baseDir: string, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): Promise<PreparedSso | undefined> {
  const sso = config.sso;
  if (!sso) return undefined;
  const at = (...path: (string | number)[]) => formatPath(['sso', ...path]);
  const before = issues.length;

  if (!config.store) {
    issues.push({ path: 'sso', message: 'needs a store section: sign-in creates the accounts and their access tokens there' });
  }
  try {
    parseScopeLimit(sso.token_scopes);
  } catch (err) {
    if (!(err instanceof ScopeLimitError)) throw err;
    issues.push({ path: at('token_scopes'), message: err.message });
  }
  const max = config.access_tokens.max_lifetime;
  if (max !== undefined && sso.token_lifetime > max) {
    issues.push({ path: at('token_lifetime'), message: `is longer than access_tokens.max_lifetime (${max} s)` });
  }

  const clientSecrets = new Map<string, string>();
  for (const [index, provider] of sso.providers.entries()) {
    if (provider.client_secret !== undefined) {
      clientSecrets.set(provider.id, provider.client_secret);
      continue;
    }
    if (provider.client_secret_file === undefined) continue; // the schema already said so
    const path = full(baseDir, provider.client_secret_file);
    const read = await readSecretFile(path);
    if (read === 'missing' || read instanceof Error) {
      issues.push({ path: at('providers', index, 'client_secret_file'), message: `cannot read ${path}: ${read === 'missing' ? 'no such file' : read.message}` });
      continue;
    }
    // Files written by `echo` end with a newline that is no part of the secret.
    const secret = read.toString('utf8').replace(/\r?\n$/, '');
    if (secret === '') issues.push({ path: at('providers', index, 'client_secret_file'), message: `${path} is empty` });
    else clientSecrets.set(provider.id, secret);
  }

  const sessionSecretPath = full(baseDir, sso.session_secret_file);
  const read = await readSecretFile(sessionSecretPath);
  let sessionSecret: Buffer | undefined;
  if (read === 'missing') {
    if (dirname(sessionSecretPath) !== dataDir(env)) {
      issues.push({
        path: at('session_secret_file'),
        message: `cannot read ${sessionSecretPath}: no such file; create it with \`head -c 48 /dev/urandom | base64 > ${sessionSecretPath}\` (only a file in the data folder is created on first start)`,
      });
    }
  } else if (read instanceof Error) {
    issues.push({ path: at('session_secret_file'), message: `cannot read ${sessionSecretPath}: ${read.message}` });
  } else if (read.length < MIN_SESSION_SECRET_BYTES) {
    issues.push({ path: at('session_secret_file'), message: `${sessionSecretPath} holds ${read.length} bytes; it needs at least ${MIN_SESSION_SECRET_BYTES} random bytes` });
  } else {
    sessionSecret = read;
  }

  if (issues.length > before) return undefined;
  return { settings: sso, clientSecrets, sessionSecretPath, sessionSecret };
}

/**
 * The session secret, creating the file (0600) when the config let it be created. Several replicas
 * starting at once from one data folder agree on one file: creation is exclusive, losers read it.
 */
export async function ensureSessionSecret(prepared: PreparedSso): Promise<Buffer> {
  if (prepared.sessionSecret) return prepared.sessionSecret;
  const secret = `${randomBytes(48).toString('base64url')}\n`;
  try {
    await writeFile(prepared.sessionSecretPath, secret, { mode: 0o600, flag: 'wx' });
    return Buffer.from(secret);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const existing = await readFile(prepared.sessionSecretPath);
  if (existing.length < MIN_SESSION_SECRET_BYTES) throw new Error(`${prepared.sessionSecretPath} holds fewer than ${MIN_SESSION_SECRET_BYTES} bytes`);
  return existing;
}
