import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildJwks } from './jwks.js';
import { KeyError, signingKeyFromPem, type SigningKey } from './keys.js';
import { activationOf, manifestSchema, type KeyringKey, type KeyringSettings, type KeyStatus, type Manifest, type ManifestEntry } from './keyring.js';
import type { GeneratedKey } from './generate.js';
import type { HeaderMode } from './signer.js';

/** The keyring folder's own files: the manifest (what the keys commands write) and what registries read. */
export const MANIFEST_FILE = 'keyring.json';
export const BUNDLE_FILE = 'bundle.pem';
export const JWKS_FILE = 'jwks.json';

export class KeyringError extends Error {
  override name = 'KeyringError';
}

/** The manifest, or an empty one when the folder has none yet. */
export async function readManifest(dir: string): Promise<Manifest> {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, keys: [] };
    throw new KeyringError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new KeyringError(`${file} is not JSON: ${(err as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeyringError(`${file}: ${issue?.path.join('.') || '(top)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Replaces a file in one step: readers (registries, other replicas) never see half of it. */
async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, text, { mode });
    await chmod(temporary, mode);
    await rename(temporary, file);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await writeAtomically(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, 0o644);
}

async function readEntryKey(dir: string, entry: ManifestEntry): Promise<SigningKey> {
  const read = async (name: string) => {
    try {
      return await readFile(join(dir, name), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new KeyringError(`cannot read ${join(dir, name)}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
  };
  // One after the other: the message names the same missing file every time.
  const keyPem = await read(entry.key);
  const certPem = await read(entry.certificate);
  try {
    return signingKeyFromPem(keyPem, certPem);
  } catch (err) {
    if (err instanceof KeyError) throw new KeyringError(`${join(dir, entry.key)}: ${err.message}`);
    throw err;
  }
}

/**
 * Every key the server knows: the config's own key (if any) first, as the oldest, then the
 * keyring's. A keyring entry with the config key's public key replaces it (an operator who
 * points token.key at a keyring file keeps that key's history).
 */
export async function loadKeyringKeys(
  dir: string,
  configKey: SigningKey | undefined,
  settings: Pick<KeyringSettings, 'activationDelayMs'>,
): Promise<KeyringKey[]> {
  const manifest = await readManifest(dir);
  const keys: KeyringKey[] = [];
  for (const entry of manifest.keys) {
    const key = await readEntryKey(dir, entry);
    if (keys.some((k) => k.key.thumbprint === key.thumbprint)) throw new KeyringError(`${join(dir, MANIFEST_FILE)} lists the key ${key.thumbprint} twice`);
    const createdMs = Date.parse(entry.created);
    keys.push({ key, source: entry, createdMs, activatesMs: activationOf(entry, createdMs, settings) });
  }
  if (configKey && !keys.some((k) => k.key.thumbprint === configKey.thumbprint)) {
    keys.unshift({ key: configKey, source: 'config', createdMs: Date.parse(configKey.certificate.validFrom), activatesMs: Number.NEGATIVE_INFINITY });
  }
  return keys;
}

/** The registries' files: every trusted certificate (rootcertbundle) and the same keys as a JWKS. */
export async function writeTrustFiles(dir: string, trusted: readonly KeyStatus[], mode: HeaderMode): Promise<{ bundle: string; jwks: string }> {
  const bundle = join(dir, BUNDLE_FILE);
  const jwks = join(dir, JWKS_FILE);
  await writeAtomically(bundle, trusted.map((k) => k.key.certificatePem).join(''), 0o644);
  await writeAtomically(jwks, `${JSON.stringify(buildJwks(trusted.map((k) => k.key), mode), null, 2)}\n`, 0o644);
  return { bundle, jwks };
}

/** Writes a new key pair into the folder and returns its manifest entry (not yet in the manifest). */
export async function storeGeneratedKey(dir: string, generated: GeneratedKey, now: Date, activated: boolean): Promise<ManifestEntry> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const base = `key-${stamp}-${randomBytes(3).toString('hex')}`;
  await writeAtomically(join(dir, `${base}.key`), generated.keyPem, 0o600);
  await writeAtomically(join(dir, `${base}.crt`), generated.certPem, 0o644);
  return { key: `${base}.key`, certificate: `${base}.crt`, created: now.toISOString(), ...(activated ? { activated: now.toISOString() } : {}) };
}

/** Deletes a key's files (after its entry left the manifest). */
export async function removeKeyFiles(dir: string, entry: ManifestEntry): Promise<void> {
  await Promise.all([rm(join(dir, entry.key), { force: true }), rm(join(dir, entry.certificate), { force: true })]);
}
