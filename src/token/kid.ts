import { createHash, type KeyObject } from 'node:crypto';
import { base32NoPad } from '../security/base32.js';

/**
 * The libtrust key ID that distribution 2.8 matches against its `rootcertbundle` (protocol.md
 * §3.3): SHA-256 of the DER SubjectPublicKeyInfo (the key, not the certificate), first 240 bits,
 * base32 without padding, in twelve groups of four joined by `:`.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  return (base32NoPad(digest).match(/.{4}/g) as string[]).join(':');
}
