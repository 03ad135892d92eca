import type { errors as JoseErrors, JWTPayload } from 'jose';
import { z } from 'zod';
import { compilePattern, PatternError, type Matcher } from '../authz/acl/pattern.js';
import {
  claimAt,
  ClaimsTemplateError,
  expandClaimsTemplate,
  expandClaimsValues,
  missingPlaceholder,
  parseClaimPath,
  parseClaimsTemplate,
  scalarText,
  type ClaimPath,
  type ClaimsTemplate,
} from './claims-template.js';
import { BackendUnavailableError } from './errors.js';
import { NO_MATCH, type Authenticator, type AuthnResult, type Credentials } from './types.js';
import { loadJose, RemoteKeySet } from './workload-keys.js';

/**
 * Workload identities: CI jobs (GitHub Actions, GitLab CI), Kubernetes service accounts and any
 * other OpenID Connect issuer hand their jobs a short-lived, signed ID token. Used as the password
 * of a token request, it proves who the job is without a stored secret. This backend recognises
 * such a password by its shape and its `iss`, verifies it against the issuer's published keys,
 * and turns its claims into an account and labels for the ACL.
 */

const nonEmpty = z.string().min(1, 'must not be empty');

const DURATION = /^(\d+)(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
/**
 * Seconds, or `90s`, `15m`, `12h`, `30d`: the same grammar as the config's other durations
 * (config/schema.ts imports this module, so importing its duration schema back would be a cycle).
 */
const duration = (min: number) =>
  z.union([
    z.int().min(min, `must be at least ${min} seconds`),
    z
      .string()
      .regex(DURATION, 'must be a number of seconds or a duration such as 90s, 15m, 12h or 30d')
      .transform((value, ctx) => {
        const [, amount, unit] = DURATION.exec(value) as RegExpExecArray;
        const seconds = Number(amount) * (UNIT_SECONDS[unit as string] as number);
        if (seconds < min) ctx.addIssue({ code: 'custom', message: `must be at least ${min} seconds` });
        return seconds;
      }),
  ], { error: 'must be a number of seconds or a duration such as 90s, 15m, 12h or 30d' });

/** Asymmetric JWS algorithms only (RFC 7518 §3.1, RFC 8037): an issuer's key is public. */
export const WORKLOAD_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type WorkloadAlgorithm = (typeof WORKLOAD_ALGORITHMS)[number];

const algorithmSchema = z.enum(WORKLOAD_ALGORITHMS, {
  error: (issue) =>
    typeof issue.input === 'string' && /^(none|HS\d+)$/i.test(issue.input)
      ? `${issue.input} is refused: an unsigned token proves nothing, and an HMAC algorithm would turn the issuer's public key into a shared secret anyone can sign with`
      : `must be one of ${WORKLOAD_ALGORITHMS.join(', ')}`,
});

const templateList = z.union([z.string(), z.array(z.string()).min(1, 'must not be empty')]);

export const trustedIssuerSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, ".", "_" or "-", starting with a letter or digit')
      .describe('a short name: the `issuer` label and the audit'),
    issuer: nonEmpty.describe('the exact `iss` of the tokens'),
    jwks_url: z
      .url({ protocol: /^https?$/, message: 'must be an absolute http(s) URL' })
      .optional()
      .describe("the issuer's JWKS; default: the jwks_uri of the issuer's /.well-known/openid-configuration"),
    allow_insecure_http: z.boolean().default(false).describe('allow http:// discovery and JWKS addresses (tests on loopback)'),
    audience: z.union([nonEmpty, z.array(nonEmpty).min(1, 'must not be empty')]).describe('the `aud` the tokens must carry'),
    algorithms: z
      .array(algorithmSchema)
      .min(1, 'must not be empty')
      .default(['RS256', 'ES256'])
      .describe('the signature algorithms accepted; never taken from the token'),
    username: nonEmpty.optional().describe('the only user name accepted with these tokens; default: any'),
    required_claims: z.record(nonEmpty, z.string()).optional().describe('claim path → glob or /regex/ that must match'),
    account: nonEmpty.describe('template of the account name, e.g. gha:${claims.repository}'),
    labels: z.record(nonEmpty, templateList).optional().describe('label → template or list of templates'),
    clock_tolerance: duration(0).default(30).describe('leeway for exp, nbf and iat'),
    jwks_refresh: duration(1).default(600).describe('how long a fetched key set is used'),
    max_token_age: duration(1).optional().describe('refuse tokens whose iat is older than this'),
    timeout: duration(1).default(5).describe('the longest a discovery or JWKS request may take'),
  })
  .superRefine((entry, ctx) => {
    const insecure = entry.allow_insecure_http;
    const checkUrl = (value: string, key: string, what: string) => {
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        ctx.addIssue({ code: 'custom', path: [key], message: `must be an http(s) URL ${what}` });
        return;
      }
      if (url.protocol === 'https:' || (url.protocol === 'http:' && insecure)) return;
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message:
          url.protocol === 'http:'
            ? `must be https ${what}: keys fetched over plain HTTP could be anyone's (allow_insecure_http: true is for tests on loopback)`
            : `must be an http(s) URL ${what}`,
      });
    };
    if (entry.jwks_url === undefined) checkUrl(entry.issuer, 'issuer', 'when jwks_url is not set (the keys are discovered from <issuer>/.well-known/openid-configuration)');
    else checkUrl(entry.jwks_url, 'jwks_url', '');

    const template = (source: string, path: (string | number)[]) => {
      try {
        parseClaimsTemplate(source);
      } catch (err) {
        if (!(err instanceof ClaimsTemplateError)) throw err;
        ctx.addIssue({ code: 'custom', path, message: err.message });
      }
    };
    template(entry.account, ['account']);
    for (const [label, value] of Object.entries(entry.labels ?? {})) {
      if (label === 'issuer') {
        ctx.addIssue({ code: 'custom', path: ['labels', label], message: 'is set by the server (the trusted issuer name); choose another label' });
      }
      if (typeof value === 'string') template(value, ['labels', label]);
      else value.forEach((item, i) => template(item, ['labels', label, i]));
    }
    for (const [claim, pattern] of Object.entries(entry.required_claims ?? {})) {
      try {
        parseClaimPath(claim);
        compilePattern(pattern);
      } catch (err) {
        if (!(err instanceof ClaimsTemplateError) && !(err instanceof PatternError)) throw err;
        ctx.addIssue({ code: 'custom', path: ['required_claims', claim], message: err.message });
      }
    }
  });

