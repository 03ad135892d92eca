import { X509Certificate } from 'node:crypto';
import { compactVerify, importX509 } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClaims } from '../../src/token/claims.js';
import { signingKeyFromPem, KeyError } from '../../src/token/keys.js';
import { Signer, type HeaderMode } from '../../src/token/signer.js';
import { buildJwks } from '../../src/token/jwks.js';
import { generateSigningKey, type KeyKind } from '../../src/token/generate.js';
import { makeKeyDir, decodeJwt, type KeyDir } from '../helpers/fixtures.js';
import { generateKeyPairSync } from 'node:crypto';

const NOW = Date.UTC(2026, 10, 30, 12, 0, 0, 500);

describe.each([
  ['ec-p256', 'ES256', 64],
  ['rsa-2048', 'RS256', 256],
] as const)('tokens signed with %s', (kind: KeyKind, alg, signatureBytes) => {
  let keys: KeyDir;
  beforeAll(async () => {
    keys = await makeKeyDir(kind);
  });
  afterAll(() => keys.cleanup());

  const claims = () =>
    buildClaims({
      issuer: 'iss',
      subject: 'alice',
      audience: 'svc',
      expiresIn: 300,
      nowMs: NOW,
      access: [
        { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
        { type: 'repository', class: 'plugin', name: 'p', actions: [] },
      ],
    });

  it(`picks ${alg} from the key`, () => {
    expect(signingKeyFromPem(keys.keyPem, keys.certPem).alg).toBe(alg);
  });

  it.each(['x5c', 'libtrust', 'thumbprint'] as HeaderMode[])('has the %s header shape and verifies with the certificate', async (mode) => {
    const key = signingKeyFromPem(keys.keyPem, keys.certPem);
    const token = await new Signer(key, mode).sign(claims());
    expect(token).not.toContain('=');
    const { header, signature } = decodeJwt(token);
    expect(header.typ).toBe('JWT');
    expect(header.alg).toBe(alg);
    if (mode === 'x5c') {
      expect(header.kid).toBe(key.libtrustKid);
      expect(header.x5c).toEqual([new X509Certificate(keys.certPem).raw.toString('base64')]);
    } else {
      expect(header.x5c).toBeUndefined();
      expect(header.kid).toBe(mode === 'libtrust' ? key.libtrustKid : key.thumbprint);
    }
    // ES signatures are raw r||s (distribution rejects DER).
    expect(signature.length).toBe(signatureBytes);
    // Verification pins the algorithm: a token is never verified by the alg it names.
    const verified = await compactVerify(token, await importX509(keys.certPem, alg), { algorithms: [alg] });
    expect(JSON.parse(Buffer.from(verified.payload).toString()).sub).toBe('alice');
  });
});

describe('claims', () => {
  const c = buildClaims({
    issuer: 'iss',
    subject: '',
    audience: 'svc',
    expiresIn: 300,
    nowMs: NOW,
    access: [{ type: 'repository', class: 'plugin', name: 'p', actions: ['pull'] }],
  });

  it('uses integer times, nbf and iat backdated for zero-leeway verifiers', () => {
    const now = Math.floor(NOW / 1000);
    expect(c.exp).toBe(now + 300);
    expect(c.iat).toBe(now - 5);
    expect(c.nbf).toBe(now - 10);
    for (const t of [c.exp, c.iat, c.nbf]) expect(Number.isInteger(t)).toBe(true);
  });

  it('has a string audience, the anonymous subject "" and the class in its own field', () => {
    expect(c.aud).toBe('svc');
    expect(c.sub).toBe('');
    expect(c.access).toEqual([{ type: 'repository', class: 'plugin', name: 'p', actions: ['pull'] }]);
  });

  it('has a unique jti', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => buildClaims({ issuer: 'i', subject: 's', audience: 'a', expiresIn: 60, nowMs: NOW, access: [] }).jti));
    expect(ids.size).toBe(1000);
  });
});

describe('signing keys', () => {
  it('refuses RSA keys under 2048 bits', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => signingKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'x')).toThrow(KeyError);
  });

  it('refuses a certificate that belongs to another key', async () => {
    const a = await generateSigningKey();
    const b = await generateSigningKey();
    expect(() => signingKeyFromPem(a.keyPem, b.certPem)).toThrow(/does not belong/);
  });

  it('refuses Ed25519, which distribution 2.8 cannot verify', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    expect(() => signingKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'x')).toThrow();
  });

  it('generates a self-signed, non-CA certificate valid for years', async () => {
    const g = await generateSigningKey({ kind: 'ec-p256' });
    const cert = new X509Certificate(g.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(new Date(cert.validTo).getTime() - Date.now()).toBeGreaterThan(9 * 365 * 86400e3);
  });

  it('builds a JWKS whose kid is the one the tokens carry', async () => {
    const keys = await makeKeyDir('ec-p256');
    const key = signingKeyFromPem(keys.keyPem, keys.certPem);
    expect(buildJwks([key], 'libtrust').keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', kid: key.libtrustKid, alg: 'ES256' });
    expect(buildJwks([key], 'thumbprint').keys[0]?.kid).toBe(key.thumbprint);
    expect(buildJwks([key], 'x5c').keys[0]).not.toHaveProperty('d');
    await keys.cleanup();
  });
});
