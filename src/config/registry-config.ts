import { resolve, dirname, isAbsolute, join } from 'node:path';
import type { LoadedConfig } from './load.js';
import { BUNDLE_FILE } from '../token/keyring-files.js';
import { keyringView } from '../token/keyring.js';
import type { SigningKey } from '../token/keys.js';
import { parseListenAddress } from '../server/listen.js';

export interface RegistryConfigOptions {
  /** The token URL clients are sent to; derived from server.public_url or server.addr. */
  realm?: string;
  /** The registry's `service` (the token `aud`). */
  service?: string;
  /** The bundle path as the registry will see it. */
  bundlePath?: string;
  /** The JWKS path as the registry will see it (distribution 3.x). */
  jwksPath?: string;
}

/** The realm clients are sent to: an absolute URL (distribution's client fails on relative ones). */
export function defaultRealm(loaded: LoadedConfig): string {
  const { server } = loaded.config;
  const base = server.public_url
    ? server.public_url.replace(/\/+$/, '')
    : (() => {
        const { host, port } = parseListenAddress(server.addr);
        const shown = host === '::' || host === '0.0.0.0' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
        return `${loaded.tls ? 'https' : 'http'}://${shown}:${port}`;
      })();
  return `${base}${server.path_prefix}/auth`;
}

/**
 * The keys registries must trust now, the signing key first: with a keyring, the staged and
 * retiring keys too (zot reads only the first certificate of a bundle).
 */
export function trustedKeys(loaded: LoadedConfig, nowMs: number = Date.now()): SigningKey[] {
  if (!loaded.keyring) return [loaded.signingKey];
  const { keys, settings } = loaded.keyring;
  return keyringView(keys, settings, nowMs).trusted.map((k) => k.key);
}

export function defaultBundlePath(loaded: LoadedConfig): string {
  // The keys commands keep the keyring's bundle up to date.
  if (loaded.keyring) return join(loaded.keyring.dir, BUNDLE_FILE);
  const { token, server } = loaded.config;
  const file = token.certificate ?? server.certificate ?? 'token.crt';
  const base = loaded.source.startsWith('<') ? process.cwd() : dirname(resolve(loaded.source));
  return isAbsolute(file) ? file : resolve(base, file);
}

function settings(loaded: LoadedConfig, options: RegistryConfigOptions) {
  return {
    realm: options.realm ?? defaultRealm(loaded),
    service: options.service ?? loaded.config.token.services?.[0] ?? 'docker-registry',
    issuer: loaded.config.token.issuer,
    bundle: options.bundlePath ?? defaultBundlePath(loaded),
    algs: [...new Set(trustedKeys(loaded).map((k) => k.alg))].join(', '),
    jwks: options.jwksPath,
  };
}

const q = (s: string) => JSON.stringify(s);

/** The `auth.token` block for distribution 2.8 (`registry:2`). */
export function distribution2Block(loaded: LoadedConfig, options: RegistryConfigOptions = {}): string {
  const s = settings(loaded, options);
  return `auth:
  token:
    realm: ${q(s.realm)}
    service: ${q(s.service)}
    issuer: ${q(s.issuer)}
    rootcertbundle: ${q(s.bundle)}
`;
}

/** The `auth.token` block for distribution 3.x (`registry:3`): pinned algorithms, optional JWKS. */
export function distribution3Block(loaded: LoadedConfig, options: RegistryConfigOptions = {}): string {
  const s = settings(loaded, options);
  // Kid-only libtrust tokens are trusted by 3.x only through a JWKS listing that kid.
  const needsJwks = loaded.jwtHeader === 'libtrust';
  const jwksLine = s.jwks
    ? `    jwks: ${q(s.jwks)}\n`
    : needsJwks
      ? `    jwks: "/etc/distribution/auth/jwks.json"   # required for jwt_header: libtrust; write it with --write-jwks\n`
      : '';
  return `auth:
  token:
    realm: ${q(s.realm)}
    service: ${q(s.service)}
    issuer: ${q(s.issuer)}
    rootcertbundle: ${q(s.bundle)}
${jwksLine}    signingalgorithms: [${s.algs}]
`;
}

/** zot's `http.auth.bearer` (it ignores kid, x5c, iss and aud: one key per zot instance). */
export function zotBlock(loaded: LoadedConfig, options: RegistryConfigOptions = {}): string {
  const s = settings(loaded, options);
  return `${JSON.stringify({ http: { auth: { bearer: { realm: s.realm, service: s.service, cert: s.bundle } } } }, null, 2)}\n`;
}
