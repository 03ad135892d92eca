import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export interface WebhookTarget {
  url: string;
  /** Per attempt, covering the connection, the request and reading the answer. */
  timeoutMs: number;
  /** Further attempts after a network error, a timeout or a 5xx answer; never after a 4xx. */
  retries: number;
  /** When set, each request carries `X-Sts-Signature: sha256=<hex HMAC-SHA256 of the body>`. */
  secret?: Buffer | undefined;
  /** Extra request headers (an API key for the webhook, say). */
  headers?: Readonly<Record<string, string>> | undefined;
}

export type WebhookAnswer =
  | { status: number; kind: 'json'; json: unknown }
  /** A 4xx: not retried; the caller decides what it means (404 is "no match"). */
  | { status: number; kind: 'client-error' };

/** The webhook did not answer usably: network error, timeout, 3xx/5xx after retries, bad JSON. */
export class WebhookError extends Error {
  override name = 'WebhookError';
}

export const SIGNATURE_HEADER = 'x-sts-signature';
const MAX_RESPONSE_BYTES = 64 * 1024;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 2_000;

/** The value of `X-Sts-Signature` for a body: what the receiving server recomputes and compares. */
export function signBody(secret: Buffer, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** Exponential backoff with jitter: about 100 ms, 200 ms, 400 ms ... at most 2 s. */
function backoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

class RetryableError extends Error {}

async function readLimited(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new WebhookError(`the answer is larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function attempt(target: WebhookTarget, body: string, headers: Record<string, string>): Promise<WebhookAnswer> {
  let response: Response;
  const signal = AbortSignal.timeout(target.timeoutMs);
  try {
    // Redirects are not followed: a 307 would replay the body (a password, for authentication) to
    // wherever the Location header points.
    response = await fetch(target.url, { method: 'POST', body, headers, redirect: 'manual', signal });
  } catch (err) {
    throw new RetryableError(signal.aborted ? `no answer within ${target.timeoutMs} ms` : `request failed: ${causeOf(err)}`, { cause: err });
  }
  let text: string;
  try {
    text = await readLimited(response);
  } catch (err) {
    if (err instanceof WebhookError) throw err;
    throw new RetryableError(signal.aborted ? `no complete answer within ${target.timeoutMs} ms` : `reading the answer failed: ${causeOf(err)}`, {
      cause: err,
    });
  }
  if (response.status >= 500) throw new RetryableError(`answered ${response.status}`);
  if (response.status >= 400) return { status: response.status, kind: 'client-error' };
  if (response.status < 200 || response.status >= 300) throw new WebhookError(`answered ${response.status}; redirects are not followed`);
  try {
    return { status: response.status, kind: 'json', json: JSON.parse(text) as unknown };
  } catch {
    throw new WebhookError(`answered ${response.status} with a body that is not JSON`);
  }
}

function causeOf(err: unknown): string {
  // undici wraps the useful part (ECONNREFUSED, a TLS error) in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * POSTs `payload` as JSON, retrying with backoff on network errors, timeouts and 5xx answers (a
 * 4xx is the webhook's considered answer and is never retried). Throws WebhookError when no usable
 * answer came.
 */
export async function postWebhook(target: WebhookTarget, payload: unknown): Promise<WebhookAnswer> {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = { ...target.headers, 'content-type': 'application/json', accept: 'application/json' };
  if (target.secret) headers[SIGNATURE_HEADER] = signBody(target.secret, body);
  let last: Error | undefined;
  for (let n = 0; n <= target.retries; n++) {
    if (n > 0) await sleep(backoff(n - 1));
    try {
      return await attempt(target, body, headers);
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      last = err;
    }
  }
  const attempts = target.retries + 1;
  throw new WebhookError(`${last?.message ?? 'failed'} (${attempts} attempt${attempts > 1 ? 's' : ''})`, { cause: last });
}
