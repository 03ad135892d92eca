import { z } from 'zod';

/**
 * The config pieces shared by the external-program and webhook backends. Kept apart from
 * config/schema.ts, which imports the backends' schemas: importing it back would be a cycle.
 */

const nonEmpty = z.string().min(1, 'must not be empty');

const TIMEOUT = /^(\d+)(ms|s|m)$/;
const TIMEOUT_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** A timeout in seconds (fractions allowed) or a string such as `500ms`, `5s`, `1m`; parsed to ms. */
export const timeoutSchema = z
  .union([
    z.number().positive().max(600),
    z
      .string()
      .regex(TIMEOUT, 'must be a number of seconds or a duration such as 500ms, 5s or 1m')
      .transform((value) => {
        const [, amount, unit] = TIMEOUT.exec(value) as RegExpExecArray;
        return (Number(amount) * (TIMEOUT_UNIT_MS[unit as string] as number)) / 1000;
      }),
  ])
  .pipe(z.number().positive('must be more than 0').max(600, 'must be at most 10 minutes'))
  .transform((seconds) => Math.round(seconds * 1000));

const TTL = /^(\d+)(s|m|h)$/;
const TTL_UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/** How long a successful answer is reused: whole seconds or `30s`, `5m`, `1h`; 0 turns caching off. */
export const cacheTtlSchema = z
  .union([
    z.int().min(0),
    z
      .string()
      .regex(TTL, 'must be a number of seconds or a duration such as 30s, 5m or 1h')
      .transform((value) => {
        const [, amount, unit] = TTL.exec(value) as RegExpExecArray;
        return Number(amount) * (TTL_UNIT_SECONDS[unit as string] as number);
      }),
  ])
  .pipe(z.int().min(0).max(86_400, 'must be at most a day'));

/** `ext_auth` / `ext_authz`: docker_auth's `{command, args}` plus our limits. */
export function programSchema(what: string) {
  return z.strictObject({
    command: nonEmpty.describe(`the program ${what}: a path (relative to the config file) or a name looked up on PATH`),
    args: z.array(z.string()).default([]).describe('its arguments; no shell is involved'),
    timeout: timeoutSchema.prefault('5s').describe('the program is killed (with its process group) after this long: 503'),
    max_concurrency: z.int().min(1).max(1024).default(8).describe('how many copies run at once'),
    max_queue: z.int().min(0).max(100_000).default(64).describe('requests waiting for a free slot beyond which 503 is answered'),
    cache_ttl: cacheTtlSchema.default(0).describe('reuse a successful answer for this long; 0 (the default) runs the program every time'),
  });
}

// Names we set ourselves, or that fetch manages: a configured value would be ignored or break the
// request.
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'connection', 'transfer-encoding', 'x-sts-signature']);
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

// The Fetch standard's "bad ports", which fetch() refuses to connect to whatever the server: a
// webhook there could never be reached, so check-config says so.
const FETCH_BAD_PORTS = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115,
  117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587,
  601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669,
  6679, 6697, 10080,
]);

/** zod runs every check, so a refinement may see a string that is not a URL at all. */
function parsedUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/** `webhook_auth` / `webhook_authz`. */
export function webhookSchema(what: string) {
  return z.strictObject({
    url: z
      .url({ protocol: /^https?$/, message: 'must be an absolute http(s) URL' })
      .refine((url) => !FETCH_BAD_PORTS.has(Number(parsedUrl(url)?.port)), 'uses a port that fetch() refuses to connect to; pick another')
      .refine((url) => !parsedUrl(url)?.username && !parsedUrl(url)?.password, 'must not hold credentials (fetch() refuses them); send them in headers')
      .describe(`where ${what} is POSTed; use https unless it is on the same host`),
    timeout: timeoutSchema.prefault('5s').describe('per attempt'),
    retries: z.int().min(0).max(10).default(2).describe('further attempts after a network error, a timeout or a 5xx (never after a 4xx)'),
    secret_file: nonEmpty.optional().describe('a file holding the shared secret that signs each body (X-Sts-Signature)'),
    cache_ttl: cacheTtlSchema.default(0).describe('reuse a successful answer for this long; 0 (the default) asks every time'),
    headers: z
      .record(
        z.string().regex(HEADER_NAME, 'is not a valid header name').refine((name) => !RESERVED_HEADERS.has(name.toLowerCase()), 'is set by the server itself'),
        z.string().refine((value) => !/[\r\n\0]/.test(value), 'must be one line'),
      )
      .default({})
      .describe('extra request headers, such as an API key the webhook expects'),
  });
}

export type ProgramSettings = z.output<ReturnType<typeof programSchema>>;
export type WebhookSettings = z.output<ReturnType<typeof webhookSchema>>;
