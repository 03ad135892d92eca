import { BackendUnavailableError } from '../authn/errors.js';
import { Limiter, QueueFullError } from './limiter.js';
import { ProgramError, runProgram, type ProgramResult } from './program.js';
import type { ProgramSettings } from './settings.js';

/** How much of a failing program's stderr goes into the error (and so the log). */
const STDERR_EXCERPT = 300;

/**
 * One configured external program (`ext_auth` or `ext_authz`): runs it with the configured
 * timeout, at most `max_concurrency` copies at once with up to `max_queue` callers waiting, and
 * turns every way it can fail to answer (it cannot start, runs too long, the queue is full) into a
 * BackendUnavailableError, which the client sees as 503.
 */
export class ProgramRunner {
  private readonly limiter: Limiter;

  constructor(
    /** The backend's name in errors and logs: `ext_auth`, `ext_authz`. */
    readonly backend: string,
    /** The resolved (absolute) path of the program. */
    readonly command: string,
    readonly settings: ProgramSettings,
  ) {
    this.limiter = new Limiter(settings.max_concurrency, settings.max_queue);
  }

  get running(): number {
    return this.limiter.running;
  }

  get queued(): number {
    return this.limiter.queued;
  }

  async run(input: string): Promise<ProgramResult> {
    try {
      // Waiting for a slot is bounded by the timeout as well, so a request never waits more than
      // twice the timeout in all.
      const run = () => runProgram(this.command, this.settings.args, input, { timeoutMs: this.settings.timeout });
      return await this.limiter.run(run, this.settings.timeout);
    } catch (err) {
      if (err instanceof QueueFullError) {
        throw new BackendUnavailableError(this.backend, `too busy to run ${this.command}: ${err.message}`, { cause: err });
      }
      if (err instanceof ProgramError) throw new BackendUnavailableError(this.backend, err.message, { cause: err });
      throw err;
    }
  }

  /**
   * The error for an exit status the protocol does not define, or a signal. The program's stderr
   * helps whoever reads the log; a secret it may have echoed is masked first.
   */
  unexpected(result: ProgramResult, secret?: string): BackendUnavailableError {
    const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.code}`;
    let stderr = result.stderr;
    if (secret) stderr = stderr.split(secret).join('***');
    stderr = stderr.replace(/\s+/g, ' ').trim().slice(0, STDERR_EXCERPT);
    return new BackendUnavailableError(this.backend, `${this.command} ${how}${stderr ? `: ${stderr}` : ''}`);
  }
}
