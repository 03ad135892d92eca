import { allowInsecureRequests, type Configuration } from 'openid-client';
import { isLoopbackHost, type SsoProviderConfig } from './config.js';
import type { Claims } from './claims.js';

/** What one browser sign-in carries from its start to its callback (in a signed cookie). */
export interface PendingLogin {
  provider: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  /** Epoch ms; a callback after this is refused. */
  expiresAt: number;
}

/** The person the provider vouched for. */
export interface ProviderUser {
  /** The provider's stable, never reassigned id for the person (OIDC `sub`, GitHub's numeric id). */
  subject: string;
  claims: Claims;
}

/**
 * One configured provider: it builds the authorization URL for a sign-in, and turns the callback
 * into a user (code exchange with PKCE, state and, for OpenID Connect, nonce and ID token checks).
 * Every request to the provider has the configured timeout.
 */
export interface SsoProvider {
  readonly id: string;
  readonly displayName: string;
  readonly config: SsoProviderConfig;
  authorizationUrl(pending: PendingLogin): Promise<URL>;
  /** `callbackUrl` is the configured redirect_url with the callback's query string. */
  complete(callbackUrl: URL, pending: PendingLogin): Promise<ProviderUser>;
}

/** Plain HTTP is allowed to loopback providers only (development and tests); the schema checks the same. */
export function allowHttpToLoopback(configuration: Configuration, url: string): void {
  const parsed = new URL(url);
  if (parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname)) allowInsecureRequests(configuration);
}

export interface ProviderOptions {
  secret: string;
  timeoutSeconds: number;
  displayName: string;
}
