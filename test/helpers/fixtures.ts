import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig, type LoadedConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { generateSigningKey, type KeyKind } from '../../src/token/generate.js';
import { hashPassword } from '../../src/security/password.js';

/** A temp folder with a freshly generated signing key and certificate; never committed keys. */
export interface KeyDir {
  dir: string;
  keyPem: string;
  certPem: string;
  cleanup(): Promise<void>;
}

const keyCache = new Map<KeyKind, Promise<{ keyPem: string; certPem: string }>>();

export async function makeKeyDir(kind: KeyKind = 'ec-p256'): Promise<KeyDir> {
  let generated = keyCache.get(kind);
  if (!generated) {
    generated = generateSigningKey({ kind });
    keyCache.set(kind, generated);
  }
  const { keyPem, certPem } = await generated;
  const dir = await mkdtemp(join(tmpdir(), 'sts-test-'));
  await writeFile(join(dir, 'token.key'), keyPem);
  await writeFile(join(dir, 'token.crt'), certPem);
  return { dir, keyPem, certPem, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Low-cost hashes keep the tests fast; the cost is what the timing test varies. */
export const hash = (password: string, cost = 4) => hashPassword(password, cost);

export function baseConfig(overrides: Partial<ConfigInput> = {}): ConfigInput {
  return {
    server: { addr: '127.0.0.1:0' },
    token: { issuer: 'test-issuer', expiration: 300, certificate: 'token.crt', key: 'token.key', services: ['test-registry'] },
    users: {},
    acl: [],
    ...overrides,
  };
}

export async function loadTestConfig(keys: KeyDir, config: ConfigInput): Promise<LoadedConfig> {
  return parseConfig(config, { baseDir: keys.dir, source: 'test.yml', env: {} });
}

export async function writeConfig(keys: KeyDir, config: unknown, name = 'config.yml'): Promise<string> {
  const path = join(keys.dir, name);
  await writeFile(path, stringify(config));
  return path;
}

export function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown>; signature: Buffer } {
  const [h, c, s] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h ?? '', 'base64url').toString()),
    claims: JSON.parse(Buffer.from(c ?? '', 'base64url').toString()),
    signature: Buffer.from(s ?? '', 'base64url'),
  };
}