export const trustedIssuersSchema = z.array(trustedIssuerSchema).superRefine((entries, ctx) => {
  const names = new Set<string>();
  const issuers = new Set<string>();
  entries.forEach((entry, i) => {
    if (names.has(entry.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `${entry.name} is listed twice` });
    // One entry per iss: a token must meet one set of conditions, not the easiest of several.
    if (issuers.has(entry.issuer)) {
      ctx.addIssue({ code: 'custom', path: [i, 'issuer'], message: 'is listed twice; merge the entries (required_claims takes /regex/ alternatives)' });
    }
    names.add(entry.name);
    issuers.add(entry.issuer);
  });
});

export type TrustedIssuerConfig = z.output<typeof trustedIssuerSchema>;

/** The parts of a password that look like a JWT, decoded but NOT verified. */
interface UnverifiedJwt {
  alg: string;
  kid: string | undefined;
  iss: string;
}

/** Three base64url segments (the last one empty for `alg: none`, which is then refused by name). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a password is a JWT, and which issuer it claims. Nothing here is trusted: it only picks
 * the issuer whose keys and rules then decide.
 */
export function peekJwt(password: string): UnverifiedJwt | undefined {
  if (!JWT_SHAPE.test(password)) return undefined;
  const [headerPart, payloadPart] = password.split('.') as [string, string, string];
  const header = decodeSegment(headerPart);
  if (!header || typeof header.alg !== 'string' || (header.typ !== undefined && typeof header.typ !== 'string')) return undefined;
  const payload = decodeSegment(payloadPart);
  if (!payload || typeof payload.iss !== 'string') return undefined;
  return { alg: header.alg, kid: typeof header.kid === 'string' ? header.kid : undefined, iss: payload.iss };
}

interface RequiredClaim {
  name: string;
  path: ClaimPath;
  pattern: string;
  matcher: Matcher;
}

/** Whether a claim matches: a scalar as text, a list when any of its items does. */
function claimMatches(value: unknown, matcher: Matcher): boolean {
  const values = Array.isArray(value) ? value : [value];
  return values.some((v) => {
    const text = scalarText(v);
    return text !== undefined && matcher.test(text);
  });
}

const denied = (reason: string): AuthnResult => ({ outcome: 'denied', reason });

/** One trusted issuer, compiled. */
class TrustedIssuer {
  private readonly keys: RemoteKeySet;
  private readonly required: RequiredClaim[];
  private readonly account: ClaimsTemplate;
  private readonly labels: [string, ClaimsTemplate[]][];

  constructor(
    private readonly config: TrustedIssuerConfig,
    backend: string,
    private readonly now: () => number,
  ) {
    this.keys = new RemoteKeySet({
      backend,
      name: config.name,
      issuer: config.issuer,
      jwksUrl: config.jwks_url,
      allowInsecureHttp: config.allow_insecure_http,
      refreshMs: config.jwks_refresh * 1000,
      timeoutMs: config.timeout * 1000,
      now,
    });
    this.required = Object.entries(config.required_claims ?? {}).map(([name, pattern]) => ({
      name,
      path: parseClaimPath(name),
      pattern,
      matcher: compilePattern(pattern),
    }));
    this.account = parseClaimsTemplate(config.account);
    this.labels = Object.entries(config.labels ?? {}).map(([label, value]) => [
      label,
      (typeof value === 'string' ? [value] : value).map(parseClaimsTemplate),
    ]);
  }

