import { webhookSchema, type WebhookSettings } from '../external/settings.js';
import { postWebhook, WebhookError, type WebhookTarget } from '../external/webhook-client.js';
import { CredentialCache } from '../security/credential-cache.js';
import { BackendUnavailableError } from './errors.js';
import { parseLabels } from './labels.js';
import { NO_MATCH, type Authenticator, type AuthnContext, type AuthnResult, type Credentials } from './types.js';

/** `webhook_auth`. */
export const webhookAuthSchema = webhookSchema('each login').describe(
  'an HTTP service that checks passwords: it receives {"account","password","ip","service"} and answers {"allow": true|false, "labels": {...}}',
);

/**
 * Asks an HTTP service whether a password is right (docker_auth PR 422 asks for this in place of
 * one process per request). The body is `{"account","password","ip","service"}`: the password
 * travels only in the body, to the configured URL (use https). Answers:
 * - 200 `{"allow": true, "labels": {...}}`: signed in, with those labels;
 * - 200 `{"allow": false}`: the password is wrong (401; the chain stops);
 * - 404, or 200 `{"match": false}`: the account is not the service's; the next backend is asked;
 * - anything else (another 4xx, 5xx or no answer after the retries, a body that is not that
 *   JSON): 503, never 401.
 */
export class WebhookAuthenticator implements Authenticator {
  readonly name = 'webhook';
  private readonly target: WebhookTarget;
  private readonly cache: CredentialCache<AuthnResult>;

  constructor(settings: WebhookSettings, secret: Buffer | undefined, now: () => number = Date.now) {
    this.target = { url: settings.url, timeoutMs: settings.timeout, retries: settings.retries, secret, headers: settings.headers };
    this.cache = new CredentialCache({ ttlMs: settings.cache_ttl * 1000, isSuccess: (r) => r.outcome === 'identity', now });
  }

  async authenticate(credentials: Credentials | null, context: AuthnContext): Promise<AuthnResult> {
    if (!credentials || credentials.username === '') return NO_MATCH;
    // The service sees the address and the service too and may decide by them, so a success
    // is reused only for the same ones.
    const scope = `${this.name}\0${context.service}\0${context.ip ?? ''}`;
    return this.cache.verify(scope, credentials.username, credentials.password, () => this.check(credentials, context));
  }

  private async check({ username, password }: Credentials, context: AuthnContext): Promise<AuthnResult> {
    let answer;
    try {
      answer = await postWebhook(this.target, { account: username, password, ip: context.ip ?? '', service: context.service });
    } catch (err) {
      if (err instanceof WebhookError) throw new BackendUnavailableError('webhook_auth', err.message, { cause: err });
      throw err;
    }
    if (answer.kind === 'client-error') {
      if (answer.status === 404) return NO_MATCH;
      throw new BackendUnavailableError('webhook_auth', `answered ${answer.status}`);
    }
    const body = answer.json;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BackendUnavailableError('webhook_auth', 'the answer is not a JSON object');
    }
    const { allow, match, labels } = body as { allow?: unknown; match?: unknown; labels?: unknown };
    if (match === false) return NO_MATCH;
    if (allow === false) return { outcome: 'denied', reason: 'refused by webhook_auth' };
    if (allow !== true) throw new BackendUnavailableError('webhook_auth', 'the answer has no boolean "allow"');
    let parsed;
    try {
      parsed = parseLabels(labels);
    } catch (err) {
      throw new BackendUnavailableError('webhook_auth', `the answer's ${(err as Error).message}`, { cause: err });
    }
    return { outcome: 'identity', identity: { account: username, labels: parsed, backend: this.name, anonymous: false, via: 'password' } };
  }
}
