/**
 * `sts-docker-auth users|groups|acl|tokens|refresh-tokens|migrate`: administration of the store
 * from the command line. Every check lives in AdminService; this file parses arguments, opens and
 * always closes the store, prints, and turns errors into exit codes:
 *
 * - 1: bad input, a name already taken, something that does not exist
 * - 2: the config cannot serve (invalid, or without a `store` section)
 * - 3: the store cannot be reached or failed
 *
 * Nothing printed ever holds a password hash or a token digest; a new access token's secret is
 * printed once, alone on stdout.
 */
import { userInfo } from 'node:os';
import { Option, type Command } from 'commander';
import { AdminInputError, AdminService, parseExpiry, parseLabelPairs } from '../admin/service.js';
import { ConfigError } from '../config/errors.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { buildIssuer } from '../server/app.js';
import { checkNameClashes, openConfiguredStore } from '../store/from-config.js';
import {
  StoreConflictError,
  StoreNotFoundError,
  StoreUnavailableError,
  type AccessTokenRecord,
  type Labels,
  type RefreshTokenRecord,
  type Store,
  type StoredGroup,
  type StoredRule,
  type StoredUser,
} from '../store/types.js';
import { defaultConfigPath, explain, type ExplainOptions } from './commands.js';
import { readSecret } from './read-secret.js';

const NO_STORE = 'this config has no store section; add `store: {driver: sqlite}` to keep users, groups, rules and tokens in a database';
const DEFAULT_TOKEN_EXPIRY = 90 * 86_400;

/** The config has no `store` section: nothing to administer. Exit 2, like any config problem. */
class NoStoreError extends Error {
  override name = 'NoStoreError';
}

interface Admin {
  loaded: LoadedConfig;
  store: Store;
  service: AdminService;
  actor: string;
}

interface ConfigOpts {
  config?: string;
}

interface JsonOpts extends ConfigOpts {
  json?: boolean;
}

/** Who acts, for the change log. */
function cliActor(): string {
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry for this uid (some containers).
    name = process.env.USER ?? process.env.LOGNAME;
  }
  return `cli:${name || `uid ${process.getuid?.() ?? '?'}`}`;
}

/** Opens and migrates the configured store. A name clash with the config's users is only a warning here: `users rm` is how it gets fixed. */
async function openAdmin(configPath: string): Promise<Admin> {
  const loaded = await loadConfig(configPath);
  if (!loaded.config.store) throw new NoStoreError(`${loaded.source}: ${NO_STORE}`);
  const store = await openConfiguredStore(loaded);
  if (!store) throw new NoStoreError(`${loaded.source}: ${NO_STORE}`);
  try {
    await store.migrate();
    await warnOnClashes(loaded, store);
    const { directory } = buildIssuer(loaded, { store });
    return { loaded, store, service: new AdminService(store, loaded, directory), actor: cliActor() };
  } catch (err) {
    await store.close();
    throw err;
  }
}

async function warnOnClashes(loaded: LoadedConfig, store: Store): Promise<void> {
  try {
    await checkNameClashes(loaded, store);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) process.stderr.write(`warning: ${issue.path}: ${issue.message}; the server refuses to start until then\n`);
  }
}

/**
 * Runs an admin action against the store and always closes it. Known errors become a message on
 * stderr and an exit code; anything else goes on to the program's own handler.
 */
async function run(opts: ConfigOpts, action: (admin: Admin) => Promise<void>): Promise<void> {
  try {
    const admin = await openAdmin(opts.config ?? defaultConfigPath());
    try {
      await action(admin);
    } finally {
      await admin.store.close();
    }
  } catch (err) {
    const code = exitCodeOf(err);
    if (code === undefined) throw err;
    process.stderr.write(`sts-docker-auth: ${(err as Error).message}\n`);
    process.exitCode = code;
  }
}

function exitCodeOf(err: unknown): number | undefined {
  if (err instanceof AdminInputError || err instanceof StoreConflictError || err instanceof StoreNotFoundError) return 1;
  if (err instanceof NoStoreError) return 2;
  if (err instanceof StoreUnavailableError) return 3;
  return undefined;
}

