import { generateKeyPairSync, webcrypto, createPublicKey, type KeyObject } from 'node:crypto';
import { hasLeadingZeroCoordinate } from './thumbprint.js';

export type KeyKind = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

export interface GeneratedKey {
  keyPem: string;
  certPem: string;
}

export interface GenerateOptions {
  kind?: KeyKind;
  commonName?: string;
  /** Certificate lifetime; the registry enforces it on the x5c path, so make it long and renew early. */
  validDays?: number;
  now?: Date;
}

function generate(kind: KeyKind): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (kind) {
    case 'ec-p256':
    case 'ec-p384': {
      const namedCurve = kind === 'ec-p256' ? 'P-256' : 'P-384';
      // distribution 3.1 strips leading zero bytes from EC coordinates when computing kids, so its
      // thumbprint differs from RFC 7638 for about 1 key in 128; draw again rather than ship one.
      for (;;) {
        const pair = generateKeyPairSync('ec', { namedCurve });
        if (!hasLeadingZeroCoordinate(pair.publicKey)) return pair;
      }
    }
    default: {
      const modulusLength = Number(kind.slice(4));
      return generateKeyPairSync('rsa', { modulusLength });
    }
  }
}

/**
 * Creates a signing key and a self-signed certificate for it (the registry's `rootcertbundle`).
 * The certificate library is loaded only here, so that embedding the server costs nothing
 * unless keys are generated.
 */
export async function generateSigningKey(options: GenerateOptions = {}): Promise<GeneratedKey> {
  const kind = options.kind ?? 'ec-p256';
  const { privateKey } = generate(kind);
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as never);

  const isRsa = kind.startsWith('rsa');
  const algorithm = isRsa
    ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
    : { name: 'ECDSA', namedCurve: kind === 'ec-p256' ? 'P-256' : 'P-384', hash: kind === 'ec-p256' ? 'SHA-256' : 'SHA-384' };
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const keys = {
    privateKey: await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', spki, algorithm, true, ['verify']),
  };
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - 60 * 60 * 1000); // tolerate clock skew on the registry
  const notAfter = new Date(now.getTime() + (options.validDays ?? 3650) * 24 * 60 * 60 * 1000);
  const serial = Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)));
  serial[0] = (serial[0] ?? 0) & 0x7f; // a positive serial number
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: `CN=${(options.commonName ?? 'sts-docker-auth token signer').replace(/[,+="<>#;\\]/g, ' ')}`,
    notBefore,
    notAfter,
    signingAlgorithm: algorithm,
    keys: keys as never,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certPem: cert.toString('pem') + '\n',
  };
}
