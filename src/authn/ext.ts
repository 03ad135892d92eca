import { ProgramRunner } from '../external/program-runner.js';
import { CredentialCache } from '../security/credential-cache.js';
import { programSchema, type ProgramSettings } from '../external/settings.js';
import { BackendUnavailableError } from './errors.js';
import { parseLabels } from './labels.js';
import { NO_MATCH, type Authenticator, type AuthnResult, type Credentials } from './types.js';

/** `ext_auth`: docker_auth's keys (`command`, `args`) and our limits. */
export const extAuthSchema = programSchema('that checks each password').describe(
  'an external program that checks passwords (docker_auth ext_auth): stdin is "<user> <password>"; exit 0 accepts, 1 refuses, 2 does not know the user',
);

/** docker_auth's exit statuses: anything else (or a signal) is an error, answered 503. */
const ALLOWED = 0;
const DENIED = 1;
const NO_SUCH_USER = 2;

/**
 * docker_auth's ext_auth: runs the program for a login, writing `"<user> <password>"` to its stdin
 * (one space, no newline) — never on its command line or in its environment, where other users
 * of the machine could read it. Exit 0 accepts, and a non-empty stdout is JSON
 * `{"labels": {"name": ["value", ...]}}`; exit 1 refuses (401, the chain stops); exit 2 does not
 * know the user (the next backend is asked). Anything else, a signal, a timeout or stdout that is
 * not that JSON means the program failed: 503, never 401.
 */
export class ExtAuthenticator implements Authenticator {
  readonly name = 'ext';
  readonly runner: ProgramRunner;
  private readonly cache: CredentialCache<AuthnResult>;

  constructor(settings: ProgramSettings, command: string, now: () => number = Date.now) {
    this.runner = new ProgramRunner('ext_auth', command, settings);
    // Off unless cache_ttl is set: a program may accept one-time passwords, which must not be
    // accepted twice.
    this.cache = new CredentialCache({ ttlMs: settings.cache_ttl * 1000, isSuccess: (r) => r.outcome === 'identity', now });
  }

  async authenticate(credentials: Credentials | null): Promise<AuthnResult> {
    // An anonymous request has nothing to check. A user name with a space would make the input
    // ambiguous: programs split it at the first space.
    if (!credentials || credentials.username === '' || /\s/.test(credentials.username)) return NO_MATCH;
    return this.cache.verify(this.name, credentials.username, credentials.password, () => this.check(credentials));
  }

  private async check({ username, password }: Credentials): Promise<AuthnResult> {
    const result = await this.runner.run(`${username} ${password}`);
    const code = result.signal === null ? result.code : null;
    if (code === DENIED) return { outcome: 'denied', reason: 'refused by ext_auth (exit 1)' };
    if (code === NO_SUCH_USER) return NO_MATCH;
    if (code !== ALLOWED) throw this.runner.unexpected(result, password);
    let labels;
    try {
      labels = parseOutput(result.stdout);
    } catch (err) {
      throw new BackendUnavailableError('ext_auth', `${this.runner.command} exited 0 but ${(err as Error).message}`, { cause: err });
    }
    return { outcome: 'identity', identity: { account: username, labels, backend: this.name, anonymous: false, via: 'password' } };
  }
}

/** Empty stdout: no labels. Otherwise `{"labels": {...}}`; other keys are ignored, as Go ignores them. */
function parseOutput(stdout: string): Record<string, string[]> {
  if (stdout.trim() === '') return {};
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new Error('its output is not JSON');
  }
  if (json === null) return {};
  if (typeof json !== 'object' || Array.isArray(json)) throw new Error('its output is not a JSON object');
  return parseLabels((json as { labels?: unknown }).labels);
}
