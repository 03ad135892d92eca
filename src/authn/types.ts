/**
 * The authentication contract. A backend answers one of three ways:
 * - `identity`: it knows the account and the secret is right;
 * - `no-match`: it does not know the account; the chain asks the next backend;
 * - `denied`: it knows the account and the secret is wrong (or the account may not log in).
 *   The chain stops there: a guessed password must never fall through to a backend that might
 *   accept it.
 */
import type { ScopeLimit } from '../authz/scope-limit.js';

export type Labels = Readonly<Record<string, readonly string[]>>;

export interface Identity {
  /** The account name; `""` for the anonymous caller. */
  account: string;
  labels: Labels;
  /** Which backend vouched for it. */
  backend: string;
  anonymous: boolean;
  /**
   * How the caller proved it: a password, one of our access tokens, a refresh token, or a trusted
   * issuer's ID token (`workload`: never traded for a refresh token).
   */
  via?: 'password' | 'access_token' | 'refresh_token' | 'workload';
  /** Access tokens grant at most their own scopes, whatever the owner's rules allow. */
  scopeLimit?: ScopeLimit;
  /** The refresh token presented, returned unchanged on a refresh grant (never rotated). */
  refreshToken?: string;
  /** The access token used, for audit. */
  tokenId?: string;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface AuthnContext {
  ip: string | undefined;
  service: string;
}

export type AuthnResult =
  | { outcome: 'identity'; identity: Identity }
  | { outcome: 'no-match' }
  | { outcome: 'denied'; reason: string };

export interface Authenticator {
  readonly name: string;
  /** `credentials` is null for an anonymous request (no Authorization header, no form credentials). */
  authenticate(credentials: Credentials | null, context: AuthnContext): Promise<AuthnResult>;
  /**
   * Whether the account exists and may sign in now, without a password: how tokens issued
   * earlier (access and refresh tokens) are checked against a deleted or disabled owner.
   */
  lookup?(account: string): Promise<AuthnResult>;
  /**
   * For `/readyz`: resolves when the backend's upstream answers (an LDAP directory), throws when
   * it does not. Bounded by the backend's own timeout; backends without an upstream leave it out.
   */
  ready?(): Promise<void>;
}

export const NO_MATCH: AuthnResult = Object.freeze({ outcome: 'no-match' });
