import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { DOCKER_AUTH_SECTIONS, unsupportedSectionMessage } from './docker-auth-sections.js';
import { ConfigError, formatPath, type ConfigIssue } from './errors.js';
import { loadConfig } from './load.js';
import { aclMatchSchema, aclRuleSchema, configSchema, serverSchema, tokenSchema, userSchema } from './schema.js';

/**
 * `check-config --docker-auth FILE`: reads a docker_auth config leniently (as docker_auth's YAML
 * reader does, without our schema) and says what will behave differently here, key by key, then
 * runs our real loader on it. The findings explain; the loader decides whether the file runs.
 */

/**
 * - `rejected`: sts-docker-auth refuses the file until this changes.
 * - `differs`: the file runs, and this behaves differently from docker_auth.
 * - `note`: the same as docker_auth, but a common surprise worth a look.
 */
export type FindingKind = 'rejected' | 'differs' | 'note';

export interface Finding {
  /** Where in the file, e.g. `acl[3].match.team`; `(response)` for what every token answer changes. */
  path: string;
  kind: FindingKind;
  message: string;
}

export interface CompatReport {
  source: string;
  findings: Finding[];
  /** Our loader's problems with the file as it is; empty when it runs unmodified. */
  validation: readonly ConfigIssue[];
  runsUnmodified: boolean;
}

const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;
const PATTERN_FIELDS = ['account', 'type', 'name', 'service'] as const;
const CAPTURE = /\$\{(account|type|name|service):(\d+)\}/g;
const LABEL_PLACEHOLDER = /\$\{labels:([^}]+)\}/g;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const keysOf = (shape: object): ReadonlySet<string> => new Set(Object.keys(shape));

/** What to say about an unknown key in a mapping whose known keys are `known`. */
function unknownKeys(obj: Obj, known: ReadonlySet<string>, at: readonly (string | number)[], out: Finding[]): void {
  for (const key of Object.keys(obj)) {
    if (known.has(key)) continue;
    const path = formatPath([...at, key]);
    const section = unsupportedSectionMessage(path);
    if (section) out.push({ path, kind: 'rejected', message: section });
    else if (!DOCKER_AUTH_SECTIONS.includes(path)) {
      out.push({ path, kind: 'rejected', message: 'unknown key: docker_auth ignored it, sts-docker-auth refuses it (a typo?)' });
    }
  }
}

function checkToken(raw: Obj, out: Finding[]): void {
  const token = raw['token'];
  if (!isObj(token)) return;
  unknownKeys(token, keysOf(tokenSchema.shape), ['token'], out);
  const expiration = token['expiration'];
  if (expiration === undefined) {
    out.push({ path: 'token.expiration', kind: 'differs', message: 'not set: docker_auth required it; the default, 300 s, applies here' });
  } else if (typeof expiration !== 'number' || !Number.isInteger(expiration)) {
    out.push({ path: 'token.expiration', kind: 'rejected', message: `${JSON.stringify(expiration)} is not a whole number of seconds` });
  } else if (expiration < 60) {
    out.push({
      path: 'token.expiration',
      kind: 'rejected',
      message: `${expiration} s is below 60: docker clients used 60 s anyway; set 60 or more (300 to 900 is usual)`,
    });
  } else if (expiration > 86_400) {
    out.push({ path: 'token.expiration', kind: 'rejected', message: `${expiration} s is above 86400: tokens cannot be revoked, keep them short` });
  }
  const valid = typeof expiration === 'number' && Number.isInteger(expiration) && expiration >= 60 && expiration <= 86_400;
  const lifetime = expiration === undefined ? '300' : valid ? String(expiration) : 'token.expiration';
  out.push({
    path: 'token.expiration',
    kind: 'differs',
    message: `responses carry expires_in: ${lifetime} and issued_at, so clients keep a token that long (docker_auth sent neither, so clients used 60 s)`,
  });
  if (token['disable_legacy_key_id'] === true) {
    out.push({
      path: 'token.disable_legacy_key_id',
      kind: 'differs',
      message:
        'the kid is the real RFC 7638 thumbprint: EC keys now work with distribution 3.1+ and no longer with 3.0.x by kid (docker_auth hashed the curve constants); the default x5c header works with both',
    });
  } else if (token['jwt_header'] === undefined) {
    out.push({
      path: 'token',
      kind: 'differs',
      message:
        'tokens carry an x5c header with the signing certificate (jwt_header: x5c): distribution 2.8 and 3.x accept it, and check the certificate dates; jwt_header: libtrust gives docker_auth\'s header exactly',
    });
  }
}

