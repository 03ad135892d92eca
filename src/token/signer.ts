import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { SigningAlgorithm, SigningKey } from './keys.js';
import type { TokenClaims } from './claims.js';

/**
 * How a verifier finds our key (protocol.md §3.3):
 * - `x5c`: the signing certificate in `x5c` plus the libtrust `kid`; works with distribution 2.8,
 *   3.x with a `rootcertbundle`, and zot. The default.
 * - `libtrust`: only the libtrust `kid`; for 2.8, and for 3.x whose `jwks` lists that kid.
 * - `thumbprint`: only the RFC 7638 `kid`; for 3.1+ bundles (docker_auth's `disable_legacy_key_id`).
 */
export type HeaderMode = 'x5c' | 'libtrust' | 'thumbprint';

const HASH: Record<SigningAlgorithm, string> = { RS256: 'sha256', ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' };

export interface JwtHeader {
  typ: 'JWT';
  alg: SigningAlgorithm;
  kid: string;
  x5c?: string[];
}

export function buildHeader(key: SigningKey, mode: HeaderMode): JwtHeader {
  switch (mode) {
    case 'x5c':
      return { typ: 'JWT', alg: key.alg, kid: key.libtrustKid, x5c: [key.certificateDer] };
    case 'libtrust':
      return { typ: 'JWT', alg: key.alg, kid: key.libtrustKid };
    case 'thumbprint':
      return { typ: 'JWT', alg: key.alg, kid: key.thumbprint };
  }
}

/**
 * Signs compact JWS with node:crypto directly: jose measured 3-4x slower for ES256 here. The
 * header is encoded once per key. EC signatures are raw r||s (`ieee-p1363`): distribution rejects
 * DER. RSA signing (~0.35 ms) runs in the thread pool so it does not stall the event loop; EC
 * signing (~35 us) is cheaper than the hop to the pool.
 */
export class Signer {
  readonly header: JwtHeader;
  private readonly encodedHeader: string;
  private readonly hash: string;
  private readonly privateKey: KeyObject;
  private readonly isEc: boolean;

  constructor(
    readonly key: SigningKey,
    readonly mode: HeaderMode,
  ) {
    this.header = buildHeader(key, mode);
    this.encodedHeader = Buffer.from(JSON.stringify(this.header)).toString('base64url');
    this.hash = HASH[key.alg];
    this.privateKey = key.privateKey;
    this.isEc = key.alg !== 'RS256';
  }

  async sign(claims: TokenClaims): Promise<string> {
    const signingInput = `${this.encodedHeader}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    // base64url is ASCII: latin1 copies it byte for byte, without UTF-8 encoding.
    const data = Buffer.from(signingInput, 'latin1');
    if (this.isEc) {
      const signature = cryptoSign(this.hash, data, { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
      return `${signingInput}.${signature.toString('base64url')}`;
    }
    const signature = await new Promise<Buffer>((resolve, reject) => {
      cryptoSign(this.hash, data, this.privateKey, (err, sig) => (err ? reject(err) : resolve(sig)));
    });
    return `${signingInput}.${signature.toString('base64url')}`;
  }
}
