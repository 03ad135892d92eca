/**
 * Placeholders in ACL patterns (docker_auth §2.3 "Placeholders"):
 *
 *   ${account} ${type} ${name} ${service}   the request's value, quoted like Go's regexp.QuoteMeta
 *   ${account:N} (also type/name/service)    group N of that field's own /regex/ on the request value
 *   ${labels:k}                              each value of the user's label k, raw (see below)
 *
 * A pattern is parsed once into segments and expanded per request. Anything that looks like a
 * placeholder but is not one of these is kept as literal text, as docker_auth does.
 */

export const FIELDS = ['account', 'type', 'name', 'service'] as const;
export type Field = (typeof FIELDS)[number];

export type Segment =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'field'; readonly field: Field }
  | { readonly kind: 'capture'; readonly field: Field; readonly group: number; readonly text: string }
  | { readonly kind: 'label'; readonly slot: number };

export interface Template {
  readonly segments: readonly Segment[];
  /** Distinct label keys, in order of first use; a `label` segment's slot indexes this. */
  readonly labelKeys: readonly string[];
}

/**
 * Go's regexp.QuoteMeta escapes exactly these. A backslash escape is literal in both RE2 and Go
 * path.Match, so a quoted value stays literal whichever kind of pattern it lands in.
 */
const QUOTE_META = /[\\.+*?()|[\]{}^$]/g;

export function quoteMeta(value: string): string {
  return value.replace(QUOTE_META, '\\$&');
}

const CAPTURE = /^(account|type|name|service):([0-9]+)$/;

/**
 * Splits a pattern into text and placeholders; returns null when it has none, so the caller can
 * compile it once. With `allowLabels` false (label match patterns), `${labels:k}` stays literal.
 */
export function parseTemplate(pattern: string, allowLabels: boolean): Template | null {
  const segments: Segment[] = [];
  const labelKeys: string[] = [];
  let text = '';
  let i = 0;
  while (i < pattern.length) {
    const close = pattern.startsWith('${', i) ? pattern.indexOf('}', i + 2) : -1;
    const name = close < 0 ? '' : pattern.slice(i + 2, close);
    let segment: Segment | null = null;
    // A `{` inside means this `${` is not a placeholder itself; a later `${` may still be one.
    if (close >= 0 && !name.includes('{')) {
      const capture = CAPTURE.exec(name);
      if ((FIELDS as readonly string[]).includes(name)) {
        segment = { kind: 'field', field: name as Field };
      } else if (capture) {
        const field = capture[1] as Field;
        segment = { kind: 'capture', field, group: Number(capture[2]), text: pattern.slice(i, close + 1) };
      } else if (allowLabels && name.startsWith('labels:')) {
        const key = name.slice('labels:'.length);
        let slot = labelKeys.indexOf(key);
        if (slot < 0) slot = labelKeys.push(key) - 1;
        segment = { kind: 'label', slot };
      }
    }
    if (segment === null) {
      text += pattern[i];
      i++;
      continue;
    }
    if (text !== '') segments.push({ kind: 'text', text });
    text = '';
    segments.push(segment);
    i = close + 1;
  }
  if (segments.length === 0) return null;
  if (text !== '') segments.push({ kind: 'text', text });
  return { segments, labelKeys };
}

/** What a request supplies to an expansion. */
export interface PlaceholderValues {
  /** The request's value of `field`, already quoted. */
  quoted(field: Field): string;
  /** Capture group `group` of the field's own regex, quoted; undefined leaves the placeholder as text. */
  capture(field: Field, group: number): string | undefined;
}

/**
 * Expands a template. `labelValues[slot]` is the value chosen for `labelKeys[slot]`.
 *
 * Label values are inserted raw, not quoted: docker_auth does the same and configs rely on it (a
 * label value `a*` acts as a glob). Kept for compatibility, although it lets whoever controls a
 * user's labels widen what that user may match.
 */
export function expandTemplate(
  template: Template,
  values: PlaceholderValues,
  labelValues: readonly string[] | null,
): string {
  let out = '';
  for (const s of template.segments) {
    switch (s.kind) {
      case 'text':
        out += s.text;
        break;
      case 'field':
        out += values.quoted(s.field);
        break;
      case 'capture':
        out += values.capture(s.field, s.group) ?? s.text;
        break;
      case 'label':
        out += labelValues?.[s.slot] ?? '';
        break;
    }
  }
  return out;
}

/**
 * Upper bound on label combinations tried for one pattern. The product of several placeholders
 * grows fast (3 labels x 100 values = 10^6), and every combination is a pattern to compile. When
 * the bound is hit the pattern counts as not matching, so an oversized label set fails closed.
 */
export const MAX_LABEL_COMBINATIONS = 4096;

/**
 * Walks the cartesian product of `lists` like an odometer, one combination at a time, and stops at
 * the first one `visit` accepts. Nothing runs in the background and nothing is left behind when
 * it stops early. `visit` gets the same array each time, so it must not keep it.
 */
export function someCombination(
  lists: readonly (readonly string[])[],
  visit: (values: readonly string[]) => boolean,
  limit: number = MAX_LABEL_COMBINATIONS,
): boolean {
  if (lists.some((l) => l.length === 0)) return false;
  const index = lists.map(() => 0);
  const values = lists.map((l) => l[0] as string);
  for (let tried = 0; tried < limit; tried++) {
    if (visit(values)) return true;
    // Advance the last position; carry into earlier ones when a list wraps around.
    let p = lists.length - 1;
    for (; p >= 0; p--) {
      const list = lists[p] as readonly string[];
      const next = (index[p] as number) + 1;
      if (next < list.length) {
        index[p] = next;
        values[p] = list[next] as string;
        break;
      }
      index[p] = 0;
      values[p] = list[0] as string;
    }
    if (p < 0) return false; // every combination tried
  }
  return false;
}
