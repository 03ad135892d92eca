import { describe, expect, it } from 'vitest';
import { buildClaims, newJti } from '../../src/token/claims.js';

describe('jti from the pooled random buffer', () => {
  it('hands out 128-bit base64url values, never the same twice, across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const jti = newJti();
      expect(jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
      seen.add(jti);
    }
    expect(seen.size).toBe(2000);
  });

  it('gives every token its own jti', () => {
    const input = { issuer: 'i', subject: 's', audience: 'a', access: [], expiresIn: 300, nowMs: 0 };
    expect(buildClaims(input).jti).not.toBe(buildClaims(input).jti);
  });
});
