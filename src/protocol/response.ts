import { formatScopes, type ResourceScope } from './scope.js';
import { isoTime } from './iso-time.js';

export interface TokenResponseBody {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  scope?: string;
  refresh_token?: string;
}

/**
 * The body every client parses (protocol.md §1.3): the token under both names because clients
 * prefer different ones, an integer `expires_in`, an RFC 3339 `issued_at`, and on POST the
 * granted scopes.
 */
export interface TokenResponseOptions {
  token: string;
  expiresIn: number;
  issuedAtMs: number;
  method: 'GET' | 'POST';
  granted: readonly ResourceScope[];
  refreshToken?: string | undefined;
}

export function tokenResponse(options: TokenResponseOptions): TokenResponseBody {
  const body: TokenResponseBody = {
    token: options.token,
    access_token: options.token,
    expires_in: Math.floor(options.expiresIn),
    issued_at: isoTime(options.issuedAtMs),
  };
  if (options.method === 'POST') body.scope = formatScopes(options.granted);
  if (options.refreshToken) body.refresh_token = options.refreshToken;
  return body;
}

/**
 * `JSON.stringify(tokenResponse(options))`, written directly: the same keys in the same order,
 * sent as it is. The token appears twice in a 2.6 KB body (x5c), and going through an object and
 * the serializer cost about 4 us of the ~70 us a token request spends in our own code
 * (performance.md). The token is the Signer's compact JWS, base64url segments joined by dots,
 * which JSON never escapes; the rare fields (POST's scope, a refresh token) go through
 * JSON.stringify. test/unit/response.test.ts checks the result against JSON.stringify.
 */
export function tokenResponseJson(options: TokenResponseOptions): string {
  const quoted = `"${options.token}"`;
  let json = `{"token":${quoted},"access_token":${quoted},"expires_in":${Math.floor(options.expiresIn)},"issued_at":"${isoTime(options.issuedAtMs)}"`;
  if (options.method === 'POST') json += `,"scope":${JSON.stringify(formatScopes(options.granted))}`;
  if (options.refreshToken) json += `,"refresh_token":${JSON.stringify(options.refreshToken)}`;
  return `${json}}`;
}

export interface ErrorBody {
  errors: Array<{ code: string; message: string }>;
  details: string;
  error?: string;
  error_description?: string;
}

/**
 * Error bodies every client tolerates (protocol.md §1.5): the errcode list that containers/image
 * and oras read, the legacy `details` that docker reads first, and the RFC 6749 fields on POST.
 */
export function errorBody(code: string, message: string, oauthError?: string): ErrorBody {
  const body: ErrorBody = { errors: [{ code, message }], details: message };
  if (oauthError) {
    body.error = oauthError;
    body.error_description = message;
  }
  return body;
}
