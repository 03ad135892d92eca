import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { libtrustKeyId } from './kid.js';
import { jwkThumbprint } from './thumbprint.js';

export type SigningAlgorithm = 'RS256' | 'ES256' | 'ES384' | 'ES512';

/** A private key, the certificate that carries its public half, and everything derived from them. */
export interface SigningKey {
  alg: SigningAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  certificate: X509Certificate;
  certificatePem: string;
  /** Standard base64 DER, for the `x5c` header. */
  certificateDer: string;
  libtrustKid: string;
  thumbprint: string;
}

export class KeyError extends Error {
  override name = 'KeyError';
}

const CURVE_ALG: Record<string, SigningAlgorithm> = {
  'prime256v1': 'ES256',
  'P-256': 'ES256',
  'secp384r1': 'ES384',
  'P-384': 'ES384',
  'secp521r1': 'ES512',
  'P-521': 'ES512',
};

/** The algorithm follows the key: RSA (2048 bits or more) signs RS256, EC curves sign ES256/384/512. */
export function algorithmFor(key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new KeyError(`RSA key has ${bits} bits; at least 2048 are required`);
    return 'RS256';
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
    const alg = CURVE_ALG[curve];
    if (!alg) throw new KeyError(`EC curve ${curve} is not supported; use P-256, P-384 or P-521`);
    return alg;
  }
  throw new KeyError(
    `key type ${String(key.asymmetricKeyType)} is not supported; distribution 2.8 verifies only RSA and EC keys`,
  );
}

/** Builds a signing key from PEM text; throws KeyError with a readable reason. */
export function signingKeyFromPem(keyPem: string, certPem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (err) {
    throw new KeyError(`cannot read the private key: ${(err as Error).message}`);
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(certPem);
  } catch (err) {
    throw new KeyError(`cannot read the certificate: ${(err as Error).message}`);
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new KeyError('the certificate does not belong to the private key');
  }
  const alg = algorithmFor(privateKey);
  const publicKey = createPublicKey(privateKey);
  const firstPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(certPem)?.[0] ?? certPem;
  return {
    alg,
    privateKey,
    publicKey,
    certificate,
    certificatePem: `${firstPem.trim()}\n`,
    certificateDer: certificate.raw.toString('base64'),
    libtrustKid: libtrustKeyId(publicKey),
    thumbprint: jwkThumbprint(publicKey),
  };
}
