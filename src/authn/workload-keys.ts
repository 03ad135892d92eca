import type * as Jose from 'jose';
import type { FlattenedJWSInput, JSONWebKeySet, JWSHeaderParameters } from 'jose';
import { BackendUnavailableError } from './errors.js';

let jose: Promise<typeof Jose> | undefined;

/**
 * jose, imported on first use: only a config with trusted issuers needs it, and it is 180 modules
 * and about 9 MB that every other server would load at start for nothing (performance.md).
 */
export function loadJose(): Promise<typeof Jose> {
  jose ??= import('jose');
  return jose;
}

/** Discovery documents and key sets are small; anything bigger is not what we asked for. */
const MAX_BODY_BYTES = 512 * 1024;
/**
 * After a fetch, an unknown `kid` does not trigger another one for this long (jose's
 * createRemoteJWKSet uses the same 30 s): a flood of tokens with made-up kids costs the issuer
 * at most one request per cooldown.
 */
export const KID_COOLDOWN_MS = 30_000;

export interface RemoteKeySetOptions {
  /** The backend name for BackendUnavailableError (`workload`). */
  backend: string;
  /** The trusted issuer's name, for messages. */
  name: string;
  /** The exact `iss`; discovery is `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  /** The JWKS address; when unset it comes from discovery (`jwks_uri`). */
  jwksUrl: string | undefined;
  /** Whether http:// addresses (discovery, JWKS) are allowed; https only otherwise. */
  allowInsecureHttp: boolean;
  /** A key set is used this long, then fetched again. */
  refreshMs: number;
  /** The longest one HTTP request (headers and body) may take. */
  timeoutMs: number;
  cooldownMs?: number;
  now: () => number;
}

type LocalKeySet = ReturnType<typeof Jose.createLocalJWKSet>;
type VerifyKey = Awaited<ReturnType<LocalKeySet>>;

/**
 * One trusted issuer's signing keys, fetched over HTTP and cached: fetched on first use, kept for
 * `refreshMs`, fetched again early when a token names a `kid` the set does not hold (at most once
 * per cooldown). Concurrent requests share one fetch. Every failure to get a usable key set (no
 * answer, timeout, an HTTP error, something that is not a JWKS) throws BackendUnavailableError:
 * the caller answers 503 and no token is accepted (fail closed), not even with keys past their
 * refresh time.
 */
export class RemoteKeySet {
  private jwksUri: string | undefined;
  private keys: LocalKeySet | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private attemptedAt = Number.NEGATIVE_INFINITY;
  private pending: Promise<LocalKeySet> | undefined;
  private readonly cooldownMs: number;

  constructor(private readonly options: RemoteKeySetOptions) {
    this.jwksUri = options.jwksUrl;
    this.cooldownMs = Math.min(options.cooldownMs ?? KID_COOLDOWN_MS, options.refreshMs);
  }

  /** The key for a token's header, in jose's getKey form. */
  async getKey(header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<VerifyKey> {
    const { errors } = await loadJose();
    let keys = this.keys;
    if (!keys || this.options.now() - this.fetchedAt >= this.options.refreshMs) keys = await this.reload();
    try {
      return await this.select(keys, header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || this.options.now() - this.attemptedAt < this.cooldownMs) throw err;
      // A key the issuer has just started using (rotation): fetch the set again, once.
      return this.select(await this.reload(), header, token);
    }
  }

  private async select(keys: LocalKeySet, header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<VerifyKey> {
    const { errors } = await loadJose();
    try {
      return await keys(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported) {
        throw err;
      }
      // The matching key is there but cannot be imported: the issuer's key set is broken.
      throw this.unavailable(`the key set holds an unusable key for kid ${JSON.stringify(header.kid ?? null)}: ${(err as Error).message}`, err);
    }
  }

  private reload(): Promise<LocalKeySet> {
    this.pending ??= this.fetchKeySet().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetchKeySet(): Promise<LocalKeySet> {
    this.attemptedAt = this.options.now();
    const uri = this.jwksUri ?? (await this.discover());
    let body: unknown;
    try {
      body = await this.getJson(uri, 'JWKS');
    } catch (err) {
      // The discovery document may have moved the key set: look again next time.
      if (this.options.jwksUrl === undefined) this.jwksUri = undefined;
      throw err;
    }
    const { createLocalJWKSet } = await loadJose();
    let keys: LocalKeySet;
    try {
      keys = createLocalJWKSet(body as JSONWebKeySet);
    } catch (err) {
      throw this.unavailable(`${uri} is not a JSON Web Key Set (RFC 7517 §5)`, err);
    }
    if ((body as JSONWebKeySet).keys.length === 0) throw this.unavailable(`the key set at ${uri} holds no keys`);
    this.keys = keys;
    this.fetchedAt = this.options.now();
    return keys;
  }

  /** OpenID Connect Discovery 1.0 §4: `<issuer>/.well-known/openid-configuration`. */
  private async discover(): Promise<string> {
    const url = `${this.options.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const doc = await this.getJson(url, 'discovery document');
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw this.unavailable(`${url} is not a JSON object`);
    const { issuer, jwks_uri: jwksUri } = doc as Record<string, unknown>;
    // §4.3: the document's issuer must be exactly the one it was fetched for.
    if (issuer !== this.options.issuer) {
      throw this.unavailable(`${url} names issuer ${JSON.stringify(issuer)}, not ${JSON.stringify(this.options.issuer)}`);
    }
    if (typeof jwksUri !== 'string') throw this.unavailable(`${url} has no jwks_uri`);
    this.checkUrl(jwksUri, `the jwks_uri in ${url}`);
    this.jwksUri = jwksUri;
    return jwksUri;
  }

  private checkUrl(url: string, what: string): void {
    let protocol: string;
    try {
      protocol = new URL(url).protocol;
    } catch {
      throw this.unavailable(`${what} is not a URL: ${JSON.stringify(url)}`);
    }
    if (protocol === 'https:' || (protocol === 'http:' && this.options.allowInsecureHttp)) return;
    throw this.unavailable(`${what} (${url}) is not https; keys fetched over plain HTTP could be anyone's (allow_insecure_http is for tests)`);
  }

  /** GET a JSON document: one timeout for headers and body, no redirects, a size limit. */
  private async getJson(url: string, what: string): Promise<unknown> {
    const { timeoutMs } = this.options;
    const signal = AbortSignal.timeout(timeoutMs);
    let text: string;
    try {
      const response = await fetch(url, { signal, redirect: 'manual', headers: { accept: 'application/json' } });
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        throw this.unavailable(`the ${what} at ${url} answered HTTP ${response.status}`);
      }
      text = await readLimited(response, MAX_BODY_BYTES);
    } catch (err) {
      if (err instanceof BackendUnavailableError) throw err;
      if (signal.aborted) throw this.unavailable(`no answer within ${timeoutMs} ms for the ${what} at ${url}`, err);
      const cause = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      throw this.unavailable(`cannot fetch the ${what} at ${url}: ${cause}`, err);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw this.unavailable(`the ${what} at ${url} is not JSON`, err);
    }
  }

  private unavailable(message: string, cause?: unknown): BackendUnavailableError {
    return new BackendUnavailableError(this.options.backend, `trusted issuer ${this.options.name}: ${message}`, cause === undefined ? undefined : { cause });
  }
}

class BodyTooLarge extends Error {}

async function readLimited(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw new BodyTooLarge(`the answer is larger than ${limit} bytes`);
  }
  if (!response.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLarge(`the answer is larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
