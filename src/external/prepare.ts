import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { ConfigIssue } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import { resolveCommand } from './program.js';

/** What the external backends need from the disk, found and read once at start. */
export interface PreparedExternal {
  /** Absolute paths of the ext_auth and ext_authz programs. */
  extAuthCommand?: string;
  extAuthzCommand?: string;
  /** The shared secrets that sign webhook bodies. */
  webhookAuthSecret?: Buffer;
  webhookAuthzSecret?: Buffer;
}

/** Shorter secrets are too easy to guess from a signed body. */
const MIN_SECRET_BYTES = 16;

async function readSecret(baseDir: string, file: string, path: string, issues: ConfigIssue[]): Promise<Buffer | undefined> {
  const full = isAbsolute(file) ? file : resolve(baseDir, file);
  let content: Buffer;
  try {
    content = await readFile(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    issues.push({ path, message: `cannot read ${full}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}` });
    return undefined;
  }
  // The line end an editor or `echo` leaves is not part of the secret.
  let end = content.length;
  while (end > 0 && (content[end - 1] === 0x0a || content[end - 1] === 0x0d)) end--;
  const secret = content.subarray(0, end);
  if (secret.length < MIN_SECRET_BYTES) {
    issues.push({ path, message: `${full} holds ${secret.length} bytes; a secret needs at least ${MIN_SECRET_BYTES} (openssl rand -hex 32)` });
    return undefined;
  }
  return secret;
}

async function findProgram(command: string, baseDir: string, path: string, issues: ConfigIssue[]): Promise<string | undefined> {
  try {
    return await resolveCommand(command, baseDir);
  } catch (err) {
    issues.push({ path, message: `cannot run it: ${(err as Error).message}` });
    return undefined;
  }
}

/**
 * Finds the programs and reads the webhook secrets the config names, adding an issue (with its
 * key path) for each that fails, so that `check-config` reports them before anything runs.
 */
export async function prepareExternal(config: Config, baseDir: string, issues: ConfigIssue[]): Promise<PreparedExternal> {
  const prepared: PreparedExternal = {};
  const [extAuthCommand, extAuthzCommand, webhookAuthSecret, webhookAuthzSecret] = await Promise.all([
    config.ext_auth && findProgram(config.ext_auth.command, baseDir, 'ext_auth.command', issues),
    config.ext_authz && findProgram(config.ext_authz.command, baseDir, 'ext_authz.command', issues),
    config.webhook_auth?.secret_file !== undefined ? readSecret(baseDir, config.webhook_auth.secret_file, 'webhook_auth.secret_file', issues) : undefined,
    config.webhook_authz?.secret_file !== undefined
      ? readSecret(baseDir, config.webhook_authz.secret_file, 'webhook_authz.secret_file', issues)
      : undefined,
  ]);
  if (extAuthCommand) prepared.extAuthCommand = extAuthCommand;
  if (extAuthzCommand) prepared.extAuthzCommand = extAuthzCommand;
  if (webhookAuthSecret) prepared.webhookAuthSecret = webhookAuthSecret;
  if (webhookAuthzSecret) prepared.webhookAuthzSecret = webhookAuthzSecret;
  return prepared;
}
