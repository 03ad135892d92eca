/**
 * `sts-docker-auth keys list|rotate|activate|remove|prune`: the signing keys of `token.keyring`.
 *
 * A rotation never signs with a key registries do not trust yet: `keys rotate` adds the new key to
 * the keyring's bundle.pem and jwks.json as `staged`; registries are restarted to read them; then
 * `keys activate` (or `token.keyring.activation_delay`) makes it sign. The replaced key stays in
 * both files until every token it signed has expired. Servers watch keyring.json and follow.
 *
 * Files are written in an order that is safe at every step: key files, then the registries'
 * files, then the manifest, which is what the servers act on.
 */
import { copyFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadConfig, type LoadedConfig, type LoadedKeyring } from '../config/load.js';
import { generateSigningKey, type KeyKind } from '../token/generate.js';
import { activationOf, findKey, keyringView, type KeyringKey, type KeyringView, type KeyStatus, type Manifest, type ManifestEntry } from '../token/keyring.js';
import { readManifest, removeKeyFiles, storeGeneratedKey, writeManifest, writeTrustFiles } from '../token/keyring-files.js';
import { signingKeyFromPem, type SigningKey } from '../token/keys.js';
import { defaultConfigPath } from './commands.js';

const KINDS: readonly KeyKind[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'];

interface KeysOpts {
  config?: string;
}

async function openKeyring(opts: KeysOpts): Promise<{ loaded: LoadedConfig; keyring: LoadedKeyring }> {
  const loaded = await loadConfig(opts.config ?? defaultConfigPath());
  if (!loaded.keyring) {
    throw new Error(`${loaded.source}: token.keyring is not set; add \`keyring: {dir: keys}\` under token (docs/operations.md, key rotation)`);
  }
  return { loaded, keyring: loaded.keyring };
}

/** The same kind of key as the one that signs now: registries already accept its algorithm. */
function kindOf(key: SigningKey): KeyKind {
  if (key.alg === 'ES256') return 'ec-p256';
  if (key.alg === 'ES384') return 'ec-p384';
  if (key.alg === 'RS256') {
    const bits = key.privateKey.asymmetricKeyDetails?.modulusLength ?? 2048;
    return bits >= 4096 ? 'rsa-4096' : bits >= 3072 ? 'rsa-3072' : 'rsa-2048';
  }
  throw new Error(`the signing key is ${key.alg}, which keys rotate cannot make; choose one with --kind (${KINDS.join(', ')})`);
}

/** The keys after a manifest change, without reading them again. */
function rebuild(keyring: LoadedKeyring, manifest: Manifest, added: Array<{ entry: ManifestEntry; key: SigningKey }> = []): KeyringKey[] {
  const known = keyring.keys.map((k) => {
    const entry = k.source === 'config' ? undefined : manifest.keys.find((e) => e.key === (k.source as ManifestEntry).key);
    if (!entry) return k;
    const createdMs = Date.parse(entry.created);
    return { ...k, source: entry, createdMs, activatesMs: activationOf(entry, createdMs, keyring.settings) };
  });
  const kept = known.filter((k) => k.source === 'config' || manifest.keys.includes(k.source));
  return [
    ...kept,
    ...added.map(({ entry, key }) => {
      const createdMs = Date.parse(entry.created);
      return { key, source: entry, createdMs, activatesMs: activationOf(entry, createdMs, keyring.settings) };
    }),
  ];
}

async function publish(loaded: LoadedConfig, keyring: LoadedKeyring, keys: KeyringKey[], manifest: Manifest, nowMs: number): Promise<KeyringView> {
  const view = keyringView(keys, keyring.settings, nowMs);
  const files = await writeTrustFiles(keyring.dir, view.trusted, loaded.jwtHeader);
  await writeManifest(keyring.dir, manifest);
  console.log(`wrote ${files.bundle} and ${files.jwks}: ${view.trusted.length} trusted key(s)`);
  return view;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function when(status: KeyStatus): string {
  switch (status.state) {
    case 'active':
      return status.activatesMs === Number.NEGATIVE_INFINITY ? 'signs (token.key)' : `signs since ${iso(status.activatesMs as number)}`;
    case 'staged':
      return status.activatesMs === undefined ? 'waits for keys activate' : `signs from ${iso(status.activatesMs)}`;
    case 'retiring':
      return `trusted until ${iso(status.trustedUntilMs as number)}`;
    case 'retired':
      return `untrusted since ${iso(status.trustedUntilMs as number)} (keys prune deletes it)`;
  }
}

/** The key's files, absolute: for `token.key` as the config names them. */
function filesOf(status: KeyStatus, loaded: LoadedConfig, keyring: LoadedKeyring): { key: string; certificate: string } {
  if (status.source === 'config') {
    const path = (file: string) => (isAbsolute(file) ? file : resolve(loaded.baseDir, file));
    return { key: path(loaded.config.token.key as string), certificate: path(loaded.config.token.certificate as string) };
  }
  return { key: join(keyring.dir, status.source.key), certificate: join(keyring.dir, status.source.certificate) };
}

function listKeys(loaded: LoadedConfig, keyring: LoadedKeyring, nowMs: number, json: boolean): string {
  const view = keyringView(keyring.keys, keyring.settings, nowMs);
  const rows = view.keys.map((status) => ({
    state: status.state,
    kid: status.key.libtrustKid,
    thumbprint: status.key.thumbprint,
    alg: status.key.alg,
    certificate_expires: new Date(status.key.certificate.validTo).toISOString(),
    activates: status.activatesMs === undefined ? null : Number.isFinite(status.activatesMs) ? iso(status.activatesMs) : 'token.key',
    trusted_until: status.trustedUntilMs === undefined ? null : iso(status.trustedUntilMs),
    source: status.source === 'config' ? 'token.key' : 'keyring',
    key_file: filesOf(status, loaded, keyring).key,
    certificate_file: filesOf(status, loaded, keyring).certificate,
  }));
  if (json) return `${JSON.stringify(rows, null, 2)}\n`;
  const table = [['STATE', 'KID (libtrust)', 'THUMBPRINT (RFC 7638)', 'ALG', 'CERT EXPIRES', 'WHEN', 'KEY FILE']];
  view.keys.forEach((status, i) => {
    const row = rows[i] as (typeof rows)[number];
    const file = relative(process.cwd(), row.key_file);
    table.push([row.state, row.kid, row.thumbprint, row.alg, row.certificate_expires.slice(0, 10), when(status), file.startsWith('..') ? row.key_file : file]);
  });
  const widths = (table[0] as string[]).map((_, c) => Math.max(...table.map((r) => (r[c] as string).length)));
  return `${table.map((r) => r.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd()).join('\n')}\n`;
}

async function rotate(opts: KeysOpts & { kind?: KeyKind; validDays: number }): Promise<void> {
  const { loaded, keyring } = await openKeyring(opts);
  const now = new Date();
  const before = keyringView(keyring.keys, keyring.settings, now.getTime());
  const waiting = before.keys.find((k) => k.state === 'staged');
  if (waiting) {
    throw new Error(`key ${waiting.key.thumbprint} is already staged (${when(waiting)}); activate it (keys activate) or remove it (keys remove) first`);
  }
  const kind = opts.kind ?? kindOf(loaded.signingKey);
  const generated = await generateSigningKey({ kind, validDays: opts.validDays, commonName: `${loaded.config.token.issuer} token signer` });
  const entry = await storeGeneratedKey(keyring.dir, generated, now, false);
  const key = signingKeyFromPem(generated.keyPem, generated.certPem);
  const manifest = await readManifest(keyring.dir);
  manifest.keys.push(entry);
  const view = await publish(loaded, keyring, rebuild(keyring, manifest, [{ entry, key }]), manifest, now.getTime());
  const staged = view.keys.find((k) => k.key === key) as KeyStatus;
  console.log(`staged ${key.alg} key ${key.thumbprint} (kid ${key.libtrustKid}), certificate valid until ${key.certificate.validTo}`);
  console.log('Restart the registries (or roll them) so that they read the bundle or JWKS above, then:');
  console.log(
    staged.activatesMs === undefined
      ? `  sts-docker-auth keys activate ${key.thumbprint.slice(0, 8)}`
      : `  nothing: it starts signing at ${iso(staged.activatesMs)} (token.keyring.activation_delay); keys activate makes it sooner`,
  );
}

async function activate(opts: KeysOpts, id: string | undefined): Promise<void> {
  const { loaded, keyring } = await openKeyring(opts);
  const now = new Date();
  const view = keyringView(keyring.keys, keyring.settings, now.getTime());
  let target: KeyStatus;
  if (id === undefined) {
    const staged = view.keys.filter((k) => k.state === 'staged');
    if (staged.length === 0) throw new Error('no key is staged; make one with keys rotate');
    target = staged[staged.length - 1] as KeyStatus;
  } else {
    target = findKey(view.keys, id);
  }
  if (target.state === 'active') throw new Error(`key ${target.key.thumbprint} already signs`);
  if (target.state === 'retired') {
    throw new Error(`key ${target.key.thumbprint} is retired: registries may no longer trust it; make a new one with keys rotate`);
  }
  const manifest = await readManifest(keyring.dir);
  let entry: ManifestEntry;
  if (target.source === 'config') {
    // Rolling back to token.key: the keyring takes a copy, so its history lives in one place.
    const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
    entry = { key: `config-${stamp}.key`, certificate: `config-${stamp}.crt`, created: now.toISOString() };
    const base = loaded.baseDir;
    const path = (file: string) => (isAbsolute(file) ? file : resolve(base, file));
    await copyFile(path(loaded.config.token.key as string), join(keyring.dir, entry.key));
    await copyFile(path(loaded.config.token.certificate as string), join(keyring.dir, entry.certificate));
    manifest.keys.push(entry);
  } else {
    const source = target.source;
    entry = manifest.keys.find((e) => e.key === source.key) as ManifestEntry;
    if (!entry) throw new Error(`keyring.json changed meanwhile; run the command again`);
  }
  entry.activated = now.toISOString();
  const keys = rebuild(keyring, manifest, target.source === 'config' ? [{ entry, key: target.key }] : []).filter(
    (k) => !(target.source === 'config' && k.source === 'config'),
  );
  await publish(loaded, keyring, keys, manifest, now.getTime());
  console.log(`key ${target.key.thumbprint} (kid ${target.key.libtrustKid}) signs from now on; servers that watch ${keyring.dir} follow within a second`);
  console.log(`the key it replaces stays trusted for ${keyring.settings.tokenLifetimeMs / 1000 + 60} s, until its last token expires`);
}

async function remove(opts: KeysOpts & { force?: boolean }, id: string): Promise<void> {
  const { loaded, keyring } = await openKeyring(opts);
  const nowMs = Date.now();
  const target = findKey(keyringView(keyring.keys, keyring.settings, nowMs).keys, id);
  if (target.source === 'config') throw new Error(`key ${target.key.thumbprint} is token.key in ${loaded.source}; take it out of the config instead`);
  if (target.state === 'active') throw new Error(`key ${target.key.thumbprint} signs now: activate another one first`);
  // A stolen key must go at once, whatever that does to the tokens it signed.
  if (target.state === 'retiring' && !opts.force) {
    throw new Error(`key ${target.key.thumbprint} is retiring: tokens it signed are still in use; --force removes it anyway (a stolen key)`);
  }
  await dropEntries(loaded, keyring, [target.source], nowMs);
  console.log(`removed ${target.state} key ${target.key.thumbprint}`);
}

async function prune(opts: KeysOpts): Promise<void> {
  const { loaded, keyring } = await openKeyring(opts);
  const nowMs = Date.now();
  const retired = keyringView(keyring.keys, keyring.settings, nowMs).keys.filter((k) => k.state === 'retired' && k.source !== 'config');
  if (retired.length === 0) {
    console.log('no retired key in the keyring');
    return;
  }
  await dropEntries(loaded, keyring, retired.map((k) => k.source as ManifestEntry), nowMs);
  for (const k of retired) console.log(`removed retired key ${k.key.thumbprint}`);
}

async function dropEntries(loaded: LoadedConfig, keyring: LoadedKeyring, entries: ManifestEntry[], nowMs: number): Promise<void> {
  const manifest = await readManifest(keyring.dir);
  const names = new Set(entries.map((e) => e.key));
  manifest.keys = manifest.keys.filter((e) => !names.has(e.key));
  await publish(loaded, keyring, rebuild(keyring, manifest), manifest, nowMs);
  // The files go last: a server that reads the manifest meanwhile never misses a key it lists.
  for (const entry of entries) await removeKeyFiles(keyring.dir, entry);
}

function days(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 36_500) throw new InvalidArgumentError('the certificate lifetime is a whole number of days from 1 to 36500');
  return n;
}

export function registerKeyCommands(program: Command): void {
  const configOption = () => new Option('-c, --config <file>', 'config file (default: $STS_DATA_DIR/config.yml)');
  const keys = program.command('keys').description('list and rotate the token signing keys (token.keyring)');
  keys
    .command('list')
    .description("show each key's state, kid, thumbprint and certificate expiry")
    .option('--json', 'print JSON')
    .addOption(configOption())
    .action(async (opts: KeysOpts & { json?: boolean }) => {
      const { loaded, keyring } = await openKeyring(opts);
      process.stdout.write(listKeys(loaded, keyring, Date.now(), opts.json === true));
    });
  keys
    .command('rotate')
    .description('create a new key, trusted (bundle.pem, jwks.json) but not signing until activated')
    .addOption(new Option('--kind <kind>', 'key type (default: that of the signing key)').choices(KINDS))
    .option('--valid-days <days>', 'certificate lifetime in days', days, 3650)
    .addOption(configOption())
    .action(async (opts: KeysOpts & { kind?: KeyKind; validDays: number }) => rotate(opts));
  keys
    .command('activate')
    .description('make a staged key sign (default: the newest staged key)')
    .argument('[id]', 'the start of its thumbprint or kid')
    .addOption(configOption())
    .action(async (id: string | undefined, opts: KeysOpts) => activate(opts, id));
  keys
    .command('remove')
    .description('delete a staged or retired key (a retiring one with --force)')
    .argument('<id>', 'the start of its thumbprint or kid')
    .option('--force', 'also a retiring key, whose tokens then fail at registries that read the new bundle (a stolen key)')
    .addOption(configOption())
    .action(async (id: string, opts: KeysOpts & { force?: boolean }) => remove(opts, id));
  keys
    .command('prune')
    .description('delete every retired key (no longer trusted: its tokens have expired)')
    .addOption(configOption())
    .action(async (opts: KeysOpts) => prune(opts));
}
