/**
 * Translates a Go RE2 regular expression (the `/.../` form of an ACL pattern) into an equivalent
 * JavaScript RegExp.
 *
 * docker_auth compiles these with Go's `regexp` package, so existing configs are written in RE2
 * syntax. JavaScript differs in ways that silently change meaning or reject valid configs:
 * inline flags such as `(?i)`, `(?P<name>...)`, `\A`/`\z`, `\Q...\E`, POSIX classes, `\s` (JS also
 * matches \v and Unicode spaces), `.` (JS also stops at \r, U+2028, U+2029), literal `{`/`}`/`]`,
 * octal escapes. We walk the pattern once, rewrite those constructs, and reject what RE2 itself
 * rejects (look-around, back-references, repeat counts above 1000) so a config accepted here would
 * also load in docker_auth. Structural errors (unbalanced parentheses, nothing to repeat) are left
 * for the JS engine to report.
 *
 * The result is compiled with the `u` flag so that, as in Go, `.` and classes match whole code
 * points. Only `i` is ever passed as a JS flag; `s`, `m` and `U` are applied by the rewrite, which
 * lets them be scoped like in RE2.
 */

export class Re2SyntaxError extends Error {
  override readonly name = 'Re2SyntaxError';
}

export interface TranslatedRegex {
  readonly source: string;
  readonly flags: string;
}

type Range = readonly [number, number];

const MAX_CODE_POINT = 0x10ffff;
/** RE2 rejects `{n,m}` counts above this (regexp/syntax maxRepeat). */
const MAX_REPEAT = 1000;

// ASCII tables shared by Perl escapes (\d \s \w) and POSIX classes ([:alpha:]).
const DIGIT: Range[] = [[0x30, 0x39]];
const PERL_SPACE: Range[] = [[0x09, 0x0a], [0x0c, 0x0d], [0x20, 0x20]];
const WORD: Range[] = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
const POSIX: Readonly<Record<string, Range[]>> = {
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: DIGIT,
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: [[0x09, 0x0d], [0x20, 0x20]],
  upper: [[0x41, 0x5a]],
  word: WORD,
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};
const PERL_CLASSES: Readonly<Record<string, Range[]>> = { d: DIGIT, s: PERL_SPACE, w: WORD };

// Unicode general categories are written bare in JS (\p{Lu}); anything else RE2 accepts in
// \p{...} is a script name, which JS spells \p{Script=Greek}.
const GENERAL_CATEGORIES = new Set(
  'C Cc Cf Co Cs L LC Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs Any ASCII Assigned'.split(' '),
);

// Characters that must be escaped outside a class in `u` mode (`-` must not be: `\-` is an error there).
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/');
const C_ESCAPES: Readonly<Record<string, number>> = { a: 0x07, f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09, v: 0x0b };

/** One literal code point, written so the JS parser in `u` mode reads it back unchanged. */
function literal(cp: number): string {
  const ch = String.fromCodePoint(cp);
  if (JS_SYNTAX.has(ch)) return `\\${ch}`;
  // Control characters and lone surrogates are spelled out so the source stays readable/valid.
  if (cp < 0x20 || cp === 0x7f || (cp >= 0xd800 && cp <= 0xdfff)) return `\\u{${cp.toString(16)}}`;
  return ch;
}

function classItem([lo, hi]: Range): string {
  const a = `\\u{${lo.toString(16)}}`;
  return lo === hi ? a : `${a}-\\u{${hi.toString(16)}}`;
}

