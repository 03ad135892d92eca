import { TokenError } from './errors.js';

/** One resource scope after parsing and merging: `repository:team/app:pull,push`. */
export interface ResourceScope {
  type: string;
  /** The resource class of `repository(plugin)`; deprecated in distribution 3, kept only for the claim. */
  class?: string;
  name: string;
  actions: string[];
}

const MAX_SCOPES = 64;
const MAX_NAME_LENGTH = 255;
const TYPE = /^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$/;
// Vendor extensions such as Harbor's `scanner-pull` carry a hyphen; `*` is how clients ask for all.
const ACTION = /^(?:[a-z][a-z0-9-]*|\*)$/;
// The distribution reference grammar: optional host[:port], then lowercase components.
const HOST = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$/;
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const OTHER_NAME = /^[A-Za-z0-9._\-/:]+$/;

function invalid(raw: string, why: string): TokenError {
  return new TokenError('INVALID_SCOPE', `invalid scope ${JSON.stringify(raw.slice(0, 300))}: ${why}`);
}

function validRepositoryName(name: string): boolean {
  const parts = name.split('/');
  let start = 0;
  // The first part may be a registry host (reg.example.com:5000/app); a repository path with a dot
  // in its first component (my.app/x) is valid as well, so accept either reading.
  const first = parts[0] ?? '';
  const hostLike = first.includes('.') || first.includes(':') || first === 'localhost';
  if (parts.length > 1 && !COMPONENT.test(first)) {
    if (!hostLike || !HOST.test(first)) return false;
    start = 1;
  }
  if (start === parts.length) return false;
  for (let i = start; i < parts.length; i++) if (!COMPONENT.test(parts[i] ?? '')) return false;
  return true;
}

/**
 * Parses one resource scope with the first-colon/last-colon rule (protocol.md §2): the name may
 * itself hold a `host:port`, so splitting on every `:` is wrong.
 */
export function parseResourceScope(raw: string): ResourceScope {
  const first = raw.indexOf(':');
  const last = raw.lastIndexOf(':');
  if (first <= 0 || last === first) throw invalid(raw, 'expected type:name:actions');
  const typePart = raw.slice(0, first);
  const name = raw.slice(first + 1, last);
  const actionPart = raw.slice(last + 1);

  const typeMatch = TYPE.exec(typePart);
  if (!typeMatch) throw invalid(raw, `bad resource type ${JSON.stringify(typePart)}`);
  const type = typeMatch[1] as string;
  const cls = typeMatch[2];

  if (name.length === 0) throw invalid(raw, 'empty resource name');
  if (name.length > MAX_NAME_LENGTH) throw invalid(raw, `resource name longer than ${MAX_NAME_LENGTH} characters`);
  const nameOk = type === 'repository' ? validRepositoryName(name) : OTHER_NAME.test(name);
  if (!nameOk) throw invalid(raw, `bad resource name ${JSON.stringify(name.slice(0, 300))}`);

  const actions: string[] = [];
  for (const action of actionPart.split(',')) {
    if (!ACTION.test(action)) throw invalid(raw, `bad action ${JSON.stringify(action.slice(0, 50))}`);
    if (!actions.includes(action)) actions.push(action);
  }
  const scope: ResourceScope = { type, name, actions };
  if (cls !== undefined) scope.class = cls;
  return scope;
}

/**
 * Parses every `scope` value of a request. Each value may hold several space-separated scopes
 * (ggcr forwards a challenge verbatim); scopes for one (type, name) are merged, whatever their
 * order or duplication, because clients ask for `pull` and `pull,push` on one repository.
 * The result keeps the order in which resources first appear.
 */
export function parseScopes(values: readonly string[]): ResourceScope[] {
  const merged = new Map<string, ResourceScope>();
  for (const value of values) {
    for (const raw of value.split(' ')) {
      if (raw === '') continue; // empty value or doubled space: the login case, not an error
      const scope = parseResourceScope(raw);
      const key = `${scope.type}\u0000${scope.name}`;
      const seen = merged.get(key);
      if (seen) {
        for (const action of scope.actions) if (!seen.actions.includes(action)) seen.actions.push(action);
        if (seen.class === undefined && scope.class !== undefined) seen.class = scope.class;
      } else {
        if (merged.size >= MAX_SCOPES) throw invalid(raw, `more than ${MAX_SCOPES} resources in one request`);
        merged.set(key, scope);
      }
    }
  }
  return [...merged.values()];
}

/** The actions a requested `*` stands for on a repository (protocol.md §6.4: expand, never echo). */
export const REPOSITORY_ACTIONS: readonly string[] = ['delete', 'pull', 'push'];

/** Formats granted scopes for the POST response's `scope` field. */
export function formatScopes(scopes: readonly ResourceScope[]): string {
  return scopes
    .filter((s) => s.actions.length > 0)
    .map((s) => `${s.class ? `${s.type}(${s.class})` : s.type}:${s.name}:${s.actions.join(',')}`)
    .join(' ');
}
