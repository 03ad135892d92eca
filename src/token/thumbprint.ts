import { createHash, type KeyObject } from 'node:crypto';

/**
 * The RFC 7638 JWK thumbprint (SHA-256, base64url): the kid distribution 3.x gives the keys of
 * its `rootcertbundle`. Members in lexicographic order, as the RFC requires.
 */
export function jwkThumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  let canonical: string;
  if (jwk.kty === 'RSA') canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  else if (jwk.kty === 'EC') canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  else throw new Error(`unsupported key type ${String(jwk.kty)}`);
  return createHash('sha256').update(canonical).digest('base64url');
}

/**
 * distribution 3.1 builds EC thumbprints from coordinates with leading zero bytes stripped, so for
 * such keys its kid differs from RFC 7638 (protocol.md §3.3). Key generation avoids them.
 */
export function hasLeadingZeroCoordinate(publicKey: KeyObject): boolean {
  const jwk = publicKey.export({ format: 'jwk' });
  if (jwk.kty !== 'EC') return false;
  const x = Buffer.from(jwk.x ?? '', 'base64url');
  const y = Buffer.from(jwk.y ?? '', 'base64url');
  return x[0] === 0 || y[0] === 0;
}
