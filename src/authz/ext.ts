import type { Identity } from '../authn/types.js';
import { ProgramRunner } from '../external/program-runner.js';
import { programSchema, type ProgramSettings } from '../external/settings.js';
import type { ResourceScope } from '../protocol/scope.js';
import { CredentialCache } from '../security/credential-cache.js';
import { requestInfo, requestInfoKey } from './request-info.js';
import type { AuthzContext, AuthzDecision, Authorizer } from './types.js';

/** `ext_authz`: docker_auth's keys (`command`, `args`) and our limits. */
export const extAuthzSchema = programSchema('asked about each requested scope').describe(
  'an external program that decides each scope (docker_auth ext_authz): stdin is the request as JSON; exit 0 grants, 1 refuses',
);

/** docker_auth's exit statuses: anything else (or a signal) is an error, answered 503. */
const GRANTED = 0;
const REFUSED = 1;

/**
 * docker_auth's ext_authz: for each scope, runs the program with the request info as JSON on stdin
 * (`{"Account","Type","Name","Service","IP","Actions","Labels"}`). Exit 0 grants every action
 * asked for, exit 1 grants none. It never answers "no rule", so it ends the authorizer chain: it
 * belongs after the config and store ACLs.
 */
export class ExtAuthorizer implements Authorizer {
  readonly name = 'ext_authz';
  readonly runner: ProgramRunner;
  /**
   * Answers are reused for the same question (every field of the request info), grants and
   * refusals alike; a failure is never kept. The credential cache serves as a plain TTL cache
   * here: the "user" is a digest of the question and there is no secret.
   */
  private readonly cache: CredentialCache<AuthzDecision>;

  constructor(settings: ProgramSettings, command: string, now: () => number = Date.now) {
    this.runner = new ProgramRunner(this.name, command, settings);
    this.cache = new CredentialCache({ ttlMs: settings.cache_ttl * 1000, isSuccess: () => true, now });
  }

  async authorize(identity: Identity, scope: ResourceScope, context: AuthzContext): Promise<AuthzDecision> {
    const info = requestInfo(identity, scope, context);
    const decision = await this.cache.verify(this.name, requestInfoKey(info), '', () => this.ask(JSON.stringify(info), scope));
    return { actions: [...decision.actions], reason: decision.reason };
  }

  private async ask(input: string, scope: ResourceScope): Promise<AuthzDecision> {
    const result = await this.runner.run(input);
    if (result.signal === null && result.code === GRANTED) return { actions: [...scope.actions], reason: 'ext_authz: exit 0' };
    if (result.signal === null && result.code === REFUSED) return { actions: [], reason: 'ext_authz: exit 1' };
    throw this.runner.unexpected(result);
  }
}