function checkUsers(raw: Obj, out: Finding[]): void {
  const users = raw['users'];
  if (!isObj(users)) return;
  for (const [name, user] of Object.entries(users)) {
    const at = ['users', name];
    if (!isObj(user)) {
      out.push({ path: formatPath(at), kind: 'rejected', message: `must be a mapping: write ${name === '' ? '"": {}' : '{password: ..., labels: ...}'}` });
      continue;
    }
    unknownKeys(user, keysOf(userSchema.shape), at, out);
    const password = user['password'];
    if (name === '') {
      if (password !== undefined) {
        out.push({ path: formatPath([...at, 'password']), kind: 'rejected', message: 'the anonymous user "" takes no password: remove it' });
      }
    } else if (password === undefined || password === null || password === '') {
      out.push({
        path: formatPath([...at, 'password']),
        kind: 'rejected',
        message: `missing: docker_auth let ${JSON.stringify(name)} in with any password; set a bcrypt hash (sts-docker-auth hash-password)`,
      });
    } else if (typeof password !== 'string' || !BCRYPT_HASH.test(password)) {
      out.push({
        path: formatPath([...at, 'password']),
        kind: 'rejected',
        message: 'not a bcrypt hash: every docker_auth login with it failed; set one made by sts-docker-auth hash-password',
      });
    }
    const labels = user['labels'];
    if (isObj(labels)) {
      for (const [key, values] of Object.entries(labels)) {
        if (!Array.isArray(values)) {
          out.push({ path: formatPath([...at, 'labels', key]), kind: 'rejected', message: `must be a list: write ${key}: [${String(values)}]` });
        }
      }
    }
  }
}

/** A match key that docker_auth ignored: say what was probably meant. */
function matchKeyHint(key: string): string {
  if (key.includes(':')) return `write {${key.slice(0, key.indexOf(':'))}: ...} with a space after the colon`;
  return `use one of ${Object.keys(aclMatchSchema.shape).join(', ')}; a user label goes under labels: {${key}: ...}`;
}

function checkPatterns(match: Obj, at: readonly (string | number)[], out: Finding[]): void {
  const patterns: [string[], unknown][] = PATTERN_FIELDS.map((f) => [[f], match[f]]);
  if (isObj(match['labels'])) for (const [k, v] of Object.entries(match['labels'])) patterns.push([['labels', k], v]);
  for (const [field, value] of patterns) {
    if (typeof value !== 'string') continue;
    const path = formatPath([...at, 'match', ...field]);
    for (const m of value.matchAll(CAPTURE)) {
      out.push({
        path,
        kind: 'differs',
        message: `${m[0]} is inserted escaped, like \${account} (docker_auth inserted the capture as it was, so an account "*@x" could widen the pattern)`,
      });
    }
    // Inside a labels condition, ${labels:...} stays literal text, here as in docker_auth.
    if (field[0] === 'labels') continue;
    for (const m of value.matchAll(LABEL_PLACEHOLDER)) {
      out.push({
        path,
        kind: 'differs',
        message: `${m[0]}: an account without the label ${JSON.stringify(m[1])} never matches (docker_auth tried the pattern with the placeholder as text); values are still inserted as they are`,
      });
    }
  }
}

function checkActions(rule: Obj, match: Obj, at: readonly (string | number)[], out: Finding[]): void {
  const actions = rule['actions'];
  if (!Array.isArray(actions)) return;
  const path = formatPath([...at, 'actions']);
  const list = actions.filter((a): a is string => typeof a === 'string');
  const catalog = match['type'] === 'registry' || match['name'] === 'catalog';
  if (catalog && !list.includes('*')) {
    out.push({
      path,
      kind: 'note',
      message: 'grants nothing for the catalog (registry:catalog:*), as in docker_auth: only a rule with actions ["*"] grants it',
    });
  }
  if (match['type'] === 'registry') return;
  if (list.length === 1 && list[0] === '*') {
    out.push({
      path,
      kind: 'differs',
      message: 'a request for * on a repository (podman and skopeo delete) gets pull, push and delete spelled out, not a literal * (zot needs them); the catalog keeps its *',
    });
  } else if (list.includes('delete')) {
    out.push({
      path,
      kind: 'differs',
      message: `a request for * on a repository (podman and skopeo delete) gets ${list.filter((a) => ['delete', 'pull', 'push'].includes(a)).sort().join(', ')} from this rule; docker_auth granted nothing`,
    });
  }
}

