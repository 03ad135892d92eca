import { randomFillSync } from 'node:crypto';
import type { ResourceScope } from '../protocol/scope.js';

/** One entry of the `access` claim (distribution's ResourceActions). */
export interface AccessEntry {
  type: string;
  class?: string;
  name: string;
  actions: string[];
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: AccessEntry[];
}

export interface ClaimsInput {
  issuer: string;
  subject: string;
  audience: string;
  access: readonly ResourceScope[];
  /** Lifetime in seconds (at least 60: clients raise anything shorter, protocol.md §1.3). */
  expiresIn: number;
  nowMs: number;
}

// zot checks `iat` with zero leeway, so a registry clock a few seconds behind ours would reject a
// fresh token; distribution allows 60 s on nbf (protocol.md §5).
const IAT_BACKDATE_S = 5;
const NBF_BACKDATE_S = 10;

const JTI_BYTES = 16;
/** Random bytes for 256 jti at a time: one call into the CSPRNG instead of one per token. */
const jtiPool = Buffer.alloc(JTI_BYTES * 256);
let jtiOffset = jtiPool.length;

/** 128 random bits, base64url: unique across replicas and restarts without coordination. */
export function newJti(): string {
  if (jtiOffset === jtiPool.length) {
    randomFillSync(jtiPool);
    jtiOffset = 0;
  }
  const jti = jtiPool.toString('base64url', jtiOffset, jtiOffset + JTI_BYTES);
  // Each slice is handed out once: the next token gets the next 16 bytes.
  jtiOffset += JTI_BYTES;
  return jti;
}

/**
 * Builds the claims every verifier accepts: integer times (Go decodes int64), `aud` a single
 * string (2.8 rejects arrays), a unique `jti`, and the class in its own field, never in `type`.
 */
export function buildClaims(input: ClaimsInput): TokenClaims {
  const now = Math.floor(input.nowMs / 1000);
  return {
    iss: input.issuer,
    sub: input.subject,
    aud: input.audience,
    exp: now + Math.floor(input.expiresIn),
    nbf: now - NBF_BACKDATE_S,
    iat: now - IAT_BACKDATE_S,
    jti: newJti(),
    access: input.access.map((s) => {
      const entry: AccessEntry = { type: s.type, name: s.name, actions: [...s.actions] };
      if (s.class !== undefined) entry.class = s.class;
      return entry;
    }),
  };
}
