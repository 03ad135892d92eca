/**
 * Go `path.Match` globs, compiled to a JavaScript RegExp.
 *
 * Syntax (as in Go): `*` is any run of non-`/` characters, `?` one non-`/` character, `[...]` a
 * class of single characters or `lo-hi` ranges (`[^...]` negates it; classes *can* match `/`), and
 * `\c` is the literal `c`, also inside classes. The match is anchored at both ends.
 *
 * Go's matcher is not a full backtracking glob: after each `*` it commits to the *leftmost*
 * position where the following fixed-length chunk matches, and only the last chunk may slide
 * further. That is observable when a class can match `/` (`*[a/]*` does not match `a/b` in Go).
 * We reproduce it with the atomic-commit idiom `(?=([^/]*?CHUNK))\N`: the lazy scan inside the
 * look-ahead finds the leftmost chunk position and the back-reference consumes exactly that, with
 * no way to backtrack into it.
 *
 * Known deviation: Go advances byte by byte when looking for the next chunk, so with non-ASCII
 * input it can try to match starting inside a multi-byte character; we work on code points.
 */

export class GlobSyntaxError extends Error {
  override readonly name = 'GlobSyntaxError';
}

type Atom =
  | { readonly kind: 'literal'; readonly cp: number }
  | { readonly kind: 'any' }
  | { readonly kind: 'class'; readonly negated: boolean; readonly ranges: readonly (readonly [number, number])[] };

interface Chunk {
  /** Preceded by one or more `*`. */
  readonly star: boolean;
  readonly atoms: readonly Atom[];
}

/** Characters with a meaning in a JS `u`-mode pattern outside a class. */
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/');

/** Splits like Go's scanChunk: a chunk runs to the next `*` that is not escaped or inside `[...]`. */
function splitChunks(pattern: string): { star: boolean; text: string }[] {
  const chunks: { star: boolean; text: string }[] = [];
  let i = 0;
  while (i < pattern.length || chunks.length === 0) {
    let star = false;
    while (pattern[i] === '*') {
      star = true;
      i++;
    }
    const start = i;
    let inClass = false;
    for (; i < pattern.length; i++) {
      const c = pattern[i];
      if (c === '\\') {
        if (i + 1 < pattern.length) i++;
      } else if (c === '[') {
        inClass = true;
      } else if (c === ']') {
        inClass = false;
      } else if (c === '*' && !inClass) {
        break;
      }
    }
    chunks.push({ star, text: pattern.slice(start, i) });
  }
  return chunks;
}

/** Reads one code point at `i`; returns it and the index after it. */
function readCodePoint(text: string, i: number): [number, number] {
  const cp = text.codePointAt(i) as number;
  return [cp, i + (cp > 0xffff ? 2 : 1)];
}

/**
 * Reads a class member (Go's getEsc): rejects an unescaped `-` or `]` here, and like Go requires
 * something to follow it, because a class must be closed by `]`.
 */
function readClassChar(text: string, i: number, upperBound: boolean): [number, number] {
  const unterminated = () => new GlobSyntaxError('unterminated character class; close it with ]');
  const c = text[i];
  if (c === undefined) throw unterminated();
  if (upperBound && (c === ']' || c === '-')) {
    throw new GlobSyntaxError('a range in a character class has no upper bound; write \\- for a literal -');
  }
  if (c === ']') {
    throw new GlobSyntaxError('character class is empty or starts with ]; write \\] for a literal ]');
  }
  if (c === '-') {
    throw new GlobSyntaxError('misplaced - in a character class; write \\- for a literal -');
  }
  if (c === '\\') i++;
  if (i >= text.length) throw unterminated();
  const [cp, next] = readCodePoint(text, i);
  if (next >= text.length) throw unterminated();
  return [cp, next];
}

function parseChunk(text: string): Atom[] {
  const atoms: Atom[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '?') {
      atoms.push({ kind: 'any' });
      i++;
    } else if (c === '[') {
      i++;
      let negated = false;
      if (text[i] === '^') {
        negated = true;
        i++;
      }
      const ranges: [number, number][] = [];
      while (!(text[i] === ']' && ranges.length > 0)) {
        let lo: number;
        [lo, i] = readClassChar(text, i, false);
        let hi = lo;
        if (text[i] === '-') [hi, i] = readClassChar(text, i + 1, true);
        ranges.push([lo, hi]);
      }
      i++; // the closing ]
      atoms.push({ kind: 'class', negated, ranges });
    } else {
      if (c === '\\') {
        i++;
        if (i >= text.length) {
          throw new GlobSyntaxError('the pattern ends with a lone backslash; write \\\\ for a literal backslash');
        }
      }
      let cp: number;
      [cp, i] = readCodePoint(text, i);
      atoms.push({ kind: 'literal', cp });
    }
  }
  return atoms;
}

function hex(cp: number): string {
  return `\\u{${cp.toString(16)}}`;
}

function atomSource(atom: Atom): string {
  switch (atom.kind) {
    case 'any':
      return '[^/]';
    case 'literal': {
      const ch = String.fromCodePoint(atom.cp);
      if (JS_SYNTAX.has(ch)) return `\\${ch}`;
      return atom.cp < 0x20 || atom.cp === 0x7f || (atom.cp >= 0xd800 && atom.cp <= 0xdfff) ? hex(atom.cp) : ch;
    }
    case 'class': {
      // Go accepts an inverted range such as [z-a] and it simply matches nothing; JS would throw.
      const body = atom.ranges
        .filter(([lo, hi]) => lo <= hi)
        .map(([lo, hi]) => (lo === hi ? hex(lo) : `${hex(lo)}-${hex(hi)}`))
        .join('');
      return `[${atom.negated ? '^' : ''}${body}]`;
    }
  }
}

export interface CompiledGlob {
  /** Set when the pattern has no wildcards: matching is then plain string equality. */
  readonly literal: string | null;
  readonly regex: RegExp;
}

/** Compiles a glob; throws GlobSyntaxError where Go's path.Match would return ErrBadPattern. */
export function compileGlob(pattern: string): CompiledGlob {
  const chunks = splitChunks(pattern).map((c) => ({ star: c.star, atoms: parseChunk(c.text) }));
  let source = '^';
  let group = 0;
  chunks.forEach((chunk: Chunk, index) => {
    const body = chunk.atoms.map(atomSource).join('');
    const last = index === chunks.length - 1;
    if (!chunk.star) source += body;
    else if (last) source += `[^/]*${body}`;
    else {
      group++;
      source += `(?=([^/]*?${body}))\\${group}`;
    }
  });
  source += '$';
  const only = chunks[0];
  const literal =
    chunks.length === 1 && only !== undefined && !only.star && only.atoms.every((a) => a.kind === 'literal')
      ? only.atoms.map((a) => (a.kind === 'literal' ? String.fromCodePoint(a.cp) : '')).join('')
      : null;
  return { literal, regex: new RegExp(source, 'u') };
}
