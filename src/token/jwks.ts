import type { SigningKey } from './keys.js';
import type { HeaderMode } from './signer.js';

export interface Jwks {
  keys: Array<Record<string, unknown>>;
}

/**
 * A JWKS for distribution 3.x's `jwks` option. Each key's `kid` is what our tokens carry in the
 * chosen mode; distribution takes it verbatim, so the libtrust form works there too.
 */
export function buildJwks(keys: readonly SigningKey[], mode: HeaderMode): Jwks {
  return {
    keys: keys.map((key) => {
      const jwk = key.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
      return { ...jwk, kid: mode === 'thumbprint' ? key.thumbprint : key.libtrustKid, alg: key.alg, use: 'sig' };
    }),
  };
}
