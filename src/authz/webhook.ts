import { BackendUnavailableError } from '../authn/errors.js';
import type { Identity } from '../authn/types.js';
import { webhookSchema, type WebhookSettings } from '../external/settings.js';
import { postWebhook, WebhookError, type WebhookTarget } from '../external/webhook-client.js';
import type { ResourceScope } from '../protocol/scope.js';
import { CredentialCache } from '../security/credential-cache.js';
import { requestInfo, requestInfoKey } from './request-info.js';
import type { AuthzContext, AuthzDecision, Authorizer } from './types.js';

/** `webhook_authz`. */
export const webhookAuthzSchema = webhookSchema('each requested scope').describe(
  'an HTTP service that decides each scope: it receives the request as JSON and answers {"actions": [...]}, or 404 for no rule',
);

/**
 * Asks an HTTP service about each scope. The body is the same JSON ext_authz programs read
 * (`{"Account","Type","Name","Service","IP","Actions","Labels"}`). A 200 `{"actions": [...]}` grants
 * those of the requested actions it lists (never more than was asked); a 404 means "no rule",
 * and the chain asks the next authorizer. Anything else, after the retries, is answered 503.
 */
export class WebhookAuthorizer implements Authorizer {
  readonly name = 'webhook_authz';
  private readonly target: WebhookTarget;
  /**
   * Answers (a 404 "no rule" included) are reused for the same question, keyed by every field of
   * the request info; a failure is never kept.
   */
  private readonly cache: CredentialCache<AuthzDecision | null>;

  constructor(settings: WebhookSettings, secret: Buffer | undefined, now: () => number = Date.now) {
    this.target = { url: settings.url, timeoutMs: settings.timeout, retries: settings.retries, secret, headers: settings.headers };
    this.cache = new CredentialCache({ ttlMs: settings.cache_ttl * 1000, isSuccess: () => true, now });
  }

  async authorize(identity: Identity, scope: ResourceScope, context: AuthzContext): Promise<AuthzDecision | null> {
    const info = requestInfo(identity, scope, context);
    const decision = await this.cache.verify(this.name, requestInfoKey(info), '', () => this.ask(info, scope));
    return decision && { actions: [...decision.actions], reason: decision.reason };
  }

  private async ask(info: ReturnType<typeof requestInfo>, scope: ResourceScope): Promise<AuthzDecision | null> {
    let answer;
    try {
      answer = await postWebhook(this.target, info);
    } catch (err) {
      if (err instanceof WebhookError) throw new BackendUnavailableError(this.name, err.message, { cause: err });
      throw err;
    }
    if (answer.kind === 'client-error') {
      if (answer.status === 404) return null;
      throw new BackendUnavailableError(this.name, `answered ${answer.status}`);
    }
    const actions = (answer.json as { actions?: unknown } | null)?.actions;
    if (!Array.isArray(actions) || !actions.every((a): a is string => typeof a === 'string')) {
      throw new BackendUnavailableError(this.name, 'the answer has no "actions" list of strings');
    }
    // Never more than was asked, whatever the service says; `*` stands for everything asked, as
    // in an ACL rule's actions.
    const granted = actions.includes('*') ? [...scope.actions] : scope.actions.filter((a) => actions.includes(a));
    return { actions: granted, reason: `webhook_authz: ${granted.length > 0 ? granted.join(',') : 'nothing'} granted` };
  }
}