function checkAcl(raw: Obj, out: Finding[]): void {
  const acl = raw['acl'];
  if (!Array.isArray(acl)) return;
  acl.forEach((rule: unknown, i) => {
    const at = ['acl', i];
    if (!isObj(rule)) {
      out.push({ path: formatPath(at), kind: 'rejected', message: 'must be a mapping with match and actions' });
      return;
    }
    unknownKeys(rule, keysOf(aclRuleSchema.shape), at, out);
    const match = rule['match'];
    if (!isObj(match)) {
      out.push({
        path: formatPath([...at, 'match']),
        kind: 'rejected',
        message: 'missing: docker_auth panicked at start; write match: {} for a rule that applies to every request',
      });
    } else {
      for (const key of Object.keys(match)) {
        if (Object.hasOwn(aclMatchSchema.shape, key)) continue;
        out.push({
          path: formatPath([...at, 'match', key]),
          kind: 'rejected',
          message: `unknown match key: docker_auth ignored it, so this rule matched every request; ${matchKeyHint(key)}`,
        });
      }
      checkPatterns(match, at, out);
    }
    if (!Array.isArray(rule['actions'])) {
      out.push({
        path: formatPath([...at, 'actions']),
        kind: 'rejected',
        message: 'missing: docker_auth crashed every request this rule matched; write [] to deny, ["*"] to grant what is asked, or a list',
      });
    } else if (isObj(match)) {
      checkActions(rule, match, at, out);
    }
  });
}

function checkWire(raw: Obj, out: Finding[]): void {
  if (raw['store'] === undefined) {
    out.push({
      path: 'store',
      kind: 'differs',
      message:
        'not set: as with docker_auth, docker login keeps the password; add store: {} for refresh tokens (docker login then keeps an identitytoken) and access tokens for CI',
    });
  } else {
    out.push({ path: 'store', kind: 'differs', message: 'docker login gets a refresh token and keeps it as identitytoken instead of the password' });
  }
  out.push({
    path: '(response)',
    kind: 'differs',
    message: 'errors are JSON ({"errors": [...]}); POST answers carry scope; grant_type=refresh_token is answered (docker_auth read it as anonymous)',
  });
  out.push({
    path: '(request)',
    kind: 'differs',
    message: 'the account parameter is never an identity: without credentials a request is anonymous, and an account that differs from the user name is 400',
  });
}

/** The findings for a docker_auth config already read from YAML; pure, no file access. */
export function analyseDockerAuthConfig(raw: unknown): Finding[] {
  if (!isObj(raw)) return [{ path: '(top level)', kind: 'rejected', message: 'the file is not a YAML mapping' }];
  const out: Finding[] = [];
  unknownKeys(raw, keysOf(configSchema.shape), [], out);
  if (isObj(raw['server'])) unknownKeys(raw['server'], keysOf(serverSchema.shape), ['server'], out);
  checkToken(raw, out);
  checkUsers(raw, out);
  checkAcl(raw, out);
  checkWire(raw, out);
  return out;
}

/** Reads a docker_auth file, explains the differences and runs our loader on it as it is. */
export async function checkDockerAuthConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<CompatReport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file: ${(err as Error).message}` }]);
  }
  // docker_auth's reader is lenient (yaml.v2, unknown keys ignored): read it the same way here.
  const doc = parseDocument(text, { uniqueKeys: false });
  const findings: Finding[] =
    doc.errors.length > 0
      ? doc.errors.map((e) => ({
          path: e.linePos ? `line ${e.linePos[0].line}` : '(top level)',
          kind: 'rejected',
          message: `not valid YAML: ${e.message.split('\n')[0] ?? e.message}`,
        }))
      : analyseDockerAuthConfig(doc.toJS() ?? {});
  let validation: readonly ConfigIssue[] = [];
  try {
    await loadConfig(file, env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    validation = err.issues;
  }
  return { source: file, findings, validation, runsUnmodified: validation.length === 0 };
}

const ORDER: readonly FindingKind[] = ['rejected', 'differs', 'note'];

/** The report as printed by `check-config --docker-auth`: one line per finding, with its key path. */
export function formatCompatReport(report: CompatReport): string {
  const lines = [`${report.source}: docker_auth compatibility`];
  const sorted = [...report.findings].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
  for (const f of sorted) lines.push(`  ${f.kind.padEnd(8)} ${f.path}: ${f.message}`);
  if (report.runsUnmodified) {
    lines.push('validation: passes; sts-docker-auth runs this file unmodified');
  } else {
    const n = report.validation.length;
    lines.push(`validation: fails with ${n} problem${n === 1 ? '' : 's'}; the file does not run unmodified:`);
    for (const issue of report.validation) lines.push(`  ${issue.path || '(top level)'}: ${issue.message}`);
  }
  lines.push('See docs/migrating-from-docker_auth.md.');
  return lines.join('\n');
}