// --- output --------------------------------------------------------------------------------

/** Control characters (label values and comments may hold anything) shown escaped, never sent to the terminal. */
function clean(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    out += code < 0x20 || (code >= 0x7f && code <= 0x9f) ? `\\u${code.toString(16).padStart(4, '0')}` : ch;
  }
  return out;
}

/** Columns padded to their widest cell, two spaces apart. */
function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => clean(r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => clean(c).padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** `key  value` lines, the values aligned. */
function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([key]) => key.length));
  return pairs.map(([key, value]) => `${key.padEnd(width)}  ${clean(value)}`).join('\n');
}

function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/** `2025-01-31T12:00:00Z`, or null. */
function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function time(ms: number | null, none = '-'): string {
  return iso(ms) ?? none;
}

function labelText(labels: Labels): string {
  return Object.entries(labels)
    .flatMap(([key, values]) => values.map((v) => `${key}=${v}`))
    .join(',');
}

function list(values: readonly string[]): string {
  return values.length > 0 ? values.join(',') : '-';
}

// What is shown of each record: never the password hash or a token digest.

function userView(u: StoredUser) {
  return {
    name: u.name,
    robot: u.passwordHash === null,
    disabled: u.disabled,
    labels: u.labels,
    groups: u.groups,
    createdAt: iso(u.createdAt),
    updatedAt: iso(u.updatedAt),
  };
}

function groupView(g: StoredGroup) {
  return { name: g.name, labels: g.labels, members: g.members, createdAt: iso(g.createdAt) };
}

function ruleView(r: StoredRule) {
  return { id: r.id, position: r.position, rule: r.rule, createdAt: iso(r.createdAt) };
}

function tokenView(t: AccessTokenRecord) {
  return {
    id: t.id,
    user: t.user,
    name: t.name,
    scopes: t.scopes,
    createdAt: iso(t.createdAt),
    expiresAt: iso(t.expiresAt),
    lastUsedAt: iso(t.lastUsedAt),
    lastUsedIp: t.lastUsedIp,
    revokedAt: iso(t.revokedAt),
  };
}

function refreshView(t: RefreshTokenRecord) {
  return {
    id: t.id,
    user: t.user,
    service: t.service,
    clientId: t.clientId,
    createdAt: iso(t.createdAt),
    lastUsedAt: iso(t.lastUsedAt),
    expiresAt: iso(t.expiresAt),
    revokedAt: iso(t.revokedAt),
  };
}

// --- argument parsing ------------------------------------------------------------------------

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseJsonOption(option: string, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new AdminInputError(`${option} is not valid JSON: ${(err as Error).message}`);
  }
}

function parsePosition(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new AdminInputError(`--position ${JSON.stringify(text)}: use a whole number from 0`);
  return n;
}

/** Refuses a config user before a password prompt rather than after it. */
function refuseConfigUser(loaded: LoadedConfig, name: string): void {
  if (loaded.config.users && Object.hasOwn(loaded.config.users, name)) {
    throw new AdminInputError(`${name} is a user of the config file (${loaded.source}); manage it there`);
  }
}

async function requireStoreUser(admin: Admin, name: string): Promise<StoredUser> {
  refuseConfigUser(admin.loaded, name);
  const user = await admin.service.getUser(name);
  if (!user) throw new StoreNotFoundError('user', name);
  return user;
}

async function readPassword(): Promise<string> {
  const password = await readSecret('Password');
  if (password.length === 0) throw new AdminInputError('the password is empty');
  return password;
}

// --- commands ------------------------------------------------------------------------------

const configOption = () => new Option('-c, --config <file>', 'config file (default: $STS_DATA_DIR/config.yml)');
const jsonOption = () => new Option('--json', 'print JSON instead of a table');
const labelsOption = () => new Option('--labels <k=v,...>', 'labels (repeatable)').argParser(collect).default([]);

