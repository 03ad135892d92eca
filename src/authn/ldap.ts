import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import type { Entry } from 'ldapts';
import { z } from 'zod';
import type { ConfigIssue } from '../config/errors.js';
import { CredentialCache } from '../security/credential-cache.js';
import { BackendUnavailableError } from './errors.js';
import { ldapts } from './ldapts.js';
import { LdapConnection, LdapPool, type LdapEndpoint, type SearchScope } from './ldap-connection.js';
import { commonNameOf, escapeDnValue, escapeFilterValue, fillTemplate } from './ldap-escape.js';
import { NO_MATCH, type Authenticator, type AuthnResult, type Credentials, type Identity } from './types.js';

/**
 * `ldap_auth`: users of an LDAP directory (OpenLDAP, Active Directory, 389-ds, ...), with
 * docker_auth's keys and meaning, so that its `ldap_auth` section runs unmodified.
 *
 * - search-then-bind (the default): a service account (`bind_dn`, or anonymous) searches `base`
 *   with `filter`; exactly one entry must match; then the user's password is checked by binding
 *   as that entry's DN on a connection of its own.
 * - direct bind (`initial_bind_as_user`): bind as `bind_dn` with `${account}` filled in; then, as
 *   the user, read the entry (with `base` and `filter` when they are set) for labels.
 *
 * Labels come from attributes of the entry (`memberOf` with `parse_cn`), or, for directories
 * without `memberOf`, from a group search (`group_search`). Our additions to docker_auth's keys:
 * `group_search`, `timeout`, `pool_size` and `cache_ttl`.
 */

const nonEmpty = z.string().min(1, 'must not be empty');
/** docker_auth's sample files leave unused keys empty (`bind_dn:`), which YAML reads as null. */
const optionalText = z.string().nullish();

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/;
const PLACEHOLDER = /\$\{(\w+)\}/g;
const HAS_PLACEHOLDER = /\$\{\w+\}/;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
/** Seconds, as a number or a string such as `500ms`, `5s`, `2m`; parsed to seconds. */
const seconds = (what: string) =>
  z.union([
    z.number().nonnegative(`${what} must not be negative`),
    z
      .string()
      .regex(DURATION, 'must be a number of seconds or a duration such as 500ms, 5s, 2m or 1h')
      .transform((value) => {
        const [, amount, unit] = DURATION.exec(value) as RegExpExecArray;
        return Number(amount) * (UNIT_SECONDS[unit as string] as number);
      }),
  ]);

export const ldapLabelSchema = z.strictObject({
  attribute: nonEmpty.describe('the attribute of the user entry whose values make the label (memberOf, title, ...)'),
  parse_cn: z.boolean().nullish().describe('keep only the CN of DN values: cn=Devs,ou=groups,... -> Devs'),
  lower_case: z.boolean().nullish().describe('lower-case the values'),
});

export const ldapGroupSearchSchema = z.strictObject({
  base: nonEmpty.describe('where the groups are searched (subtree)'),
  filter: nonEmpty.describe('the groups of a user; ${dn} is the user entry DN, ${account} the user name'),
  attribute: nonEmpty
    .default('memberOf')
    .describe('the attribute of the user entry the found groups DNs are added to, for labels to map'),
});

