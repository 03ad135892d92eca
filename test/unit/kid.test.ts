import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { libtrustKeyId } from '../../src/token/kid.js';
import { hasLeadingZeroCoordinate, jwkThumbprint } from '../../src/token/thumbprint.js';
import { calculateJwkThumbprint, exportJWK } from 'jose';

// The example key of distribution's jwt.md, and the kid printed beside it (protocol.md §3.3).
const SPEC_KEY = createPublicKey({
  key: {
    kty: 'EC',
    crv: 'P-256',
    x: 'm7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q',
    y: 'dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc',
  },
  format: 'jwk',
});

describe('libtrust key id', () => {
  it('reproduces the test vector of the token spec', () => {
    expect(libtrustKeyId(SPEC_KEY)).toBe('PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6');
  });

  it('has twelve groups of four base32 characters for RSA keys too', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(libtrustKeyId(publicKey)).toMatch(/^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$/);
  });
});

describe('RFC 7638 thumbprint', () => {
  it('matches the value given for the spec key', () => {
    expect(jwkThumbprint(SPEC_KEY)).toBe('8qjioA3ZA7ti2JIE7c-U8smBFuZolQZvhSHDPU3hhB8');
  });

  it.each(['rsa', 'ec'] as const)('agrees with jose for a fresh %s key', async (type) => {
    const { publicKey } =
      type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(jwkThumbprint(publicKey)).toBe(await calculateJwkThumbprint(await exportJWK(publicKey)));
  });

  it('flags EC keys whose coordinates start with a zero byte', () => {
    expect(hasLeadingZeroCoordinate(SPEC_KEY)).toBe(false);
    let found = false;
    for (let i = 0; i < 2000 && !found; i++) {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const jwk = publicKey.export({ format: 'jwk' });
      const zero = Buffer.from(jwk.x as string, 'base64url')[0] === 0 || Buffer.from(jwk.y as string, 'base64url')[0] === 0;
      expect(hasLeadingZeroCoordinate(publicKey)).toBe(zero);
      found = zero;
    }
    expect(found).toBe(true);
  });
});
