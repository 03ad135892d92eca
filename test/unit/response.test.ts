import { describe, expect, it } from 'vitest';
import { isoTime } from '../../src/protocol/iso-time.js';
import { tokenResponse, tokenResponseJson, type TokenResponseOptions } from '../../src/protocol/response.js';

// A compact JWS as the Signer makes it: base64url segments joined by dots.
const TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLV8';
const base: TokenResponseOptions = { token: TOKEN, expiresIn: 300, issuedAtMs: Date.UTC(2026, 10, 30, 12, 0, 0, 7), method: 'GET', granted: [] };

describe('the token response written as a string', () => {
  const cases: Array<[string, TokenResponseOptions]> = [
    ['GET', base],
    ['POST with granted scopes', { ...base, method: 'POST', granted: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }, { type: 'repository', name: 'x', actions: [] }] }],
    ['POST with nothing granted', { ...base, method: 'POST' }],
    ['a refresh token', { ...base, method: 'POST', refreshToken: 'stsrt_abc"\\\u2028' }],
    ['a fractional lifetime', { ...base, expiresIn: 300.9 }],
  ];
  it.each(cases)('is JSON.stringify of the body, byte for byte: %s', (_name, options) => {
    expect(tokenResponseJson(options)).toBe(JSON.stringify(tokenResponse(options)));
  });
});

describe('isoTime', () => {
  it.each([0, 1, 999, 1000, 1.7, -1, -1001, Date.UTC(2026, 10, 30, 23, 59, 59, 999), 253402300799999, 253402300800000, -62167219200001, 1e15])(
    'writes %s as Date does',
    (ms) => {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    },
  );

  it('stays right across seconds, in any order', () => {
    const start = Date.UTC(2026, 10, 30, 12, 0, 0, 0);
    for (const ms of [start + 999, start + 1000, start + 5, start + 123_456, start - 1, start + 1000]) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });
});
