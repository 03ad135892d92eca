import { AuthorizationResponseError, ClientError, ResponseBodyError, WWWAuthenticateChallengeError } from 'openid-client';
import { BackendUnavailableError } from '../authn/errors.js';

/**
 * What can go wrong on the sign-in pages, each with the status the page is answered with:
 * - 400 the browser's request does not hold together (no or forged state, a used link);
 * - 403 the person is known to the provider but may not sign in here (restrictions, a name taken);
 * - 404 no such provider;
 * - 502 the provider answered, but not as configured (wrong client secret, unknown client);
 * - 503 the provider did not answer in time or failed; try again later.
 */
export type SsoStatus = 400 | 403 | 404 | 502 | 503;

/** A sign-in failure: `message` is shown on the page, `detail` goes to the log only. */
export class SsoError extends Error {
  override name = 'SsoError';
  constructor(
    readonly status: SsoStatus,
    message: string,
    readonly detail?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

function statusOfResponse(value: unknown): number | undefined {
  return value instanceof Response ? value.status : undefined;
}

/**
 * Sorts what openid-client (or our own GitHub calls) threw into the page's statuses. The messages
 * shown name no code, token or secret; the detail for the log keeps the provider's error codes.
 */
export function providerFailure(err: unknown, provider: string): SsoError {
  if (err instanceof SsoError) return err;
  if (err instanceof BackendUnavailableError) {
    return new SsoError(503, `The sign-in provider ${provider} is unavailable; try again shortly.`, err.message, { cause: err });
  }
  // fetch() failing: refused connection, DNS, TLS; openid-client passes these through as TypeError.
  if (err instanceof TypeError) {
    return new SsoError(503, `The sign-in provider ${provider} cannot be reached; try again shortly.`, `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}`, { cause: err });
  }
  if (err instanceof AuthorizationResponseError) {
    const status = err.error === 'access_denied' ? 403 : 400;
    return new SsoError(status, `The provider did not sign you in (${err.error}).`, `authorization response error ${err.error}`, { cause: err });
  }
  if (err instanceof ResponseBodyError) {
    if (err.status >= 500) return new SsoError(503, `The sign-in provider ${provider} failed; try again shortly.`, `HTTP ${err.status} ${err.error}`, { cause: err });
    // invalid_grant: the code is used, expired, or its PKCE verifier does not match.
    if (err.error === 'invalid_grant') return new SsoError(400, 'The provider refused this sign-in link; start again.', `token endpoint: ${err.error}`, { cause: err });
    return new SsoError(502, `The sign-in provider ${provider} refused this server's client configuration; tell the administrator.`, `token endpoint: HTTP ${err.status} ${err.error}`, { cause: err });
  }
  if (err instanceof WWWAuthenticateChallengeError) {
    return new SsoError(502, `The sign-in provider ${provider} refused this server's request; tell the administrator.`, err.message, { cause: err });
  }
  if (err instanceof ClientError) {
    switch (err.code) {
      case 'OAUTH_TIMEOUT':
      case 'OAUTH_ABORT':
        return new SsoError(503, `The sign-in provider ${provider} did not answer in time; try again shortly.`, err.message, { cause: err });
      case 'OAUTH_RESPONSE_IS_NOT_CONFORM': {
        const status = statusOfResponse(err.cause);
        if (status !== undefined && status >= 500) {
          return new SsoError(503, `The sign-in provider ${provider} failed; try again shortly.`, `${err.message} (HTTP ${status})`, { cause: err });
        }
        break;
      }
      // The response does not match what this browser started: wrong state, nonce, issuer, or an
      // ID token that is expired or not yet valid.
      case 'OAUTH_JWT_CLAIM_COMPARISON_FAILED':
      case 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED':
      case 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED':
      case 'OAUTH_INVALID_RESPONSE':
        return new SsoError(400, 'The sign-in response does not match this sign-in; start again.', `${err.message}: ${err.cause instanceof Error ? err.cause.message : ''}`, { cause: err });
    }
    return new SsoError(502, `The sign-in provider ${provider} answered in a way this server cannot use; tell the administrator.`, `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ''}`, { cause: err });
  }
  return new SsoError(502, `Signing in with ${provider} failed; tell the administrator.`, err instanceof Error ? err.message : String(err), { cause: err });
}
