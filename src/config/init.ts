import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { hashPassword } from '../security/password.js';
import { generateSigningKey } from '../token/generate.js';
import { keyringView } from '../token/keyring.js';
import { signingKeyFromPem } from '../token/keys.js';
import { loadKeyringKeys, readManifest, storeGeneratedKey, writeManifest, writeTrustFiles } from '../token/keyring-files.js';

export const CONFIG_FILE = 'config.yml';
/** An older data folder's key pair; a folder made now keeps its keys in KEYRING_DIR. */
export const KEY_FILE = 'token.key';
export const CERT_FILE = 'token.crt';
export const KEYRING_DIR = 'keys';
export const DEFAULT_SERVICE = 'docker-registry';
export const DEFAULT_ISSUER = 'sts-docker-auth';

/** The data folder: `STS_DATA_DIR`, or `./data`. */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.STS_DATA_DIR || 'data');
}

export interface InitResult {
  configPath: string;
  /** Set only when this call created the config: the admin password, to be shown once. */
  adminPassword?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

function configText(adminHash: string, legacyKey: boolean): string {
  const keyLines = legacyKey ? `  certificate: ${CERT_FILE}\n  key: ${KEY_FILE}\n` : '';
  return `# sts-docker-auth configuration, created on first start.
# The format is docker_auth's for server, token, users and acl; see docs/configuration.md.
server:
  addr: ":5001"
  # public_url: https://auth.example.com   # what clients reach; used by registry-config
token:
  issuer: ${DEFAULT_ISSUER}
  expiration: 300
${keyLines}  # Signing keys: \`sts-docker-auth keys list|rotate|activate\`; registries trust ${KEYRING_DIR}/bundle.pem.
  keyring:
    dir: ${KEYRING_DIR}
  services: [${DEFAULT_SERVICE}]
# Users, groups, rules, access tokens and refresh tokens managed with the CLI and the admin API.
store:
  driver: sqlite
  path: store.db
users:
  admin:
    password: "${adminHash}"
  # "": {}   # uncomment to let anonymous callers in (then give them rules below)
# The first matching rule decides. Rules added with \`sts-docker-auth acl add\` (kept in the store)
# come after these, so a catch-all rule here would hide them.
acl:
  - match: {account: admin}
    actions: ["*"]
    comment: the administrator may do anything, the catalog included
  - match: {account: "/.+/", name: "\${account}/*"}
    actions: ["*"]
    comment: every signed-in user owns the repositories under their name
`;
}

/**
 * First start: creates the data folder with a keyring holding an EC P-256 signing key, its
 * self-signed certificate and the registries' bundle.pem and jwks.json, a config file and an
 * `admin` user with a random password. Later starts find the config and change nothing.
 */
export async function ensureDataDir(dir: string): Promise<InitResult> {
  const configPath = join(dir, CONFIG_FILE);
  if (await exists(configPath)) return { configPath };
  await mkdir(dir, { recursive: true, mode: 0o700 });

  const keyPath = join(dir, KEY_FILE);
  const certPath = join(dir, CERT_FILE);
  const [hasKey, hasCert] = await Promise.all([exists(keyPath), exists(certPath)]);
  if (hasKey !== hasCert) {
    // Never replace a signing key the registries may already trust.
    throw new Error(`${hasKey ? certPath : keyPath} is missing but ${hasKey ? keyPath : certPath} exists; restore it or remove both`);
  }
  // A folder restored without its config keeps the keys registries may already trust.
  const keyring = join(dir, KEYRING_DIR);
  await mkdir(keyring, { recursive: true, mode: 0o700 });
  if (!hasKey && (await readManifest(keyring)).keys.length === 0) {
    const generated = await generateSigningKey({ kind: 'ec-p256' });
    const now = new Date();
    await writeManifest(keyring, { version: 1, keys: [await storeGeneratedKey(keyring, generated, now, true)] });
  }
  const settings = { activationDelayMs: undefined, tokenLifetimeMs: 300_000 };
  const legacy = hasKey ? signingKeyFromPem(await readFile(keyPath, 'utf8'), await readFile(certPath, 'utf8')) : undefined;
  const keys = await loadKeyringKeys(keyring, legacy, settings);
  await writeTrustFiles(keyring, keyringView(keys, settings, Date.now()).trusted, 'x5c');
  const adminPassword = randomBytes(18).toString('base64url');
  const adminHash = await hashPassword(adminPassword);
  // The config holds a password hash: readable by its owner only.
  await writeFile(configPath, configText(adminHash, hasKey), { mode: 0o600, flag: 'wx' });
  return { configPath, adminPassword };
}
