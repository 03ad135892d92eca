import { z } from 'zod';
import type { PendingLogin } from './provider.js';

/**
 * The two cookies of the login pages. Both are signed (HMAC-SHA256 with the session secret, by
 * @fastify/cookie), HttpOnly, SameSite=Lax (sent on the provider's redirect back, a top-level GET,
 * but not on a cross-site POST), and Secure when the redirect URL is https. Their values are
 * base64url JSON: signed, not encrypted, so they hold nothing the browser's owner may not see.
 */

/** The sign-in in progress: state, nonce and PKCE verifier, for ten minutes. */
export const STATE_COOKIE = 'sts_sso_state';
export const STATE_LIFETIME_SECONDS = 600;

/** Who signed in on this browser, and the token that makes the logout form CSRF-safe. */
export const SESSION_COOKIE = 'sts_session';
export const SESSION_LIFETIME_SECONDS = 8 * 3600;

export interface Session {
  account: string;
  provider: string;
  /** Echoed by the logout form. */
  csrf: string;
  /** Epoch ms. */
  expiresAt: number;
}

const pendingSchema = z.strictObject({
  provider: z.string().min(1).max(64),
  state: z.string().min(16).max(128),
  nonce: z.string().min(16).max(128),
  codeVerifier: z.string().min(43).max(128),
  expiresAt: z.number(),
});

const sessionSchema = z.strictObject({
  account: z.string().min(1).max(300),
  provider: z.string().min(1).max(64),
  csrf: z.string().min(16).max(128),
  expiresAt: z.number(),
});

export function encodeCookieValue(value: PendingLogin | Session): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function decode<T>(schema: z.ZodType<T>, text: string): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The pending sign-in in an (already verified) cookie value, or undefined when it is malformed. */
export const decodePendingLogin = (text: string): PendingLogin | undefined => decode(pendingSchema, text);
export const decodeSession = (text: string): Session | undefined => decode(sessionSchema, text);
