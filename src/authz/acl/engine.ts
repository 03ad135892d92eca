/**
 * The static ACL engine, reproducing docker_auth's `acl` authorizer (reference §2.3).
 *
 * Rules are tried in order and the first whose `match` matches decides, even with `actions: []`.
 * `null` means no rule matched (docker_auth's NoMatch), so the caller can ask the next authorizer.
 * All patterns are compiled by compileAcl; only patterns with placeholders are expanded per
 * request, and their expansions are compiled through a small bounded cache.
 */

import { compileGlobPattern, compilePattern, compileRegexBody, isRegexPattern, NEVER_MATCHES, PatternError } from './pattern.js';
import type { Matcher } from './pattern.js';
import { IpPatternError, ipRuleMatches, parseClientIp, parseIpRule } from './ip.js';
import type { ClientIp, IpRule } from './ip.js';
import { expandTemplate, FIELDS, parseTemplate, quoteMeta, someCombination } from './placeholders.js';
import type { Field, PlaceholderValues, Template } from './placeholders.js';

export interface AclMatch {
  account?: string;
  type?: string;
  name?: string;
  service?: string;
  ip?: string;
  labels?: Record<string, string>;
}

export interface AclRule {
  match: AclMatch;
  actions: string[];
  comment?: string;
}

export interface AclRequest {
  account: string;
  type: string;
  name: string;
  service: string;
  ip?: string | undefined;
  labels: Readonly<Record<string, readonly string[]>>;
  actions: readonly string[];
}

export interface AclDecision {
  /** Position of the deciding rule in the rules array. */
  index: number;
  rule: AclRule;
  /** Granted actions; `[]` is an explicit deny. */
  actions: string[];
}

export interface CompiledAcl {
  readonly rules: readonly AclRule[];
  evaluate(req: AclRequest): AclDecision | null;
}

export class AclCompileError extends Error {
  override readonly name = 'AclCompileError';
  /** Where the problem is, relative to the rules array: e.g. [3, 'match', 'ip']. */
  readonly path: (string | number)[];

  constructor(path: (string | number)[], message: string) {
    super(message);
    this.path = path;
  }
}

const MATCH_KEYS: readonly string[] = [...FIELDS, 'ip', 'labels'];
const FIELD_SLOT: Readonly<Record<Field, number>> = { account: 0, type: 1, name: 2, service: 3 };
/** Expanded patterns kept compiled; enough for the distinct accounts/names seen in a busy minute. */
const EXPANSION_CACHE_SIZE = 512;

/** A pattern that needs the request to be expanded before it can be compiled. */
interface TemplatePattern {
  readonly template: Template;
  /** Whether the raw pattern is a /regex/; placeholders never change the kind (see expanded()). */
  readonly regex: boolean;
}

interface FieldCheck {
  readonly field: Field;
  readonly matcher: Matcher | null;
  readonly pattern: TemplatePattern | null;
}

interface LabelCheck {
  readonly key: string;
  readonly matcher: Matcher | null;
  readonly pattern: TemplatePattern | null;
}

