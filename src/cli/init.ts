import { resolve } from 'node:path';
import { ensureDataDir } from '../config/init.js';
import { loadConfig } from '../config/load.js';
import { distribution2Block } from '../config/registry-config.js';

export interface InitOutcome {
  /** Whether this run created the data folder's config (and so the admin password). */
  created: boolean;
  configPath: string;
  /** What to show: the admin password and the registry block, or that nothing changed. */
  message: string;
}

/**
 * `sts-docker-auth init`: what the first `serve` does to an empty data folder (signing key,
 * certificate, config, admin user), without starting the server. For images and deploy scripts
 * that prepare the folder in one step and run the server in another, and to read the admin
 * password from a one-shot container's log. An existing config is left untouched.
 */
export async function initDataDir(dir: string): Promise<InitOutcome> {
  const folder = resolve(dir);
  const init = await ensureDataDir(folder);
  if (init.adminPassword === undefined) {
    return {
      created: false,
      configPath: init.configPath,
      message: `${init.configPath} exists already; nothing was changed (the admin password was shown when it was created).\n`,
    };
  }
  // Loading the new config checks it as `serve` would, and gives the registry block its values.
  const loaded = await loadConfig(init.configPath);
  return {
    created: true,
    configPath: init.configPath,
    message: [
      `Created ${folder}: signing key, certificate and ${init.configPath}.`,
      `The admin password, shown only this once: ${init.adminPassword}`,
      '',
      "Paste this into the registry's config.yml (distribution 2.8; `sts-docker-auth registry-config` prints the 3.x and zot forms):",
      '',
      distribution2Block(loaded),
    ].join('\n'),
  };
}