function registerUsers(program: Command): void {
  const users = program.command('users').description('manage the users kept in the store');

  users
    .command('add')
    .description('add a user; the password is read from stdin or a prompt (never argv)')
    .argument('<name>', 'user name')
    .addOption(labelsOption())
    .option('--robot', 'no password: the account signs in only with its access tokens')
    .addOption(configOption())
    .action((name: string, opts: ConfigOpts & { labels: string[]; robot?: boolean }) =>
      run(opts, async (admin) => {
        const labels = parseLabelPairs(opts.labels);
        refuseConfigUser(admin.loaded, name);
        if (await admin.service.getUser(name)) throw new StoreConflictError('user', name);
        const password = opts.robot ? null : await readPassword();
        const user = await admin.service.addUser({ name, password, labels }, admin.actor);
        print(`added user ${user.name}${user.passwordHash === null ? ' (robot: signs in with access tokens only)' : ''}`);
      }),
    );

  users
    .command('list')
    .description('list the users in the store')
    .addOption(jsonOption())
    .addOption(configOption())
    .action((opts: JsonOpts) =>
      run(opts, async (admin) => {
        const all = await admin.service.listUsers();
        if (opts.json) return printJson(all.map(userView));
        print(
          table(
            ['NAME', 'KIND', 'STATUS', 'GROUPS', 'LABELS', 'CREATED', 'UPDATED'],
            all.map((u) => [
              u.name,
              u.passwordHash === null ? 'robot' : 'password',
              u.disabled ? 'disabled' : 'enabled',
              list(u.groups),
              labelText(u.labels) || '-',
              time(u.createdAt),
              time(u.updatedAt),
            ]),
          ),
        );
      }),
    );

  users
    .command('show')
    .description('show one user')
    .argument('<name>', 'user name')
    .addOption(jsonOption())
    .addOption(configOption())
    .action((name: string, opts: JsonOpts) =>
      run(opts, async (admin) => {
        const user = await requireStoreUser(admin, name);
        if (opts.json) return printJson(userView(user));
        print(
          fields([
            ['name', user.name],
            ['kind', user.passwordHash === null ? 'robot (access tokens only)' : 'password'],
            ['status', user.disabled ? 'disabled' : 'enabled'],
            ['groups', list(user.groups)],
            ['labels', labelText(user.labels) || '-'],
            ['created', time(user.createdAt)],
            ['updated', time(user.updatedAt)],
          ]),
        );
      }),
    );

  users
    .command('passwd')
    .description("set a user's password, read from stdin or a prompt (never argv)")
    .argument('<name>', 'user name')
    .addOption(configOption())
    .action((name: string, opts: ConfigOpts) =>
      run(opts, async (admin) => {
        await requireStoreUser(admin, name);
        await admin.service.setPassword(name, await readPassword(), admin.actor);
        print(`changed the password of ${name}`);
      }),
    );

  for (const [command, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    users
      .command(command)
      .description(disabled ? 'stop a user (and its tokens) from signing in' : 'let a disabled user sign in again')
      .argument('<name>', 'user name')
      .addOption(configOption())
      .action((name: string, opts: ConfigOpts) =>
        run(opts, async (admin) => {
          await admin.service.setDisabled(name, disabled, admin.actor);
          print(`${disabled ? 'disabled' : 'enabled'} user ${name}`);
        }),
      );
  }

  users
    .command('rm')
    .description('remove a user with its memberships, access tokens and refresh tokens')
    .argument('<name>', 'user name')
    .addOption(configOption())
    .action((name: string, opts: ConfigOpts) =>
      run(opts, async (admin) => {
        await admin.service.removeUser(name, admin.actor);
        print(`removed user ${name}`);
      }),
    );

  users
    .command('set-labels')
    .description("replace a user's labels (none given: clear them)")
    .argument('<name>', 'user name')
    .addOption(labelsOption())
    .addOption(configOption())
    .action((name: string, opts: ConfigOpts & { labels: string[] }) =>
      run(opts, async (admin) => {
        const user = await admin.service.setLabels(name, parseLabelPairs(opts.labels), admin.actor);
        print(`labels of ${name}: ${labelText(user.labels) || '(none)'}`);
      }),
    );
}

function registerGroups(program: Command): void {
  const groups = program.command('groups').description('manage the groups kept in the store');

  groups
    .command('add')
    .description('add a group; its labels apply to its members')
    .argument('<name>', 'group name')
    .addOption(labelsOption())
    .addOption(configOption())
    .action((name: string, opts: ConfigOpts & { labels: string[] }) =>
      run(opts, async (admin) => {
        const group = await admin.service.addGroup(name, parseLabelPairs(opts.labels), admin.actor);
        print(`added group ${group.name}`);
      }),
    );

  groups
    .command('list')
    .description('list the groups with their members')
    .addOption(jsonOption())
    .addOption(configOption())
    .action((opts: JsonOpts) =>
      run(opts, async (admin) => {
        const all = await admin.service.listGroups();
        if (opts.json) return printJson(all.map(groupView));
        print(
          table(
            ['NAME', 'MEMBERS', 'LABELS', 'CREATED'],
            all.map((g) => [g.name, list(g.members), labelText(g.labels) || '-', time(g.createdAt)]),
          ),
        );
      }),
    );

  groups
    .command('rm')
    .description('remove a group (its members stay)')
    .argument('<name>', 'group name')
    .addOption(configOption())
    .action((name: string, opts: ConfigOpts) =>
      run(opts, async (admin) => {
        await admin.service.removeGroup(name, admin.actor);
        print(`removed group ${name}`);
      }),
    );

  groups
    .command('add-member')
    .description('add a store user to a group')
    .argument('<group>', 'group name')
    .argument('<user>', 'user name')
    .addOption(configOption())
    .action((group: string, user: string, opts: ConfigOpts) =>
      run(opts, async (admin) => {
        await admin.service.addMember(group, user, admin.actor);
        print(`added ${user} to ${group}`);
      }),
    );

  groups
    .command('remove-member')
    .description('remove a user from a group')
    .argument('<group>', 'group name')
    .argument('<user>', 'user name')
    .addOption(configOption())
    .action((group: string, user: string, opts: ConfigOpts) =>
      run(opts, async (admin) => {
        await admin.service.removeMember(group, user, admin.actor);
        print(`removed ${user} from ${group}`);
      }),
    );
}

interface AclAddOpts extends ConfigOpts {
  match?: string;
  actions: string[];
  comment?: string;
  rule?: string;
  position?: string;
}

function ruleFromOptions(opts: AclAddOpts): unknown {
  if (opts.rule !== undefined) {
    if (opts.match !== undefined || opts.actions.length > 0 || opts.comment !== undefined) {
      throw new AdminInputError('--rule takes the whole rule: give it alone, or use --match with --actions (and --comment)');
    }
    return parseJsonOption('--rule', opts.rule);
  }
  if (opts.match === undefined || opts.actions.length === 0) {
    throw new AdminInputError('give --match \'<json>\' and --actions pull,push, or --rule \'<json of the whole rule>\'');
  }
  const actions = opts.actions.flatMap((a) => a.split(',')).filter((a) => a !== '');
  return {
    match: parseJsonOption('--match', opts.match),
    actions,
    ...(opts.comment !== undefined ? { comment: opts.comment } : {}),
  };
}

function registerAcl(program: Command): void {
  const acl = program.command('acl').description("manage the store's ACL rules (evaluated after the config's own)");

  acl
    .command('add')
    .description('add a rule, validated as the config\'s acl entries are')
    .option('--match <json>', 'what the rule matches, e.g. \'{"account":"ci-*","name":"team/*"}\'')
    .option('--actions <list>', 'the actions it grants, e.g. pull,push ("" for none; repeatable)', collect, [])
    .option('--comment <text>', 'a note kept with the rule')
    .option('--rule <json>', 'the whole rule as JSON instead of --match/--actions/--comment')
    .option('--position <n>', 'insert at this position (0 first) instead of appending')
    .addOption(configOption())
    .action((opts: AclAddOpts) =>
      run(opts, async (admin) => {
        const rule = await admin.service.addRule(ruleFromOptions(opts), parsePosition(opts.position), admin.actor);
        print(`added rule ${rule.id} at position ${rule.position}`);
      }),
    );

  acl
    .command('list')
    .description("list the store's rules in evaluation order")
    .addOption(jsonOption())
    .addOption(configOption())
    .action((opts: JsonOpts) =>
      run(opts, async (admin) => {
        const rules = await admin.service.listRules();
        if (opts.json) return printJson(rules.map(ruleView));
        const own = admin.loaded.acl.rules.length;
        if (own > 0) process.stderr.write(`note: the config file's ${own} rule(s) are evaluated before these\n`);
        print(
          table(
            ['ID', 'POSITION', 'MATCH', 'ACTIONS', 'COMMENT', 'CREATED'],
            rules.map((r) => [
              r.id,
              String(r.position),
              JSON.stringify(r.rule.match),
              r.rule.actions.length > 0 ? r.rule.actions.join(',') : '(none)',
              r.rule.comment ?? '',
              time(r.createdAt),
            ]),
          ),
        );
      }),
    );

  acl
    .command('rm')
    .description('remove a rule')
    .argument('<id>', 'rule id (see acl list)')
    .addOption(configOption())
    .action((id: string, opts: ConfigOpts) =>
      run(opts, async (admin) => {
        await admin.service.removeRule(id, admin.actor);
        print(`removed rule ${id}`);
      }),
    );

  acl
    .command('test')
    .description('show which rule (config or store) decides each scope for an account')
    .requiredOption('--account <name>', 'the account ("" for anonymous)')
    .requiredOption('--scope <scope>', 'a scope such as repository:team/app:push (repeatable)', collect, [])
    .option('--service <name>', 'the registry service (default: the first of token.services)')
    .option('--ip <address>', 'the client address')
    .option('--labels <k=v,...>', "labels to use instead of the user's (repeatable)", collect, [])
    .addOption(configOption())
    .action((opts: ConfigOpts & { account: string; scope: string[]; service?: string; ip?: string; labels: string[] }) =>
      run(opts, async (admin) => {
        if (opts.labels.length > 0) parseLabelPairs(opts.labels); // the same check as everywhere else
        const options: ExplainOptions = { account: opts.account, scopes: opts.scope, labels: opts.labels };
        if (opts.service) options.service = opts.service;
        if (opts.ip) options.ip = opts.ip;
        print(await explain(admin.loaded, options, admin.store));
      }),
    );
}

function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description('manage access tokens (stsat_...), used as passwords by CI and robots');

  tokens
    .command('create')
    .description('create an access token; prints its secret once, alone on stdout')
    .requiredOption('--user <name>', 'the owner (a store or config user)')
    .requiredOption('--name <name>', "a name for the token, unique among the owner's")
    .requiredOption('--scope <pattern>', 'what it may be used for, e.g. repository:team/*:pull (repeatable)', collect, [])
    .option('--expires <duration>', 'lifetime such as 30d, 12h, 3600, or never (default 90d, or access_tokens.max_lifetime if shorter)')
    .addOption(configOption())
    .action((opts: ConfigOpts & { user: string; name: string; scope: string[]; expires?: string }) =>
      run(opts, async (admin) => {
        const max = admin.loaded.config.access_tokens.max_lifetime;
        const expiresIn = opts.expires === undefined ? Math.min(DEFAULT_TOKEN_EXPIRY, max ?? Infinity) : parseExpiry(opts.expires);
        const created = await admin.service.createToken({ user: opts.user, name: opts.name, scopes: opts.scope, expiresIn }, admin.actor);
        const { record } = created;
        process.stderr.write(
          `created access token ${record.id} (${record.name}) for ${record.user}, scopes ${record.scopes.join(' ')}, ` +
            `expires ${time(record.expiresAt, 'never')}\n` +
            'the secret below is shown only this once; use it as the password with the user name\n',
        );
        for (const warning of created.warnings) process.stderr.write(`warning: ${warning}\n`);
        print(created.secret);
      }),
    );

  tokens
    .command('list')
    .description('list access tokens (never their secrets)')
    .option('--user <name>', 'only this user\'s')
    .addOption(jsonOption())
    .addOption(configOption())
    .action((opts: JsonOpts & { user?: string }) =>
      run(opts, async (admin) => {
        const all = await admin.service.listTokens(opts.user);
        if (opts.json) return printJson(all.map(tokenView));
        print(
          table(
            ['ID', 'USER', 'NAME', 'SCOPES', 'CREATED', 'EXPIRES', 'LAST USED', 'REVOKED'],
            all.map((t) => [
              t.id,
              t.user,
              t.name,
              t.scopes.join(' '),
              time(t.createdAt),
              time(t.expiresAt, 'never'),
              t.lastUsedAt === null ? '-' : `${time(t.lastUsedAt)}${t.lastUsedIp ? ` from ${t.lastUsedIp}` : ''}`,
              time(t.revokedAt),
            ]),
          ),
        );
      }),
    );

  tokens
    .command('revoke')
    .description('revoke an access token; it stops working at once')
    .argument('<id>', 'token id (see tokens list)')
    .addOption(configOption())
    .action((id: string, opts: ConfigOpts) =>
      run(opts, async (admin) => {
        await admin.service.revokeToken(id, admin.actor);
        print(`revoked access token ${id}`);
      }),
    );
}

