import { randomBytes } from 'node:crypto';
import { access, chmod, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { hashPassword } from '../security/password.js';
import { generateSigningKey } from '../token/generate.js';

export const CONFIG_FILE = 'config.yml';
export const KEY_FILE = 'token.key';
export const CERT_FILE = 'token.crt';
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

function configText(adminHash: string): string {
  return `# sts-docker-auth configuration, created on first start.
# The format is docker_auth's for server, token, users and acl; see docs/configuration.md.
server:
  addr: ":5001"
  # public_url: https://auth.example.com   # what clients reach; used by registry-config
token:
  issuer: ${DEFAULT_ISSUER}
  expiration: 300
  certificate: ${CERT_FILE}
  key: ${KEY_FILE}
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
 * First start: creates the data folder with an EC P-256 signing key, its self-signed certificate
 * (the registry's rootcertbundle), a config file and an `admin` user with a random password.
 * Later starts find the config and change nothing.
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
  if (!hasKey) {
    const generated = await generateSigningKey({ kind: 'ec-p256' });
    await writeFile(keyPath, generated.keyPem, { mode: 0o600 });
    await chmod(keyPath, 0o600);
    await writeFile(certPath, generated.certPem, { mode: 0o644 });
  }
  const adminPassword = randomBytes(18).toString('base64url');
  const adminHash = await hashPassword(adminPassword);
  // The config holds a password hash: readable by its owner only.
  await writeFile(configPath, configText(adminHash), { mode: 0o600, flag: 'wx' });
  return { configPath, adminPassword };
}