  async verify(credentials: Credentials, token: UnverifiedJwt, backend: string): Promise<AuthnResult> {
    const { config } = this;
    const why = (reason: string) => denied(`trusted issuer ${config.name}: ${reason}`);
    if (config.username !== undefined && credentials.username !== config.username) {
      return why(`user name ${JSON.stringify(credentials.username.slice(0, 100))} is not allowed with its tokens (only ${JSON.stringify(config.username)})`);
    }

    const jose = await loadJose();
    const { jwtVerify } = jose;
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(credentials.password, (header, jws) => this.keys.getKey(header, jws), {
        issuer: config.issuer,
        audience: config.audience,
        // Pinned by the config, never taken from the token header (RFC 8725 §3.1).
        algorithms: [...config.algorithms],
        clockTolerance: config.clock_tolerance,
        currentDate: new Date(this.now()),
        // A token without an expiry would be valid forever.
        requiredClaims: ['exp'],
        ...(config.max_token_age !== undefined ? { maxTokenAge: config.max_token_age } : {}),
      }));
    } catch (err) {
      if (err instanceof BackendUnavailableError) throw err;
      if (err instanceof jose.errors.JOSEError) return why(this.explain(jose.errors, err, token));
      throw err;
    }

    for (const claim of this.required) {
      const value = claimAt(claims, claim.path);
      if (!claimMatches(value, claim.matcher)) {
        const shown = value === undefined ? 'is missing' : `${JSON.stringify(value).slice(0, 200)} does not match`;
        return why(`claim ${claim.name} ${shown} (required: ${JSON.stringify(claim.pattern)})`);
      }
    }

    const account = expandClaimsTemplate(this.account, claims);
    if (account === undefined) {
      return why(`the account template ${JSON.stringify(config.account)} cannot be filled: the token has no ${missingPlaceholder(this.account, claims) ?? 'value'}`);
    }
    const labels: Record<string, string[]> = {};
    for (const [label, templates] of this.labels) {
      const values = [...new Set(templates.flatMap((t) => expandClaimsValues(t, claims)))];
      if (values.length > 0) labels[label] = values;
    }
    labels.issuer = [config.name];
    return { outcome: 'identity', identity: { account, labels, backend: `${backend}:${config.name}`, anonymous: false, via: 'workload' } };
  }

  /** The precise reason for the audit trail; never the token itself. */
  private explain(errors: typeof JoseErrors, err: InstanceType<typeof JoseErrors.JOSEError>, token: UnverifiedJwt): string {
    if (err instanceof errors.JWTExpired) {
      return err.claim === 'iat' ? `the token is older than max_token_age (${this.config.max_token_age}s)` : 'the token has expired';
    }
    if (err instanceof errors.JWTClaimValidationFailed) {
      if (err.claim === 'nbf') return 'the token is not valid yet (nbf)';
      if (err.claim === 'aud') return `the token's audience ${JSON.stringify(err.payload.aud ?? null)} is not ${JSON.stringify(this.config.audience)}`;
      if (err.claim === 'iat') return 'the token is issued in the future (iat)';
      if (err.claim === 'exp' && err.reason === 'missing') return 'the token has no expiry (exp)';
      return `claim ${err.claim}: ${err.message}`;
    }
    if (err instanceof errors.JOSEAlgNotAllowed) {
      return `algorithm ${JSON.stringify(token.alg)} is not allowed (allowed: ${this.config.algorithms.join(', ')})`;
    }
    if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad signature';
    if (err instanceof errors.JWKSNoMatchingKey) return `no key in the issuer's key set matches kid ${JSON.stringify(token.kid ?? null)} and alg ${token.alg}`;
    if (err instanceof errors.JWKSMultipleMatchingKeys) return `the token names no kid and several of the issuer's keys would fit`;
    return `malformed token: ${err.message}`;
  }
}

/**
 * The `trusted_issuers` backend. Tried before the password backends, since it recognises its
 * passwords by shape: a password that is not a JWT from a configured issuer is NO_MATCH, so user
 * passwords go on to the static and store users. It has no `lookup`: a workload identity exists
 * only for the lifetime of its ID token, and never gets a refresh token (`via: 'workload'`).
 */
export class WorkloadAuthenticator implements Authenticator {
  readonly name = 'workload';
  private readonly issuers = new Map<string, TrustedIssuer>();

  constructor(entries: readonly TrustedIssuerConfig[], now: () => number = Date.now) {
    for (const entry of entries) this.issuers.set(entry.issuer, new TrustedIssuer(entry, this.name, now));
  }

  async authenticate(credentials: Credentials | null): Promise<AuthnResult> {
    if (!credentials) return NO_MATCH;
    const token = peekJwt(credentials.password);
    if (!token) return NO_MATCH;
    const issuer = this.issuers.get(token.iss);
    if (!issuer) return NO_MATCH;
    return issuer.verify(credentials, token, this.name);
  }
}