function complement(ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of sorted) {
    if (lo > next) out.push([next, lo - 1]);
    next = Math.max(next, hi + 1);
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

interface Flags {
  fold: boolean; // i
  multiLine: boolean; // m: ^ and $ also match at \n
  dotAll: boolean; // s: . matches \n
  ungreedy: boolean; // U: swap greedy and lazy repeats
}

class Translator {
  private pos = 0;
  private out = '';
  private flags: Flags = { fold: false, multiLine: false, dotAll: false, ungreedy: false };
  private readonly saved: Flags[] = [];
  /** Whether the JS RegExp gets the `i` flag; fixed by a leading `(?i)`. */
  private jsFold = false;
  /** Set once anything but a leading flag group has been seen; `(?i)` is only allowed before. */
  private started = false;

  constructor(private readonly src: string) {}

  run(): TranslatedRegex {
    while (this.pos < this.src.length) {
      const c = this.src[this.pos] as string;
      if (c === '(' && this.src[this.pos + 1] === '?') {
        this.group();
        continue;
      }
      this.started = true;
      switch (c) {
        case '(':
          this.saved.push({ ...this.flags });
          this.out += '(';
          this.pos++;
          break;
        case ')':
          this.flags = this.saved.pop() ?? this.flags;
          this.out += ')';
          this.pos++;
          break;
        case '|':
          this.out += '|';
          this.pos++;
          break;
        case '.':
          this.out += this.flags.dotAll ? '[^]' : '[^\\n]';
          this.pos++;
          break;
        // Assertions are wrapped in (?:...) because RE2 lets them be repeated (`^*`) and JS does not.
        case '^':
          this.out += this.flags.multiLine ? '(?:(?<![^\\n]))' : '(?:^)';
          this.pos++;
          break;
        case '$':
          this.out += this.flags.multiLine ? '(?:(?![^\\n]))' : '(?:$)';
          this.pos++;
          break;
        case '*':
        case '+':
        case '?':
          this.pos++;
          this.repeatSuffix(c);
          break;
        case '{':
          this.brace();
          break;
        case '[':
          this.out += this.charClass();
          break;
        case '\\':
          this.escape();
          break;
        default: {
          const cp = this.src.codePointAt(this.pos) as number;
          this.out += literal(cp);
          this.pos += cp > 0xffff ? 2 : 1;
        }
      }
    }
    return { source: this.out, flags: this.jsFold ? 'iu' : 'u' };
  }

  private fail(message: string): never {
    throw new Re2SyntaxError(message);
  }

  /** Emits a repeat operator, honouring a trailing `?` (lazy) and the U flag (which swaps the two). */
  private repeatSuffix(op: string): void {
    let lazy = false;
    if (this.src[this.pos] === '?') {
      lazy = true;
      this.pos++;
    }
    if (this.flags.ungreedy) lazy = !lazy;
    this.out += lazy ? `${op}?` : op;
  }

  /** `{n}`, `{n,}` or `{n,m}` is a repeat; any other `{` is a literal brace in RE2. */
  private brace(): void {
    const m = /^\{(0|[1-9][0-9]*)(,(0|[1-9][0-9]*)?)?\}/.exec(this.src.slice(this.pos));
    if (!m) {
      this.out += '\\{';
      this.pos++;
      return;
    }
    const min = Number(m[1]);
    const max = m[3] === undefined ? (m[2] === undefined ? min : Infinity) : Number(m[3]);
    if (min > MAX_REPEAT || (max !== Infinity && (max > MAX_REPEAT || min > max))) {
      this.fail(`invalid repeat count ${m[0]} (RE2 allows 0 to ${MAX_REPEAT}, with min <= max)`);
    }
    this.pos += m[0].length;
    this.repeatSuffix(m[0]);
  }

  /** `(?` forms: flag groups, non-capturing groups and named captures. */
  private group(): void {
    const rest = this.src.slice(this.pos);
    const named = /^\(\?P?<([^>]*)>/.exec(rest);
    if (named) {
      const name = named[1] as string;
      if (name.startsWith('=') || name.startsWith('!') || rest.startsWith('(?<=') || rest.startsWith('(?<!')) {
        this.fail('look-behind assertions (?<= and (?<! are not supported by RE2');
      }
      if (!/^[A-Za-z0-9_]+$/.test(name)) this.fail(`invalid capture group name "${name}" (use letters, digits and _)`);
      if (/^[0-9]/.test(name)) this.fail(`capture group name "${name}" must not start with a digit`);
      this.started = true;
      this.saved.push({ ...this.flags });
      this.out += `(?<${name}>`;
      this.pos += named[0].length;
      return;
    }
    if (rest.startsWith('(?=') || rest.startsWith('(?!') || rest.startsWith('(?<')) {
      this.fail('look-around assertions such as (?= and (?! are not supported by RE2');
    }
    const m = /^\(\?([imsU]*)(?:-([imsU]*))?([:)])/.exec(rest);
    // `(?-)` is an error in RE2 while `(?)` is an (odd) no-op.
    if (!m || m[2] === '') {
      this.fail(`invalid or unsupported group syntax "${rest.slice(0, 4)}"`);
    }
    const next: Flags = { ...this.flags };
    for (const [letters, on] of [
      [m[1] as string, true],
      [m[2] ?? '', false],
    ] as const) {
      for (const f of letters) {
        if (f === 'i') next.fold = on;
        else if (f === 'm') next.multiLine = on;
        else if (f === 's') next.dotAll = on;
        else next.ungreedy = on;
      }
    }
    const isGroup = m[3] === ':';
    if (next.fold !== this.flags.fold) {
      // JS (Node 20) has no inline modifiers, so case folding can only be switched for the whole
      // pattern. A leading (?i) is by far the common case and maps onto the `i` flag exactly.
      if (this.started || isGroup || this.saved.length > 0) {
        this.fail('the case-insensitive flag (?i) is only supported at the very start of the pattern, e.g. /(?i)^team-.*$/');
      }
      this.jsFold = next.fold;
    }
    this.pos += m[0].length;
    if (isGroup) {
      this.started = true;
      this.saved.push({ ...this.flags });
      this.out += '(?:';
    }
    this.flags = next;
  }

  private escape(): void {
    const c = this.src[this.pos + 1];
    if (c === undefined) this.fail('pattern ends with a lone backslash; write \\\\ for a literal backslash');
    switch (c) {
      case 'A':
        this.out += '(?:^)';
        this.pos += 2;
        return;
      case 'z':
        this.out += '(?:$)';
        this.pos += 2;
        return;
      case 'b':
      case 'B':
        this.out += `(?:\\${c})`;
        this.pos += 2;
        return;
      case 'Q': {
        // Everything up to \E (or the end) is literal text.
        const end = this.src.indexOf('\\E', this.pos + 2);
        const text = this.src.slice(this.pos + 2, end < 0 ? undefined : end);
        for (const ch of text) this.out += literal(ch.codePointAt(0) as number);
        this.pos = end < 0 ? this.src.length : end + 2;
        return;
      }
    }
    const cls = this.classEscape();
    if (cls !== null) {
      this.out += `[${cls}]`;
      return;
    }
    this.out += literal(this.singleEscape());
  }

  /**
   * Parses `\d \D \s \S \w \W \pX \p{..} \PX \P{..}` at `pos`, returning JS class *contents*
   * (without the brackets) or null if the escape is not a class.
   */
  private classEscape(): string | null {
    const c = this.src[this.pos + 1] as string;
    const perl = PERL_CLASSES[c.toLowerCase()];
    if (perl) {
      this.pos += 2;
      const ranges = c === c.toLowerCase() ? perl : complement(perl);
      return ranges.map(classItem).join('');
    }
    if (c !== 'p' && c !== 'P') return null;
    let name: string;
    if (this.src[this.pos + 2] === '{') {
      const end = this.src.indexOf('}', this.pos + 3);
      if (end < 0) this.fail('unterminated \\p{...} Unicode class');
      name = this.src.slice(this.pos + 3, end);
      this.pos = end + 1;
    } else {
      const letter = this.src[this.pos + 2];
      if (letter === undefined) this.fail('\\p must be followed by a class name');
      name = letter;
      this.pos += 3;
    }
    let negate = c === 'P';
    if (name.startsWith('^')) {
      negate = !negate;
      name = name.slice(1);
    }
    if (!/^[A-Za-z_]+$/.test(name)) this.fail(`invalid Unicode class name "${name}"`);
    const prop = GENERAL_CATEGORIES.has(name) ? name : `Script=${name}`;
    return `\\${negate ? 'P' : 'p'}{${prop}}`;
  }

  /** A single-character escape (`\n`, `\x41`, `\101`, `\.`); returns its code point. */
  private singleEscape(): number {
    const start = this.pos;
    const c = this.src[this.pos + 1];
    if (c === undefined) this.fail('pattern ends with a lone backslash; write \\\\ for a literal backslash');
    this.pos += 2;
    if (c in C_ESCAPES) return C_ESCAPES[c] as number;
    if (c >= '0' && c <= '7') {
      // RE2 reads up to three octal digits, but a lone \1..\7 would be a back-reference.
      const m = /^[0-7]{1,3}/.exec(this.src.slice(start + 1)) as RegExpExecArray;
      if (c !== '0' && m[0].length === 1) this.fail(`back-references such as \\${c} are not supported by RE2`);
      this.pos = start + 1 + m[0].length;
      return parseInt(m[0], 8);
    }
    if (c === '8' || c === '9') this.fail(`back-references such as \\${c} are not supported by RE2`);
    if (c === 'x') {
      const m = /^(?:\{([0-9A-Fa-f]+)\}|([0-9A-Fa-f]{2}))/.exec(this.src.slice(this.pos));
      const hex = m ? (m[1] ?? m[2]) : undefined;
      if (m === null || hex === undefined || parseInt(hex, 16) > MAX_CODE_POINT) {
        this.fail('invalid \\x escape; use \\x41 or \\x{1F600}');
      }
      this.pos += m[0].length;
      return parseInt(hex, 16);
    }
    // RE2 lets any ASCII punctuation be escaped and rejects unknown letter/digit escapes like \q.
    const cp = c.codePointAt(0) as number;
    if (cp < 0x80 && !/[0-9A-Za-z]/.test(c)) return cp;
    this.fail(`invalid escape sequence \\${c}`);
  }

  /** Parses `[...]` at `pos` (RE2 rules) and returns an explicit JS class. */
  private charClass(): string {
    const start = this.pos;
    this.pos++;
    let negated = false;
    if (this.src[this.pos] === '^') {
      negated = true;
      this.pos++;
    }
    let body = '';
    let first = true;
    for (;;) {
      const c = this.src[this.pos];
      if (c === undefined) this.fail(`missing closing ] in character class ${this.src.slice(start)}`);
      // A `]` right after `[` or `[^` is a literal member in RE2 (in JS it would close the class).
      if (c === ']' && !first) {
        this.pos++;
        break;
      }
      first = false;
      if (c === '[' && this.src[this.pos + 1] === ':') {
        const end = this.src.indexOf(':]', this.pos + 2);
        if (end >= 0) {
          let name = this.src.slice(this.pos + 2, end);
          const neg = name.startsWith('^');
          if (neg) name = name.slice(1);
          const ranges = POSIX[name];
          if (ranges === undefined) this.fail(`unknown POSIX class [:${name}:]`);
          body += (neg ? complement(ranges) : ranges).map(classItem).join('');
          this.pos = end + 2;
          continue;
        }
      }
      if (c === '\\') {
        const cls = this.classEscape();
        if (cls !== null) {
          body += cls;
          continue;
        }
      }
      const rangeStart = this.pos;
      const lo = this.classChar();
      let hi = lo;
      if (this.src[this.pos] === '-' && this.src[this.pos + 1] !== ']' && this.src[this.pos + 1] !== undefined) {
        this.pos++;
        hi = this.classChar();
        if (hi < lo) this.fail(`invalid character class range ${this.src.slice(rangeStart, this.pos)} (the start is after the end)`);
      }
      body += classItem([lo, hi]);
    }
    return `[${negated ? '^' : ''}${body}]`;
  }

  private classChar(): number {
    if (this.src[this.pos] === '\\') {
      const next = this.src[this.pos + 1];
      if (next !== undefined && /[dDsSwWpP]/.test(next)) {
        this.fail(`a class escape such as \\${next} cannot be the end of a range`);
      }
      return this.singleEscape();
    }
    const cp = this.src.codePointAt(this.pos) as number;
    this.pos += cp > 0xffff ? 2 : 1;
    return cp;
  }
}

/** Translates RE2 source to JS; throws Re2SyntaxError for syntax RE2 rejects or we cannot express. */
export function translateRe2(source: string): TranslatedRegex {
  return new Translator(source).run();
}

/** Translates and compiles; every failure (ours or the JS engine's) becomes a Re2SyntaxError. */
export function compileRe2(source: string): RegExp {
  const t = translateRe2(source);
  try {
    return new RegExp(t.source, t.flags);
  } catch (err) {
    // V8 says "Invalid regular expression: /<translated>/u: Unterminated group"; the translated
    // source would only confuse the reader, so keep the reason.
    const detail = err instanceof Error ? err.message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '') : String(err);
    throw new Re2SyntaxError(detail);
  }
}
