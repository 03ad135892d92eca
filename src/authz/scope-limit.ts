import { compileGlobPattern, type Matcher } from './acl/pattern.js';
import type { ResourceScope } from '../protocol/scope.js';

/**
 * The scopes an access token is limited to, such as `repository:team/*:pull,push`: a type, a name
 * glob (ACL glob semantics: `*` does not cross `/`) and actions (`*` for all). The token grants
 * the intersection of these and what the owner's rules allow. The single word `admin` is not a
 * registry scope: it lets the token call the admin API.
 */
export interface ScopeLimit {
  readonly patterns: readonly string[];
  readonly admin: boolean;
  allowed(scope: ResourceScope): string[] | '*';
}

export class ScopeLimitError extends Error {
  override name = 'ScopeLimitError';
}

interface Entry {
  type: string;
  name: Matcher;
  actions: Set<string> | '*';
}

const TYPE = /^[a-z0-9]+$/;
const ACTION = /^(?:[a-z][a-z0-9-]*|\*)$/;

function parseEntry(pattern: string): Entry {
  const first = pattern.indexOf(':');
  const last = pattern.lastIndexOf(':');
  if (first <= 0 || last === first) throw new ScopeLimitError(`scope ${JSON.stringify(pattern)}: expected type:name:actions or admin`);
  const type = pattern.slice(0, first);
  const name = pattern.slice(first + 1, last);
  const actions = pattern.slice(last + 1).split(',');
  if (!TYPE.test(type)) throw new ScopeLimitError(`scope ${JSON.stringify(pattern)}: bad type ${JSON.stringify(type)}`);
  if (name === '') throw new ScopeLimitError(`scope ${JSON.stringify(pattern)}: empty name`);
  for (const action of actions) {
    if (!ACTION.test(action)) throw new ScopeLimitError(`scope ${JSON.stringify(pattern)}: bad action ${JSON.stringify(action)}`);
  }
  let matcher: Matcher;
  try {
    matcher = compileGlobPattern(name);
  } catch (err) {
    throw new ScopeLimitError(`scope ${JSON.stringify(pattern)}: ${(err as Error).message}`, { cause: err });
  }
  return { type, name: matcher, actions: actions.includes('*') ? '*' : new Set(actions) };
}

/** Parses and validates token scope patterns; throws ScopeLimitError with the offending one. */
export function parseScopeLimit(patterns: readonly string[]): ScopeLimit {
  const entries: Entry[] = [];
  let admin = false;
  for (const pattern of patterns) {
    if (pattern === 'admin') admin = true;
    else entries.push(parseEntry(pattern));
  }
  return {
    patterns: [...patterns],
    admin,
    allowed(scope) {
      const allowed = new Set<string>();
      for (const entry of entries) {
        if (entry.type !== scope.type || !entry.name.test(scope.name)) continue;
        if (entry.actions === '*') return '*';
        for (const action of entry.actions) allowed.add(action);
      }
      return [...allowed];
    },
  };
}
