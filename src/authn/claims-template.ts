/**
 * `${claims.<path>}` templates: how a trusted issuer's verified ID token becomes an account name
 * and labels (`gha:${claims.repository}`,
 * `system:serviceaccount:${claims.kubernetes.io.namespace}:${claims.kubernetes.io.serviceaccount.name}`).
 *
 * A path is dotted names and array indexes (`groups.0` or `groups[0]`). Claim names may hold dots
 * themselves (Kubernetes puts everything under `kubernetes.io`), so a path is resolved against the
 * claims as they are: at each level the longest run of segments that names a key wins, and a
 * shorter one is tried when the rest does not resolve under it.
 */

export class ClaimsTemplateError extends Error {
  override readonly name = 'ClaimsTemplateError';
}

/** The segments of a claim path, as written. */
export type ClaimPath = readonly string[];

export interface ClaimsTemplate {
  readonly source: string;
  /** Literal text and claim paths, in order. */
  readonly parts: readonly (string | ClaimPath)[];
}

const SEGMENT = /^[^.[\]\s{}$]+$/;
const INDEX = /^(?:0|[1-9]\d{0,8})$/;

/** Parses `repository`, `kubernetes.io.namespace`, `groups[0]` (the part after `claims.`). */
export function parseClaimPath(path: string): ClaimPath {
  const segments: string[] = [];
  // `a[0].b` → `a.0.b`: one grammar for both index forms.
  const dotted = path.replace(/\[(\d+)\]/g, '.$1');
  for (const segment of dotted.split('.')) {
    if (!SEGMENT.test(segment)) {
      throw new ClaimsTemplateError(
        `invalid claim path ${JSON.stringify(path)}: write names separated by dots, with [N] or .N for list items (e.g. kubernetes.io.namespace, groups[0])`,
      );
    }
    segments.push(segment);
  }
  return segments;
}

function resolve(value: unknown, path: ClaimPath, from: number): unknown {
  if (from === path.length) return value;
  if (Array.isArray(value)) {
    const segment = path[from] as string;
    return INDEX.test(segment) ? resolve(value[Number(segment)], path, from + 1) : undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  for (let end = path.length; end > from; end--) {
    const key = path.slice(from, end).join('.');
    if (!Object.hasOwn(value, key)) continue;
    const found = resolve((value as Record<string, unknown>)[key], path, end);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The claim a path names, or undefined when there is none. */
export function claimAt(claims: unknown, path: ClaimPath): unknown {
  return resolve(claims, path, 0);
}

/**
 * A claim as template text: a non-empty string, a finite number or a boolean. Anything else
 * (missing, null, an object, a list, `""`) is not a value: an empty account would be the anonymous
 * one, and an empty label value would match patterns nobody meant it to.
 */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

const PLACEHOLDER = /\$\{([^}]*)\}/g;

/** Parses a template at config load; throws ClaimsTemplateError with a message saying how to fix it. */
export function parseClaimsTemplate(source: string): ClaimsTemplate {
  const parts: (string | ClaimPath)[] = [];
  let last = 0;
  for (const match of source.matchAll(PLACEHOLDER)) {
    const inside = match[1] as string;
    if (!inside.startsWith('claims.')) {
      throw new ClaimsTemplateError(`unknown placeholder \${${inside}}: the only placeholder is \${claims.<path>}, e.g. \${claims.repository}`);
    }
    if (match.index > last) parts.push(source.slice(last, match.index));
    parts.push(parseClaimPath(inside.slice('claims.'.length)));
    last = match.index + match[0].length;
  }
  const rest = source.slice(last);
  if (rest.includes('${')) throw new ClaimsTemplateError(`unterminated placeholder in ${JSON.stringify(source)}: close it with }`);
  if (rest !== '') parts.push(rest);
  return { source, parts };
}

/** The path of the first placeholder that has no value in these claims, for messages. */
export function missingPlaceholder(template: ClaimsTemplate, claims: unknown): string | undefined {
  for (const part of template.parts) {
    if (typeof part !== 'string' && scalarText(claimAt(claims, part)) === undefined) return `claims.${part.join('.')}`;
  }
  return undefined;
}

/** The template with every placeholder filled, or undefined when a placeholder has no value. */
export function expandClaimsTemplate(template: ClaimsTemplate, claims: unknown): string | undefined {
  let out = '';
  for (const part of template.parts) {
    if (typeof part === 'string') {
      out += part;
      continue;
    }
    const text = scalarText(claimAt(claims, part));
    if (text === undefined) return undefined;
    out += text;
  }
  return out;
}

/**
 * Label values: as expandClaimsTemplate, except that a template that is one placeholder naming a
 * list (`${claims.groups}`) gives one value per item. No value at all gives [].
 */
export function expandClaimsValues(template: ClaimsTemplate, claims: unknown): string[] {
  const [only] = template.parts;
  if (template.parts.length === 1 && only !== undefined && typeof only !== 'string') {
    const value = claimAt(claims, only);
    if (Array.isArray(value)) return value.map(scalarText).filter((v): v is string => v !== undefined);
  }
  const text = expandClaimsTemplate(template, claims);
  return text === undefined ? [] : [text];
}