export const ldapAuthSchema = z
  .strictObject({
    addr: nonEmpty
      .regex(HOST_PORT, 'must be host:port (or [v6]:port)')
      .refine((addr) => Number(addr.slice(addr.lastIndexOf(':') + 1)) <= 65535, 'the port must be at most 65535')
      .describe('the LDAP server, host:port; port 636 means tls: always unless tls says otherwise'),
    tls: z
      .enum(['', 'none', 'starttls', 'always'])
      .nullish()
      .describe('"" or none: plain LDAP; starttls: upgrade with StartTLS; always: LDAPS'),
    insecure_tls_skip_verify: z.boolean().nullish().describe("accept any server certificate (don't)"),
    ca_certificate: optionalText.describe("the CA (PEM) that signed the server's certificate; the system's CAs when unset"),
    base: optionalText.describe('where users are searched (subtree)'),
    filter: optionalText.describe('the search filter; ${account} is the user name, escaped (RFC 4515)'),
    bind_dn: optionalText.describe('the service account; with initial_bind_as_user, the user DN template with ${account}'),
    bind_password_file: optionalText.describe("a file holding the service account's password"),
    initial_bind_as_user: z.boolean().nullish().describe('bind as the user (bind_dn with ${account}) instead of searching first'),
    labels: z.record(nonEmpty, ldapLabelSchema).nullish().describe('labels made from attributes of the user entry'),
    group_search: ldapGroupSearchSchema.optional().describe('find groups by searching them, for directories without memberOf'),
    timeout: seconds('timeout')
      .refine((s) => s > 0 && s <= 300, 'must be more than 0 and at most 300 seconds')
      .default(5)
      .describe('the deadline of each LDAP operation (connect, TLS, bind, search)'),
    pool_size: z.int().min(1).max(64).default(4).describe('service-account connections kept open for searches'),
    cache_ttl: seconds('cache_ttl')
      .refine((s) => s <= 3600, 'must be at most 3600 seconds')
      .default(60)
      .describe('how long a successful login is remembered without asking the directory; 0 never'),
  })
  .superRefine((section, ctx) => {
    const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const checkTemplate = (path: string[], template: string, allowed: readonly string[], needed: readonly string[], isFilter: boolean) => {
      const used = [...template.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
      const unknown = used.filter((name) => !allowed.includes(name));
      if (unknown.length > 0) {
        issue(path, `has an unknown placeholder \${${unknown[0]}}; it takes ${allowed.map((a) => `\${${a}}`).join(' and ')}`);
        return;
      }
      if (!needed.some((name) => used.includes(name))) {
        issue(path, `must contain ${needed.map((n) => `\${${n}}`).join(' or ')}: without it every user would be the same entry`);
        return;
      }
      if (isFilter) {
        // ldapts forgives a missing last ")"; the server might not, so neither do we.
        let depth = 0;
        for (const c of template) {
          depth += c === '(' ? 1 : c === ')' ? -1 : 0;
          if (depth < 0) break;
        }
        if (depth !== 0) {
          issue(path, 'is not a valid LDAP filter: unbalanced parentheses');
          return;
        }
        try {
          ldapts().FilterParser.parseString(template.replace(PLACEHOLDER, 'x'));
        } catch (err) {
          issue(path, `is not a valid LDAP filter: ${(err as Error).message.split(': ')[0]}`);
        }
      }
    };
    if (section.initial_bind_as_user) {
      if (!section.bind_dn) issue(['bind_dn'], 'is required with initial_bind_as_user: the user DN, with ${account}');
      else checkTemplate(['bind_dn'], section.bind_dn, ['account'], ['account'], false);
      if (section.filter) checkTemplate(['filter'], section.filter, ['account'], ['account'], true);
      if (section.filter && !section.base) issue(['base'], 'is required with filter');
    } else {
      if (!section.base) issue(['base'], 'is required: where users are searched');
      if (!section.filter) issue(['filter'], 'is required: how a user is found, e.g. (uid=${account})');
      else checkTemplate(['filter'], section.filter, ['account'], ['account'], true);
      if (section.bind_dn && HAS_PLACEHOLDER.test(section.bind_dn)) {
        issue(['bind_dn'], 'holds ${account}, which only initial_bind_as_user: true fills in');
      }
      if (section.bind_dn && !section.bind_password_file) issue(['bind_password_file'], 'is required with bind_dn');
      if (!section.bind_dn && section.bind_password_file) issue(['bind_dn'], 'is required with bind_password_file');
    }
    if (section.group_search) {
      checkTemplate(['group_search', 'filter'], section.group_search.filter, ['dn', 'account'], ['dn', 'account'], true);
    }
  });

export type LdapAuthConfig = z.output<typeof ldapAuthSchema>;

/** What is read from files at start, so that check-config reports a missing or bad file. */
export interface PreparedLdap {
  /** CA certificates (PEM) from ca_certificate. */
  ca?: string;
  /** The service account's password, read at start. */
  bindPassword?: string;
  /** Where it came from (absolute), read again whenever a new service connection binds. */
  bindPasswordPath?: string;
}

const absolute = (baseDir: string, file: string) => (isAbsolute(file) ? file : resolve(baseDir, file));

async function readBindPassword(path: string): Promise<string> {
  // docker_auth trims the file, so a trailing newline is never part of the password.
  const password = (await readFile(path, 'utf8')).trim();
  if (password === '') throw new Error(`${path} is empty`);
  return password;
}

/** Reads and checks ldap_auth's files; problems go to `issues` with their key path. */
export async function prepareLdapAuth(section: LdapAuthConfig, baseDir: string, issues: ConfigIssue[]): Promise<PreparedLdap> {
  const prepared: PreparedLdap = {};
  const fail = (key: string, err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    issues.push({ path: `ldap_auth.${key}`, message: code === 'ENOENT' ? `cannot read ${(err as { path?: string }).path ?? ''}: no such file` : (err as Error).message });
  };
  if (section.bind_password_file && !section.initial_bind_as_user) {
    const path = absolute(baseDir, section.bind_password_file);
    try {
      prepared.bindPassword = await readBindPassword(path);
      prepared.bindPasswordPath = path;
    } catch (err) {
      fail('bind_password_file', err);
    }
  }
  if (section.ca_certificate) {
    const path = absolute(baseDir, section.ca_certificate);
    try {
      const pem = await readFile(path, 'utf8');
      const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (blocks.length === 0) throw new Error(`${path} holds no PEM certificate`);
      for (const block of blocks) {
        try {
          new X509Certificate(block);
        } catch (err) {
          throw new Error(`${path} holds a certificate that cannot be read: ${(err as Error).message}`, { cause: err });
        }
      }
      prepared.ca = pem;
    } catch (err) {
      fail('ca_certificate', err);
    }
  }
  return prepared;
}

/** The endpoint ldap_auth names: host, port and the TLS mode (docker_auth: `always` on 636). */
export function endpointOf(section: LdapAuthConfig, prepared: PreparedLdap, backend = 'ldap'): LdapEndpoint {
  const [, v6, name, port] = HOST_PORT.exec(section.addr) as RegExpExecArray;
  const tls = section.tls === 'none' || section.tls === 'starttls' || section.tls === 'always' ? section.tls : port === '636' ? 'always' : 'none';
  return {
    backend,
    host: (v6 ?? name) as string,
    port: Number(port),
    tls,
    ...(prepared.ca ? { ca: prepared.ca } : {}),
    insecureSkipVerify: section.insecure_tls_skip_verify === true,
    timeoutMs: Math.round(section.timeout * 1000),
  };
}

/** Result codes with which a server refuses a user's bind: the user's problem, never an outage. */
const REFUSED_BIND = new Map<number, string>([
  [19, 'constraint violation (account locked by password policy?)'],
  [32, 'no such entry'],
  [34, 'invalid DN'],
  [48, 'inappropriate authentication'],
  [49, 'invalid credentials (wrong password, or the account is locked or disabled)'],
  [50, 'insufficient access'],
  [53, 'unwilling to perform (account disabled or password expired?)'],
]);

/** Longer names are nobody's: refused before any LDAP traffic. */
const MAX_USERNAME = 256;

type LdapEntry = Entry;

function attributeValues(entry: LdapEntry, attribute: string): string[] {
  const wanted = attribute.toLowerCase();
  const out: string[] = [];
  for (const [name, raw] of Object.entries(entry)) {
    if (name === 'dn' || name.toLowerCase() !== wanted) continue;
    const list = Array.isArray(raw) ? raw : [raw];
    for (const value of list) out.push(typeof value === 'string' ? value : value.toString('utf8'));
  }
  return out;
}

export interface LdapAuthenticatorOptions {
  /** The clock for the credential cache (epoch ms). */
  now?: () => number;
  /** The backend name (`ldap`). */
  name?: string;
}

export class LdapAuthenticator implements Authenticator {
  readonly name: string;
  private readonly endpoint: LdapEndpoint;
  private readonly pool: LdapPool;
  private readonly cache: CredentialCache<AuthnResult> | undefined;
  private readonly labelAttributes: string[];
  private bindPassword: string | undefined;

  constructor(
    private readonly section: LdapAuthConfig,
    private readonly prepared: PreparedLdap,
    options: LdapAuthenticatorOptions = {},
  ) {
    this.name = options.name ?? 'ldap';
    this.endpoint = endpointOf(section, prepared, this.name);
    this.bindPassword = prepared.bindPassword;
    this.pool = new LdapPool(this.endpoint, section.pool_size, () => this.serviceConnection());
    this.cache =
      section.cache_ttl > 0
        ? new CredentialCache<AuthnResult>({
            ttlMs: section.cache_ttl * 1000,
            isSuccess: (result) => result.outcome === 'identity',
            ...(options.now ? { now: options.now } : {}),
          })
        : undefined;
    if (!section.initial_bind_as_user) this.lookup = (account) => this.lookupAccount(account);
    const fromGroups = section.group_search?.attribute.toLowerCase();
    this.labelAttributes = [
      ...new Set(
        Object.values(section.labels ?? {})
          .map((label) => label.attribute)
          .filter((attribute) => attribute.toLowerCase() !== fromGroups),
      ),
    ];
  }

  async authenticate(credentials: Credentials | null): Promise<AuthnResult> {
    // An empty password "succeeds" on many servers as an unauthenticated bind (RFC 4513 §5.1.2):
    // it must never reach one.
    if (!credentials || credentials.username === '' || credentials.password === '') return NO_MATCH;
    if (credentials.username.length > MAX_USERNAME) return NO_MATCH;
    const { username, password } = credentials;
    const check = () => (this.section.initial_bind_as_user ? this.directBind(username, password) : this.searchThenBind(username, password));
    return this.cache ? this.cache.verify(this.name, username, password, check) : check();
  }

  /**
   * Whether the account is (still) in the directory, without its password: how the owners of
   * refresh and access tokens are checked on every use. Only with search-then-bind: direct bind
   * has no service account to search with, so it has no lookup, and docker login keeps the
   * password instead of a refresh token (as with ext_auth).
   */
  readonly lookup?: (account: string) => Promise<AuthnResult>;

  /**
   * For /readyz: a pooled (service-account) connection reads the root DSE. Any answer, even a
   * refusal, shows the directory is up; no answer in time or no connection throws.
   */
  async ready(): Promise<void> {
    try {
      await this.pool.use((connection) => connection.search('', 'base', '(objectClass=*)', ['1.1'], 1));
    } catch (err) {
      if (!(err instanceof ldapts().ResultCodeError)) throw err;
    }
  }

  private async lookupAccount(account: string): Promise<AuthnResult> {
    if (account === '' || account.length > MAX_USERNAME) return NO_MATCH;
    const found = await this.findUser(account);
    if (found.outcome !== 'entry') return found.result;
    return { outcome: 'identity', identity: await this.identityOf(account, found.entry, undefined) };
  }

  /** Forgets the cached logins of a user. */
  invalidateUser(account: string): void {
    this.cache?.invalidateUser(account);
  }

  close(): void {
    this.pool.close();
  }

  private async searchThenBind(username: string, password: string): Promise<AuthnResult> {
    const found = await this.findUser(username);
    if (found.outcome !== 'entry') return found.result;
    const connection = await LdapConnection.open(this.endpoint);
    try {
      const refused = await this.userBind(connection, found.entry.dn, password);
      if (refused) return refused;
    } finally {
      connection.close();
    }
    return { outcome: 'identity', identity: { ...(await this.identityOf(username, found.entry, undefined)), via: 'password' } };
  }

  private async directBind(username: string, password: string): Promise<AuthnResult> {
    const dn = fillTemplate(this.section.bind_dn ?? '', { account: username }, escapeDnValue);
    const connection = await LdapConnection.open(this.endpoint);
    try {
      const refused = await this.userBind(connection, dn, password);
      if (refused) return refused;
      let entry: LdapEntry;
      if (this.section.base && this.section.filter) {
        // docker_auth: the filter still has to find the user, now searching as the user.
        const entries = await this.search(connection, this.section.base, 'sub', this.userFilter(username), this.labelAttributes, 2);
        if (entries.length === 0) return NO_MATCH;
        if (entries.length > 1) return this.ambiguous(username);
        entry = entries[0] as LdapEntry;
      } else {
        entry = await this.ownEntry(connection, dn);
      }
      return { outcome: 'identity', identity: { ...(await this.identityOf(username, entry, connection)), via: 'password' } };
    } finally {
      connection.close();
    }
  }

  /** The user's own entry, read as the user, for labels; a bind name that is no DN (AD's UPN) has none. */
  private async ownEntry(connection: LdapConnection, dn: string): Promise<LdapEntry> {
    if (this.labelAttributes.length === 0 && !this.section.group_search) return { dn };
    try {
      const entries = await this.search(connection, dn, 'base', '(objectClass=*)', this.labelAttributes, 1);
      return entries[0] ?? { dn };
    } catch (err) {
      if (err instanceof BackendUnavailableError) throw err;
      return { dn };
    }
  }

  /** Binds as the user; a refusal by the server is the user's `denied`, anything else an outage. */
  private async userBind(connection: LdapConnection, dn: string, password: string): Promise<AuthnResult | undefined> {
    try {
      await connection.bind(dn, password);
      return undefined;
    } catch (err) {
      if (err instanceof ldapts().ResultCodeError) {
        const why = REFUSED_BIND.get(err.code);
        if (why) return { outcome: 'denied', reason: `the directory refused the bind: ${why}` };
        throw new BackendUnavailableError(this.name, `LDAP server refused the user bind with result ${err.code}: ${err.message}`, { cause: err });
      }
      throw err;
    }
  }

  private userFilter(account: string): string {
    return fillTemplate(this.section.filter ?? '', { account }, escapeFilterValue);
  }

  private ambiguous(username: string): AuthnResult {
    // Which of them would the password belong to? Neither: the filter is wrong.
    return { outcome: 'denied', reason: `ldap_auth.filter matches more than one entry for ${JSON.stringify(username)}; it must match exactly one` };
  }

  private async findUser(username: string): Promise<{ outcome: 'entry'; entry: LdapEntry } | { outcome: 'result'; result: AuthnResult }> {
    const base = this.section.base ?? '';
    const entries = await this.search('pool', base, 'sub', this.userFilter(username), this.labelAttributes, 2);
    if (entries.length === 0) return { outcome: 'result', result: NO_MATCH };
    if (entries.length > 1) return { outcome: 'result', result: this.ambiguous(username) };
    return { outcome: 'entry', entry: entries[0] as LdapEntry };
  }

  /**
   * A search on the given connection, or on a pooled service connection. A failure the server
   * answers (a base that does not exist, a refused search) is an outage too: the config or the
   * directory is wrong, not the user.
   */
  private async search(
    on: LdapConnection | 'pool',
    base: string,
    scope: SearchScope,
    filter: string,
    attributes: readonly string[],
    sizeLimit: number,
  ): Promise<LdapEntry[]> {
    // "1.1" asks for no attributes (RFC 4511 §4.5.1.8): the DN alone.
    const run = (connection: LdapConnection) => connection.search(base, scope, filter, attributes.length > 0 ? attributes : ['1.1'], sizeLimit);
    try {
      return await (on === 'pool' ? this.pool.use(run) : run(on));
    } catch (err) {
      if (err instanceof ldapts().ResultCodeError) {
        throw new BackendUnavailableError(this.name, `LDAP search under ${JSON.stringify(base)} failed with result ${err.code}: ${err.message}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Labels from the entry's attributes and, with group_search, from the groups that name it. */
  private async identityOf(account: string, entry: LdapEntry, userConnection: LdapConnection | undefined): Promise<Identity> {
    const groupSearch = this.section.group_search;
    const groupDns: string[] = [];
    if (groupSearch) {
      const filter = fillTemplate(groupSearch.filter, { dn: entry.dn, account }, escapeFilterValue);
      // No limit on groups, but the server's own size limit still applies.
      const groups = await this.search(userConnection ?? 'pool', groupSearch.base, 'sub', filter, [], 0);
      for (const group of groups) groupDns.push(group.dn);
    }
    const labels: Record<string, string[]> = {};
    for (const [label, map] of Object.entries(this.section.labels ?? {})) {
      const fromGroups = groupSearch && map.attribute.toLowerCase() === groupSearch.attribute.toLowerCase();
      const raw = fromGroups ? [...attributeValues(entry, map.attribute), ...groupDns] : attributeValues(entry, map.attribute);
      // docker_auth sets a label only when the attribute is there.
      if (raw.length === 0 && !fromGroups) continue;
      let values = raw;
      if (map.parse_cn) values = values.map(commonNameOf);
      if (map.lower_case) values = values.map((v) => v.toLowerCase());
      labels[label] = [...new Set(values)];
    }
    return { account, labels, backend: this.name, anonymous: false };
  }

  /** A new service connection: bound as bind_dn (its password file read again), or anonymous. */
  private async serviceConnection(): Promise<LdapConnection> {
    const connection = await LdapConnection.open(this.endpoint);
    const bindDn = this.section.initial_bind_as_user ? undefined : this.section.bind_dn;
    if (!bindDn) return connection;
    if (this.prepared.bindPasswordPath) {
      // Re-read, so that a rotated password needs no restart; the last good one if unreadable.
      this.bindPassword = await readBindPassword(this.prepared.bindPasswordPath).catch(() => this.bindPassword);
    }
    if (!this.bindPassword) {
      // Never an empty password: that would be an unauthenticated bind (RFC 4513 §5.1.2).
      connection.destroy();
      throw new BackendUnavailableError(this.name, 'ldap_auth.bind_dn is set but no password was read from bind_password_file');
    }
    try {
      await connection.bind(bindDn, this.bindPassword);
      return connection;
    } catch (err) {
      connection.destroy();
      if (err instanceof ldapts().ResultCodeError) {
        throw new BackendUnavailableError(
          this.name,
          `the LDAP server refused the service account ldap_auth.bind_dn (result ${err.code}: ${err.message}); check bind_dn and bind_password_file`,
          { cause: err },
        );
      }
      throw err;
    }
  }
}
