import { isDeepStrictEqual } from 'node:util';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';

/** What a reload did. */
export interface ReloadResult {
  /** The top-level config sections whose values changed (including the refused ones). */
  readonly changed: string[];
  /** Settings that changed but only apply on a restart; their old values stay in force. */
  readonly restartRequired: string[];
  /** True when the listener's TLS certificate or key was replaced. */
  readonly tlsReloaded: boolean;
  /** True when the server now listens on a new address or protocol (server.addr, HTTP/HTTPS). */
  readonly listenerMoved: boolean;
}

type ServerSection = Config['server'];

/**
 * Settings read once, at start: the number of workers, the route prefix and the plugins registered with
 * them, the store connection, the metrics and audit destinations, the login pages and the lockout
 * counters. Changing them at runtime would half-apply (a route on one prefix, its links on
 * another), so a reload keeps the old values and says "restart to apply".
 */
const RESTART_SERVER_KEYS = ['workers', 'path_prefix', 'real_ip_header', 'real_ip_pos', 'trusted_proxies', 'hsts', 'public_url'] as const;
const RESTART_SECTIONS = ['store', 'metrics', 'audit', 'sso', 'lockout'] as const;

function sectionNames(config: Readonly<Config>): string[] {
  return Object.keys(config);
}

/** The top-level sections that differ between two configs. */
export function changedSections(before: Readonly<Config>, after: Readonly<Config>): string[] {
  const names = new Set([...sectionNames(before), ...sectionNames(after)]);
  const record = (c: Readonly<Config>) => c as unknown as Record<string, unknown>;
  return [...names].filter((name) => !isDeepStrictEqual(record(before)[name], record(after)[name])).sort();
}

/**
 * The config to run after a reload: `next`, except for the settings only a restart applies,
 * which keep their `current` values (and are listed in restartRequired).
 */
export function planReload(current: LoadedConfig, next: LoadedConfig): { effective: LoadedConfig; result: Omit<ReloadResult, 'tlsReloaded' | 'listenerMoved'> } {
  const before = current.config;
  const after = next.config;
  const restartRequired: string[] = [];
  const server: Record<string, unknown> = { ...after.server };
  const oldServer = before.server as unknown as Record<string, unknown>;
  for (const key of RESTART_SERVER_KEYS) {
    if (!isDeepStrictEqual(oldServer[key], server[key])) {
      restartRequired.push(`server.${key}`);
      if (oldServer[key] === undefined) delete server[key];
      else server[key] = oldServer[key];
    }
  }
  // The listener (server.addr, HTTP or HTTPS) follows in StsServer.reload: it moves or swaps its certificate.
  const tls = next.tls;
  const config: Record<string, unknown> = { ...after, server: server as ServerSection };
  for (const section of RESTART_SECTIONS) {
    if (!isDeepStrictEqual(before[section], after[section])) {
      restartRequired.push(section);
      if (before[section] === undefined) delete config[section];
      else config[section] = before[section];
    }
  }
  const { tls: _tls, sso: _sso, metrics: _metrics, lockoutRedisUrl: _redis, ...rest } = next;
  const effective: LoadedConfig = {
    ...rest,
    config: Object.freeze(config as unknown as Config),
    ...(tls ? { tls } : {}),
    // Prepared with the sections above: they follow the section that stays in force.
    ...(current.sso ? { sso: current.sso } : {}),
    ...(current.metrics ? { metrics: current.metrics } : {}),
    ...(current.lockoutRedisUrl !== undefined ? { lockoutRedisUrl: current.lockoutRedisUrl } : {}),
  };
  return { effective, result: { changed: changedSections(before, after), restartRequired } };
}

/**
 * Reads, validates and applies a config file. An invalid file changes nothing: the old config
 * keeps running and the error (each key path and what is wrong) goes to the log.
 */
export async function reloadFromFile(
  server: { reload(loaded: LoadedConfig): Promise<ReloadResult> },
  file: string,
  logger: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ ok: true; result: ReloadResult } | { ok: false; error: Error }> {
  try {
    const loaded = await loadConfig(file, env);
    return { ok: true, result: await server.reload(loaded) };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    const message = error instanceof ConfigError ? error.message : `${file}: ${error.message}`;
    logger.error({ config: file }, `config reload failed, the old config stays in force: ${message}`);
    return { ok: false, error };
  }
}
