/**
 * One ACL string pattern (docker_auth §2.3 "String patterns"): `/.../` with at least one character
 * between the slashes is an unanchored RE2 regex; anything else is an anchored Go path.Match glob.
 */

import { compileGlob, GlobSyntaxError } from './glob.js';
import { compileRe2, Re2SyntaxError } from './re2.js';

/** The only thing the engine needs from a compiled pattern. A RegExp (without g/y) satisfies it. */
export interface Matcher {
  test(value: string): boolean;
}

export class PatternError extends Error {
  override readonly name = 'PatternError';
}

/** Used for expansions that turn out to be invalid at request time: they simply do not match. */
export const NEVER_MATCHES: Matcher = { test: () => false };

class LiteralMatcher implements Matcher {
  constructor(private readonly value: string) {}
  test(value: string): boolean {
    return value === this.value;
  }
}

export function isRegexPattern(pattern: string): boolean {
  return pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/');
}

/**
 * Compiles the inside of a `/.../` pattern. The RegExp never gets the g or y flag, so `test` and
 * `exec` are stateless and one instance can be shared by every request.
 */
export function compileRegexBody(body: string): RegExp {
  try {
    return compileRe2(body);
  } catch (err) {
    if (err instanceof Re2SyntaxError) {
      throw new PatternError(
        `invalid regular expression: ${err.message}. Patterns between slashes use Go RE2 syntax; ` +
          'fix the expression, or drop the slashes to write a glob instead',
      );
    }
    throw err;
  }
}

export function compileGlobPattern(pattern: string): Matcher {
  try {
    const glob = compileGlob(pattern);
    return glob.literal === null ? glob.regex : new LiteralMatcher(glob.literal);
  } catch (err) {
    if (err instanceof GlobSyntaxError) {
      throw new PatternError(
        `invalid glob: ${err.message}. Globs use Go path.Match syntax (* ? [a-z] [^a-z] and \\ escapes); ` +
          'wrap the pattern in slashes to write a regular expression instead',
      );
    }
    throw err;
  }
}

/** Compiles either form; throws PatternError with a message that says how to fix the pattern. */
export function compilePattern(pattern: string): Matcher {
  return isRegexPattern(pattern) ? compileRegexBody(pattern.slice(1, -1)) : compileGlobPattern(pattern);
}
