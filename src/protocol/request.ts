import { TokenError, badRequest } from './errors.js';
import { parseScopes, type ResourceScope } from './scope.js';
import type { Credentials } from '../authn/types.js';

export type GrantType = 'password' | 'refresh_token' | 'none';

/** A token request after parsing: what every later step sees. Nothing here is trusted yet. */
export interface TokenRequest {
  method: 'GET' | 'POST';
  service: string;
  scopes: ResourceScope[];
  /** The raw scope strings, for audit. */
  requested: string[];
  grantType: GrantType;
  credentials: Credentials | null;
  /** `offline_token=true` (GET) or `access_type=offline` (POST): a refresh token was asked for. */
  offline: boolean;
  clientId: string | undefined;
  /** Client-supplied hint (docker, containers/image, regclient); never identity. */
  account: string | undefined;
}

export interface RawTokenRequest {
  method: 'GET' | 'POST';
  query: URLSearchParams;
  /** The form body of a POST. */
  form?: URLSearchParams;
  authorization?: string | undefined;
}

const MAX_FIELD = 1024;
const MAX_SECRET = 4096;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function single(params: URLSearchParams[], name: string, max = MAX_FIELD): string | undefined {
  let value: string | undefined;
  for (const p of params) {
    for (const v of p.getAll(name)) {
      if (value !== undefined && v !== value) throw badRequest(`parameter ${name} is given twice with different values`);
      value = v;
    }
  }
  if (value !== undefined && value.length > max) throw badRequest(`parameter ${name} is too long`);
  return value;
}

function boolParam(value: string | undefined): boolean {
  return value !== undefined && /^(1|true|yes)$/i.test(value);
}

/** Basic credentials: the password may contain `:`, so split at the first colon only. */
export function parseBasic(header: string): Credentials {
  const space = header.indexOf(' ');
  const scheme = space < 0 ? header : header.slice(0, space);
  if (scheme.toLowerCase() !== 'basic') {
    throw badRequest('unsupported Authorization scheme: the token endpoint takes Basic credentials');
  }
  const encoded = header.slice(space + 1).trim();
  if (encoded.length > MAX_SECRET * 2 || !/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) {
    throw badRequest('malformed Basic credentials');
  }
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw badRequest('malformed Basic credentials: no ":" between user and password');
  return checkCredentials(decoded.slice(0, colon), decoded.slice(colon + 1));
}

function checkCredentials(username: string, password: string): Credentials {
  if (username.length > 255 || CONTROL.test(username)) throw badRequest('malformed user name');
  if (password.length > MAX_SECRET) throw badRequest('password is too long');
  return { username, password };
}

/**
 * Parses a GET (query) or POST (form, the OAuth2 variant of protocol.md §1.4) token request.
 * Throws TokenError (400) for anything malformed; never decides who the caller is.
 */
export function parseTokenRequest(raw: RawTokenRequest): TokenRequest {
  const sources = raw.method === 'POST' && raw.form ? [raw.form, raw.query] : [raw.query];
  const service = single(sources, 'service');
  if (service === undefined || service === '') throw badRequest('parameter service is required');
  if (CONTROL.test(service)) throw badRequest('malformed service');

  const requested = sources.flatMap((p) => p.getAll('scope'));
  if (requested.reduce((n, s) => n + s.length, 0) > 64 * 1024) throw badRequest('scope parameters are too long');
  const scopes = parseScopes(requested);

  const clientId = single(sources, 'client_id');
  const account = single(sources, 'account');
  let credentials = raw.authorization ? parseBasic(raw.authorization) : null;
  let grantType: GrantType = 'none';
  let offline: boolean;

  if (raw.method === 'POST') {
    const grant = single(sources, 'grant_type');
    offline = single(sources, 'access_type') === 'offline';
    if (grant === undefined || grant === 'password') {
      // docker_auth reads form credentials on any POST; the password grant requires them.
      const username = single(sources, 'username');
      const password = single(sources, 'password', MAX_SECRET);
      if (username !== undefined || password !== undefined) {
        if (username === undefined || password === undefined) throw badRequest('username and password go together');
        credentials = checkCredentials(username, password);
      }
      if (grant === 'password') {
        grantType = 'password';
        if (!credentials) throw badRequest('grant_type=password needs username and password');
      }
    } else if (grant === 'refresh_token') {
      grantType = 'refresh_token';
      const refreshToken = single(sources, 'refresh_token', MAX_SECRET);
      if (!refreshToken) throw badRequest('grant_type=refresh_token needs refresh_token');
      // The refresh token travels as the password; the backend that issued it recognises its prefix.
      credentials = checkCredentials(single(sources, 'username') ?? '', refreshToken);
    } else {
      throw new TokenError('UNSUPPORTED_GRANT_TYPE', `unsupported grant_type ${JSON.stringify(grant.slice(0, 50))}`);
    }
  } else {
    offline = boolParam(single(sources, 'offline_token'));
  }

  // An empty user and password is how some clients say "anonymous".
  if (credentials && credentials.username === '' && credentials.password === '') credentials = null;
  if (account !== undefined && account !== '' && credentials && account !== credentials.username) {
    throw badRequest('account does not match the user name in the credentials');
  }
  return { method: raw.method, service, scopes, requested, grantType, credentials, offline, clientId, account };
}