function registerRefreshTokens(program: Command): void {
  const refresh = program.command('refresh-tokens').description('manage the refresh tokens (stsrt_...) handed to docker login');

  refresh
    .command('list')
    .description('list refresh tokens (never their secrets)')
    .option('--user <name>', "only this user's")
    .addOption(jsonOption())
    .addOption(configOption())
    .action((opts: JsonOpts & { user?: string }) =>
      run(opts, async (admin) => {
        const all = await admin.service.listRefreshTokens(opts.user);
        if (opts.json) return printJson(all.map(refreshView));
        print(
          table(
            ['ID', 'USER', 'SERVICE', 'CLIENT', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED'],
            all.map((t) => [t.id, t.user, t.service, t.clientId ?? '-', time(t.createdAt), time(t.lastUsedAt), time(t.expiresAt), time(t.revokedAt)]),
          ),
        );
      }),
    );

  refresh
    .command('revoke')
    .description('revoke one refresh token, all of a user\'s, or all of them')
    .argument('[id]', 'refresh token id (see refresh-tokens list)')
    .option('--user <name>', "revoke all of this user's")
    .option('--all', 'revoke every refresh token')
    .addOption(configOption())
    .action((id: string | undefined, opts: ConfigOpts & { user?: string; all?: boolean }) =>
      run(opts, async (admin) => {
        const given = [id !== undefined, opts.user !== undefined, opts.all === true].filter(Boolean).length;
        if (given !== 1) throw new AdminInputError('give exactly one of: a refresh token id, --user <name>, --all');
        const target = id !== undefined ? { id } : opts.user !== undefined ? { user: opts.user } : { all: true as const };
        const count = await admin.service.revokeRefreshTokens(target, admin.actor);
        print(`revoked ${count} refresh token${count === 1 ? '' : 's'}`);
      }),
    );
}

function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('bring the store schema up to date (serve and the admin commands also do this)')
    .addOption(configOption())
    .action(async (opts: ConfigOpts) => {
      try {
        const loaded = await loadConfig(opts.config ?? defaultConfigPath());
        const store = loaded.config.store ? await openConfiguredStore(loaded) : undefined;
        if (!store) throw new NoStoreError(`${loaded.source}: ${NO_STORE}`);
        try {
          const { from, to } = await store.migrate();
          print(`schema version ${from} -> ${to}`);
          await warnOnClashes(loaded, store);
        } finally {
          await store.close();
        }
      } catch (err) {
        const code = exitCodeOf(err);
        if (code === undefined) throw err;
        process.stderr.write(`sts-docker-auth: ${(err as Error).message}\n`);
        process.exitCode = code;
      }
    });
}

/** Adds `users`, `groups`, `acl`, `tokens`, `refresh-tokens` and `migrate` to the program. */
export function registerAdminCommands(program: Command): void {
  registerUsers(program);
  registerGroups(program);
  registerAcl(program);
  registerTokens(program);
  registerRefreshTokens(program);
  registerMigrate(program);
}
