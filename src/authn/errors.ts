/**
 * An upstream a backend depends on (a directory, a program, a webhook, an issuer) failed or did
 * not answer in time. It is ours, not the client's: answered 503, never 401, so that clients retry
 * instead of telling the user the password is wrong.
 */
export class BackendUnavailableError extends Error {
  override name = 'BackendUnavailableError';
  constructor(
    readonly backend: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
