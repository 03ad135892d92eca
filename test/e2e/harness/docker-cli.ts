import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from './clients.js';
import { requireBinary } from './require-binary.js';

/** One registry entry of the docker CLI's config.json. */
export interface DockerAuthEntry {
  auth?: string;
  identitytoken?: string;
  [key: string]: unknown;
}

export interface DockerConfigFile {
  auths?: Record<string, DockerAuthEntry>;
  [key: string]: unknown;
}

export interface DockerCliSession {
  /** The session's temporary folder. */
  dir: string;
  /** DOCKER_CONFIG: config.json lives here. */
  configDir: string;
  /** `docker …` with this session's config and no engine. */
  docker(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  /** `docker login --password-stdin -u <user> <host>`. */
  login(host: string, user: string, password: string): Promise<RunResult>;
  /** config.json as the CLI wrote it, or undefined when there is none. */
  readConfig(): Promise<DockerConfigFile | undefined>;
  cleanup(): Promise<void>;
}

/**
 * The docker CLI with a private DOCKER_CONFIG and DOCKER_HOST pointing at a socket that does not
 * exist. With no engine answering, `docker login` runs the daemon's login code in the client
 * (docker/cli `loginClientSide`): the same GET with `offline_token=true&client_id=docker`, and the
 * refresh token goes to config.json as `identitytoken`. Pointing DOCKER_HOST nowhere makes that
 * the path taken even on a machine where an engine does run.
 */
export async function createDockerCliSession(): Promise<DockerCliSession> {
  const binary = await requireBinary('docker');
  const dir = await mkdtemp(join(tmpdir(), 'sts-e2e-docker-'));
  const configDir = join(dir, 'config');
  const home = join(dir, 'home');
  await Promise.all([mkdir(configDir), mkdir(home)]);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: home,
    DOCKER_CONFIG: configDir,
    DOCKER_HOST: `unix://${join(dir, 'no-engine.sock')}`,
    LANG: 'C.UTF-8',
  };
  const docker = (args: readonly string[], options: RunOptions = {}) => run(binary, args, env, options);
  return {
    dir,
    configDir,
    docker,
    login: (host, user, password) => docker(['login', '--password-stdin', '-u', user, host], { stdin: password }),
    async readConfig() {
      let text: string;
      try {
        text = await readFile(join(configDir, 'config.json'), 'utf8');
      } catch {
        return undefined;
      }
      return JSON.parse(text) as DockerConfigFile;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
