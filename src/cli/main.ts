#!/usr/bin/env node
import cluster from 'node:cluster';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError } from '../config/errors.js';
import { dataDir, ensureDataDir } from '../config/init.js';
import { loadConfig } from '../config/load.js';
import { watchConfigFile } from '../config/watch.js';
import { reloadFromFile } from '../server/reload.js';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_FILE, readManifest } from '../token/keyring-files.js';
import { distribution2Block } from '../config/registry-config.js';
import { createLogger } from '../observability/logger.js';
import { createServer, prepareStore } from '../server/app.js';
import { runPrimary, workerCount, WORKER_CONFIG_ENV, WORKER_HEADER_ENV, type ListeningMessage } from '../server/cluster.js';
import { registerAdminCommands } from './admin-commands.js';
import { registerKeyCommands } from './keys-commands.js';
import { initDataDir } from './init.js';
import {
  checkConfig,
  defaultConfigPath,
  describeConfig,
  explain,
  hashPasswordCommand,
  importUsers,
  registryConfig,
} from './commands.js';

function cost(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 4 || n > 31) throw new InvalidArgumentError('the bcrypt cost is a whole number from 4 to 31');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--workers`: a whole number of at least 1, or auto. */
function workersOption(value: string): number | 'auto' {
  if (value === 'auto') return value;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('the number of workers is a whole number from 1 to 256, or auto');
  return n;
}

async function serve(configOption: string | undefined, workersSetting: number | 'auto' | undefined): Promise<void> {
  // Until their handlers are set below, SIGHUP and SIGUSR2 would end the process (their default
  // action): a cluster primary passes them to a worker that may still be starting. A SIGHUP that
  // arrives meanwhile may postdate the files read at start: it is applied once the server runs.
  let hupDuringStart = false;
  const early = () => void (hupDuringStart = true);
  process.on('SIGHUP', early);
  process.on('SIGUSR2', () => undefined);
  // A cluster worker loads the file its primary loaded; the primary made the data folder.
  const workerConfig = cluster.isWorker ? process.env[WORKER_CONFIG_ENV] : undefined;
  let configPath = workerConfig ?? configOption;
  let adminPassword: string | undefined;
  if (!configPath) {
    const init = await ensureDataDir(dataDir());
    configPath = init.configPath;
    adminPassword = init.adminPassword;
  }
  // The text the server starts with: a change made while it starts is applied once it runs.
  let lastText = await readFile(configPath, 'utf8').catch(() => '');
  const loaded = await loadConfig(configPath);
  const logger = createLogger({ level: process.env.STS_LOG_LEVEL ?? 'info' });
  const showAdminPassword = (url: string) => {
    if (!adminPassword) return;
    // Shown once, on the terminal; the config keeps only its bcrypt hash.
    const realm = loaded.config.server.public_url ? undefined : `${url}${loaded.config.server.path_prefix}/auth`;
    process.stderr.write(
      [
        '',
        `Created ${dataDir()}: signing key, certificate and ${configPath}.`,
        `The admin password, shown only this once: ${adminPassword}`,
        '',
        "Paste this into the registry's config.yml (distribution 2.8; `sts-docker-auth registry-config` prints the 3.x and zot forms):",
        '',
        distribution2Block(loaded, realm ? { realm } : {}),
        '',
      ].join('\n'),
    );
  };
  const workers = workerCount(workersSetting ?? loaded.config.server.workers);
  if (cluster.isPrimary && workers > 1) {
    // Migrate once, here, rather than in every worker at the same time; an unreachable store
    // fails the start now, as it does in one process.
    await (await prepareStore(loaded))?.close();
    runPrimary({ workers, configPath, logger, onFirstListening: showAdminPassword });
    return;
  }

  const server = await createServer(loaded, { logger });
  if (cluster.isWorker && process.env[WORKER_HEADER_ENV] === '1') {
    // Before Fastify's own listener, so the header is set whatever Fastify answers.
    server.app.server.prependListener('request', (_req, res) => res.setHeader('x-sts-worker-pid', String(process.pid)));
  }
  const url = await server.listen();
  showAdminPassword(url);
  // Whatever the log level, say where we listen: with STS_ADDR=…:0 nothing else tells.
  logger
    .child({}, { level: 'info' })
    .info({ url, config: configPath, alg: loaded.signingKey.alg, kid: loaded.signingKey.libtrustKid, pid: process.pid }, 'listening');
  if (cluster.isWorker) process.send?.({ type: 'sts:listening', url } satisfies ListeningMessage);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    const timer = setTimeout(() => process.exit(1), 10_000);
    timer.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // logrotate moved the audit file (audit.file): go on in a new one; every line lands in one of them.
  process.on('SIGUSR2', () => server.reopenAuditFile());
  // SIGHUP or a changed file reloads the config; an invalid file keeps the old one running.
  const file = configPath;
  let reloading = Promise.resolve();
  const reload = (trigger: string, force: boolean) => {
    reloading = reloading.then(async () => {
      const text = await readFile(file, 'utf8').catch(() => undefined);
      // The folder watch fires for every write and symlink swap: nothing to do if the text is the same.
      if (text === undefined || (!force && text === lastText)) return;
      lastText = text;
      logger.info({ trigger, config: file }, 'reloading config');
      await reloadFromFile(server, file, logger);
    });
  };
  process.off('SIGHUP', early);
  process.on('SIGHUP', () => reload('SIGHUP', true));
  if (hupDuringStart) reload('SIGHUP during start', true);
  // Not persistent: the watch never keeps a stopping process alive.
  watchConfigFile(file, () => reload('file changed', false));
  reload('file changed during start', false);
  // `keys activate` (or rotate, prune) rewrote keyring.json: load the keyring again.
  const keyring = loaded.keyring;
  if (keyring) {
    await mkdir(keyring.dir, { recursive: true, mode: 0o700 });
    watchConfigFile(join(keyring.dir, MANIFEST_FILE), () => reload('keyring changed', true));
    // A `keys activate` between loading the keyring and watching it would go unseen until the next one.
    const started = JSON.stringify(keyring.keys.flatMap((k) => (k.source === 'config' ? [] : [k.source])));
    const now = await readManifest(keyring.dir).catch(() => undefined);
    if (now && JSON.stringify(now.keys) !== started) reload('keyring changed during start', true);
  }
  // A worker whose primary is gone has nobody to restart or stop it: it finishes and exits.
  if (cluster.isWorker) process.on('disconnect', () => stop('primary gone'));
}

const program = new Command()
  .name('sts-docker-auth')
  .description('Token authentication server for private Docker/OCI registries')
  .showHelpAfterError();

const configOption = () => new Option('-c, --config <file>', 'config file (default: $STS_DATA_DIR/config.yml, created on first start)');

program
  .command('serve', { isDefault: true })
  .description('run the token server')
  .addOption(configOption())
  .option('--workers <n>', 'processes serving requests (a number or auto); default server.workers', workersOption)
  .action(async (opts: { config?: string; workers?: number | 'auto' }) => serve(opts.config, opts.workers));

program
  .command('init')
  .description('create the data folder as the first start does (key, certificate, config, admin password), then exit')
  .option('--data-dir <dir>', 'the data folder (default: $STS_DATA_DIR or ./data)')
  .action(async (opts: { dataDir?: string }) => {
    const outcome = await initDataDir(opts.dataDir ?? dataDir());
    (outcome.created ? process.stdout : process.stderr).write(outcome.message);
  });

program
  .command('check-config')
  .description('validate a config file; exits non-zero with the problems')
  .argument('[file]', 'config file', undefined)
  .option('--docker-auth <file>', "report what in a docker_auth config behaves differently here; exits 2 unless it runs unmodified")
  .action(async (file: string | undefined, opts: { dockerAuth?: string }) => {
    if (opts.dockerAuth !== undefined) {
      if (file !== undefined) throw new InvalidArgumentError('give either a config file or --docker-auth FILE, not both');
      const { checkDockerAuthConfig, formatCompatReport } = await import('../config/docker-auth-compat.js');
      const report = await checkDockerAuthConfig(opts.dockerAuth);
      console.log(formatCompatReport(report));
      process.exitCode = report.runsUnmodified ? 0 : 2;
      return;
    }
    const loaded = await checkConfig(file ?? defaultConfigPath());
    console.log(describeConfig(loaded));
  });

program
  .command('hash-password')
  .description('make a bcrypt hash of a password read from stdin or a prompt (never from argv)')
  .option('--cost <n>', 'bcrypt cost', cost, 10)
  .action(async (opts: { cost: number }) => {
    console.log(await hashPasswordCommand(opts.cost));
  });

program
  .command('import-users')
  .description('turn a {"user": "password"} JSON file into a users: section with bcrypt hashes')
  .argument('<file>', 'JSON users file')
  .option('--cost <n>', 'bcrypt cost', cost, 10)
  .action(async (file: string, opts: { cost: number }) => {
    process.stdout.write(await importUsers(file, opts.cost));
  });

program
  .command('explain')
  .description('show which rule decides each scope for an account and what would be granted')
  .requiredOption('--account <name>', 'the account ("" for anonymous)')
  .requiredOption('--scope <scope>', 'a scope such as repository:team/app:push (repeatable)', collect, [])
  .option('--service <name>', 'the registry service (default: the first of token.services)')
  .option('--ip <address>', 'the client address')
  .option('--labels <k=v,...>', 'labels to use instead of the static user\'s (repeatable)', collect, [])
  .addOption(configOption())
  .action(async (opts: { account: string; scope: string[]; service?: string; ip?: string; labels: string[]; config?: string }) => {
    const loaded = await loadConfig(opts.config ?? defaultConfigPath());
    const explainOptions = { account: opts.account, scopes: opts.scope, labels: opts.labels } as Parameters<typeof explain>[1];
    if (opts.service) explainOptions.service = opts.service;
    if (opts.ip) explainOptions.ip = opts.ip;
    // Store users and stored rules take part too, exactly as in a token request.
    const store = await prepareStore(loaded);
    try {
      console.log(await explain(loaded, explainOptions, store));
    } finally {
      await store?.close();
    }
  });

program
  .command('registry-config')
  .description('print the registry config block matching this server (distribution 2.8, 3.x, zot)')
  .addOption(configOption())
  .addOption(new Option('--format <format>', 'which registry').choices(['distribution2', 'distribution3', 'zot', 'all']).default('all'))
  .option('--realm <url>', 'the token URL clients reach (default: from server.public_url or server.addr)')
  .option('--service <name>', 'the registry service (default: the first of token.services)')
  .option('--bundle-path <path>', 'the certificate bundle path as the registry sees it')
  .option('--jwks-path <path>', 'the JWKS path as the registry sees it (3.x)')
  .option('--write-bundle <file>', 'write the signing certificate (rootcertbundle) to this file')
  .option('--write-jwks <file>', 'write a JWKS for distribution 3.x to this file')
  .action(async (opts: Record<string, string | undefined> & { format: 'all' }) => {
    const loaded = await loadConfig(opts.config ?? defaultConfigPath());
    const options: Parameters<typeof registryConfig>[1] = { format: opts.format };
    if (opts.realm) options.realm = opts.realm;
    if (opts.service) options.service = opts.service;
    if (opts.bundlePath) options.bundlePath = opts.bundlePath;
    if (opts.jwksPath) options.jwksPath = opts.jwksPath;
    if (opts.writeBundle) options.writeBundle = opts.writeBundle;
    if (opts.writeJwks) options.writeJwks = opts.writeJwks;
    process.stdout.write(await registryConfig(loaded, options));
  });

registerAdminCommands(program);
registerKeyCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
  else process.stderr.write(`sts-docker-auth: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