interface CompiledRule {
  readonly index: number;
  readonly rule: AclRule;
  /** Placeholder-free checks first: they are cheap and usually decide. */
  readonly fields: readonly FieldCheck[];
  readonly ip: IpRule | null;
  readonly labels: readonly LabelCheck[];
  readonly hasTemplates: boolean;
  /** The field's own /regex/ (as written, placeholders literal), indexed by FIELD_SLOT, for ${field:N}. */
  readonly captureSources: readonly (RegExp | null)[];
  readonly grantAll: boolean;
  /** Sorted and de-duplicated, so the intersection with a request comes out sorted. */
  readonly actions: readonly string[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Go's sort.Strings orders by UTF-8 bytes, which is code point order; JS's default sort compares
 * UTF-16 units, which differs once characters outside the BMP are involved.
 */
function compareCodePoints(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0) ?? 0);
  const y = Array.from(b, (c) => c.codePointAt(0) ?? 0);
  for (let i = 0; i < x.length && i < y.length; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function compileStringPattern(
  value: unknown,
  path: (string | number)[],
  what: string,
  allowLabels: boolean,
): { matcher: Matcher | null; pattern: TemplatePattern | null; raw: Matcher } {
  if (typeof value !== 'string') {
    throw new AclCompileError(path, `${what} must be a string pattern (a glob, or /regex/), got ${typeof value}`);
  }
  let raw: Matcher;
  try {
    // Validated as written, placeholders included, like docker_auth does: `${account}` is plain
    // text to a glob and `$` + a literal `{account}` to RE2, so a valid pattern stays valid.
    raw = compilePattern(value);
  } catch (err) {
    if (err instanceof PatternError) throw new AclCompileError(path, `${what} ${JSON.stringify(value)}: ${err.message}`);
    throw err;
  }
  const template = parseTemplate(value, allowLabels);
  if (template === null) return { matcher: raw, pattern: null, raw };
  return { matcher: null, pattern: { template, regex: isRegexPattern(value) }, raw };
}

function compileRule(input: unknown, index: number): CompiledRule {
  if (!isPlainObject(input)) {
    throw new AclCompileError([index], 'each ACL rule must be an object with "match" and "actions"');
  }
  const match = input['match'];
  if (!isPlainObject(match)) {
    throw new AclCompileError(
      [index, 'match'],
      'match is missing or not an object; write match: {} for a rule that applies to every request',
    );
  }
  for (const key of Object.keys(match)) {
    if (!MATCH_KEYS.includes(key)) {
      // docker_auth silently ignores unknown keys, which turns a typo into a match-everything rule.
      throw new AclCompileError(
        [index, 'match', key],
        `unknown match condition "${key}"; use one of ${MATCH_KEYS.join(', ')} (user labels go under labels: {${key}: ...})`,
      );
    }
  }

  const fields: FieldCheck[] = [];
  const templated: FieldCheck[] = [];
  const captureSources: (RegExp | null)[] = [null, null, null, null];
  for (const field of FIELDS) {
    const value = match[field];
    if (value === undefined) continue;
    const compiled = compileStringPattern(value, [index, 'match', field], field, true);
    if (compiled.raw instanceof RegExp) captureSources[FIELD_SLOT[field]] = compiled.raw;
    (compiled.pattern ? templated : fields).push({ field, matcher: compiled.matcher, pattern: compiled.pattern });
  }

  let ip: IpRule | null = null;
  if (match['ip'] !== undefined) {
    const value = match['ip'];
    if (typeof value !== 'string') throw new AclCompileError([index, 'match', 'ip'], 'ip must be a string such as 10.0.0.0/8');
    try {
      ip = parseIpRule(value);
    } catch (err) {
      if (err instanceof IpPatternError) throw new AclCompileError([index, 'match', 'ip'], `ip ${err.message}`);
      throw err;
    }
  }

  const labels: LabelCheck[] = [];
  const templatedLabels: LabelCheck[] = [];
  if (match['labels'] !== undefined) {
    const value = match['labels'];
    if (!isPlainObject(value)) {
      throw new AclCompileError([index, 'match', 'labels'], 'labels must map label names to patterns, e.g. labels: {group: admins}');
    }
    for (const [key, pattern] of Object.entries(value)) {
      // ${labels:...} is not expanded inside label conditions (docker_auth keeps it literal).
      const compiled = compileStringPattern(pattern, [index, 'match', 'labels', key], `label "${key}" pattern`, false);
      (compiled.pattern ? templatedLabels : labels).push({ key, matcher: compiled.matcher, pattern: compiled.pattern });
    }
  }

  const actions = input['actions'];
  if (!Array.isArray(actions)) {
    throw new AclCompileError(
      [index, 'actions'],
      'actions is missing or not a list; write actions: [] to deny, ["*"] to grant whatever is requested, or e.g. ["pull"]',
    );
  }
  actions.forEach((a: unknown, j) => {
    if (typeof a !== 'string') throw new AclCompileError([index, 'actions', j], 'each action must be a string such as "pull"');
  });
  const comment = input['comment'];
  if (comment !== undefined && typeof comment !== 'string') {
    throw new AclCompileError([index, 'comment'], 'comment must be a string');
  }

  const strings = actions as string[];
  return {
    index,
    rule: input as unknown as AclRule,
    fields: [...fields, ...templated],
    ip,
    labels: [...labels, ...templatedLabels],
    hasTemplates: templated.length > 0 || templatedLabels.length > 0,
    captureSources,
    // Only the exact list ["*"] is special; a "*" among other actions is an ordinary action name.
    grantAll: strings.length === 1 && strings[0] === '*',
    actions: [...new Set(strings)].sort(compareCodePoints),
  };
}

/** Own properties only: a label named "constructor" must not find Object.prototype.constructor. */
function labelValues(labels: AclRequest['labels'], key: string): readonly string[] | undefined {
  if (!Object.hasOwn(labels, key)) return undefined;
  const values = labels[key];
  return Array.isArray(values) ? values : undefined;
}

/**
 * Per-request state, created only when a rule needs it (placeholders or ip): quoted field values
 * and capture results are computed at most once per request (captures once per rule).
 */
class RequestScope implements PlaceholderValues {
  private readonly quotedValues: (string | undefined)[] = [undefined, undefined, undefined, undefined];
  private readonly captures: (RegExpExecArray | null | undefined)[] = [undefined, undefined, undefined, undefined];
  private client: ClientIp | null | undefined;
  private rule: CompiledRule | null = null;

  constructor(readonly req: AclRequest) {}

  enterRule(rule: CompiledRule): void {
    if (this.rule === rule) return;
    this.rule = rule;
    this.captures.fill(undefined);
  }

  clientIp(): ClientIp | null {
    if (this.client === undefined) this.client = parseClientIp(this.req.ip);
    return this.client;
  }

  quoted(field: Field): string {
    const slot = FIELD_SLOT[field];
    let q = this.quotedValues[slot];
    if (q === undefined) {
      q = quoteMeta(this.req[field]);
      this.quotedValues[slot] = q;
    }
    return q;
  }

  capture(field: Field, group: number): string | undefined {
    const slot = FIELD_SLOT[field];
    const source = this.rule?.captureSources[slot];
    // Only a field written as /regex/ has groups; otherwise the placeholder stays as text.
    if (!source) return undefined;
    let m = this.captures[slot];
    if (m === undefined) {
      m = source.exec(this.req[field]);
      this.captures[slot] = m;
    }
    if (m === null || group < 1 || group >= m.length) return undefined;
    // Quoted like ${account}: docker_auth inserts captures raw, which would let an account named
    // "*@corp.com" turn `${account:1}/*` into `*/*`.
    return quoteMeta(m[group] ?? '');
  }
}

class AclEngine implements CompiledAcl {
  readonly rules: readonly AclRule[];
  private readonly compiled: readonly CompiledRule[];
  private readonly cache = new Map<string, Matcher>();

  constructor(rules: readonly AclRule[], compiled: readonly CompiledRule[]) {
    this.rules = rules;
    this.compiled = compiled;
  }

  evaluate(req: AclRequest): AclDecision | null {
    let scope: RequestScope | null = null;
    for (const rule of this.compiled) {
      if (rule.hasTemplates || rule.ip !== null) {
        scope ??= new RequestScope(req);
        scope.enterRule(rule);
      }
      if (this.matches(rule, req, scope)) return { index: rule.index, rule: rule.rule, actions: grantedActions(rule, req) };
    }
    return null;
  }

  private matches(rule: CompiledRule, req: AclRequest, scope: RequestScope | null): boolean {
    for (const check of rule.fields) {
      const value = req[check.field];
      if (check.matcher !== null) {
        if (!check.matcher.test(value)) return false;
      } else if (!this.matchTemplate(check.pattern as TemplatePattern, value, scope as RequestScope)) {
        return false;
      }
    }
    if (rule.ip !== null) {
      const client = (scope as RequestScope).clientIp();
      if (client === null || !ipRuleMatches(rule.ip, client)) return false;
    }
    for (const check of rule.labels) {
      const values = labelValues(req.labels, check.key);
      if (values === undefined) return false;
      const matcher =
        check.matcher ?? this.expanded(check.pattern as TemplatePattern, scope as RequestScope, null);
      let any = false;
      for (const v of values) {
        if (matcher.test(v)) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    }
    return true;
  }

  /** With ${labels:k} placeholders, the pattern matches if any combination of label values does. */
  private matchTemplate(pattern: TemplatePattern, value: string, scope: RequestScope): boolean {
    const keys = pattern.template.labelKeys;
    if (keys.length === 0) return this.expanded(pattern, scope, null).test(value);
    const lists: (readonly string[])[] = [];
    for (const key of keys) {
      const values = labelValues(scope.req.labels, key);
      // A user without the label cannot satisfy the pattern (docker_auth would instead try the
      // pattern with the placeholder left as literal text, which only matches names containing "${").
      if (values === undefined || values.length === 0) return false;
      lists.push(values);
    }
    return someCombination(lists, (chosen) => this.expanded(pattern, scope, chosen).test(value));
  }

  /**
   * Expands and compiles (through the cache) one pattern. The kind comes from the pattern as
   * written, so a value such as an account "/x/" cannot turn a glob into a regex; a regex whose
   * body expands to nothing ("//") is a glob again, exactly as in docker_auth.
   */
  private expanded(pattern: TemplatePattern, scope: RequestScope, labels: readonly string[] | null): Matcher {
    const text = expandTemplate(pattern.template, scope, labels);
    const regex = pattern.regex && text.length > 2;
    const key = (regex ? 'r' : 'g') + text;
    let matcher = this.cache.get(key);
    if (matcher === undefined) {
      try {
        matcher = regex ? compileRegexBody(text.slice(1, -1)) : compileGlobPattern(text);
      } catch (err) {
        // An expansion can be malformed (a label value "[", an empty account in "[${account}]");
        // docker_auth treats that as no match, and so do we.
        if (!(err instanceof PatternError)) throw err;
        matcher = NEVER_MATCHES;
      }
      if (this.cache.size >= EXPANSION_CACHE_SIZE) {
        const oldest = this.cache.keys().next();
        if (!oldest.done) this.cache.delete(oldest.value);
      }
      this.cache.set(key, matcher);
    }
    return matcher;
  }
}

function grantedActions(rule: CompiledRule, req: AclRequest): string[] {
  // ["*"] echoes the request, including "*" itself (the catalog scope asks for "*").
  if (rule.grantAll) return [...new Set(req.actions)];
  return rule.actions.filter((a) => req.actions.includes(a));
}

/** Compiles and validates rules; throws AclCompileError at the first problem. */
export function compileAcl(rules: readonly AclRule[]): CompiledAcl {
  if (!Array.isArray(rules)) throw new AclCompileError([], 'the ACL must be a list of rules');
  const compiled = rules.map((rule: unknown, index) => compileRule(rule, index));
  return Object.freeze(new AclEngine(Object.freeze([...rules]), compiled));
}
