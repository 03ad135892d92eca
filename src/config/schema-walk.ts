import { z } from 'zod';

/**
 * Walks a zod (v4) schema and lists every object key reachable from it, with what a reader needs
 * to know about it: its type, default, whether it is required, and its `.describe()` text. zod v4
 * keeps the structure in `_zod.def`. An unknown kind of schema fails the walk, so a new construct
 * cannot hide keys from the documentation. Used by scripts/config-reference.ts (which writes
 * docs/config-keys.md) and test/unit/docs.test.ts.
 */

export interface SchemaKey {
  /** Where the key sits, e.g. `acl[].match.ip`; `[]` is a list element, `*` any key of a map. */
  path: string;
  key: string;
  /** 0 for a top-level key. */
  depth: number;
  /** A short human description of the value's type, e.g. `integer (60–86400)`, `list of string`. */
  type: string;
  /** The default as JSON, when the schema has one. */
  default?: string;
  /** Required: no optional, default or prefault wrapper. */
  required: boolean;
  description?: string;
}

export interface WalkOptions {
  /** Names for shared schemas, used instead of their structure (e.g. a duration union). */
  names?: ReadonlyMap<z.core.$ZodType, string>;
}

type Def = z.core.$ZodTypeDef;

const WRAPPERS = new Set(['optional', 'nonoptional', 'default', 'prefault', 'nullable', 'readonly', 'catch']);
const LEAVES = new Set([
  'string', 'number', 'int', 'boolean', 'bigint', 'enum', 'literal', 'transform', 'null', 'undefined', 'void',
  'any', 'unknown', 'never', 'date', 'nan', 'symbol', 'custom', 'template_literal', 'file', 'success',
]);

const describedAs = (schema: z.core.$ZodType): string | undefined => z.globalRegistry.get(schema)?.description;

/** Strips wrappers, collecting what they say about the field. */
function unwrap(schema: z.core.$ZodType): { core: z.core.$ZodType; description?: string; default?: unknown; hasDefault: boolean; optional: boolean } {
  let current = schema;
  let description: string | undefined;
  let value: unknown;
  let hasDefault = false;
  let optional = false;
  for (;;) {
    description ??= describedAs(current);
    const def = current._zod.def;
    if (!WRAPPERS.has(def.type)) break;
    if ((def.type === 'default' || def.type === 'prefault') && !hasDefault) {
      hasDefault = true;
      value = (def as z.core.$ZodDefaultDef).defaultValue;
    }
    if (def.type === 'optional' || def.type === 'default' || def.type === 'prefault') optional = true;
    current = (def as z.core.$ZodOptionalDef).innerType;
  }
  return { core: current, ...(description === undefined ? {} : { description }), ...(hasDefault ? { default: value } : {}), hasDefault, optional };
}

function numberType(def: Def): string {
  const format = (def as z.core.$ZodNumberFormatDef).format;
  const base = format === 'safeint' || format === 'int32' || format === 'uint32' ? 'integer' : 'number';
  let min: string | undefined;
  let max: string | undefined;
  for (const check of def.checks ?? []) {
    const c = check._zod.def as { check: string; value?: unknown; inclusive?: boolean };
    if (c.check === 'greater_than') min = `${c.inclusive ? '≥' : '>'} ${String(c.value)}`;
    if (c.check === 'less_than') max = `${c.inclusive ? '≤' : '<'} ${String(c.value)}`;
  }
  if (min?.startsWith('≥') && max?.startsWith('≤')) return `${base} (${min.slice(2)}–${max.slice(2)})`;
  const range = [min, max].filter((x) => x !== undefined).join(', ');
  return range ? `${base} (${range})` : base;
}

/** A short description of a value's type. */
export function typeOf(schema: z.core.$ZodType, options: WalkOptions = {}): string {
  const named = options.names?.get(schema);
  if (named) return named;
  const def = schema._zod.def;
  switch (def.type) {
    case 'string':
      return (def as z.core.$ZodStringFormatDef).format === 'url' ? 'URL' : 'string';
    case 'number':
    case 'int':
      return numberType(def);
    case 'boolean':
      return 'boolean';
    case 'enum': {
      const values = Object.values((def as z.core.$ZodEnumDef).entries).map((v) => `\`${String(v)}\``);
      return values.length <= 2 ? values.join(' or ') : `one of ${values.join(', ')}`;
    }
    case 'literal':
      return (def as z.core.$ZodLiteralDef<z.core.util.Literal>).values.map((v) => `\`${String(v)}\``).join(' or ');
    case 'object':
      return 'mapping';
    case 'array':
      return `list of ${typeOf((def as z.core.$ZodArrayDef).element, options)}`;
    case 'record': {
      const r = def as z.core.$ZodRecordDef;
      return `map of ${typeOf(r.keyType, options)} to ${typeOf(r.valueType, options)}`;
    }
    case 'union':
      return [...new Set((def as z.core.$ZodUnionDef).options.map((o) => typeOf(o, options)))].join(' or ');
    case 'pipe':
      return typeOf((def as z.core.$ZodPipeDef).in, options);
    case 'lazy':
      return typeOf((def as z.core.$ZodLazyDef).getter(), options);
    default:
      if (WRAPPERS.has(def.type)) return typeOf((def as z.core.$ZodOptionalDef).innerType, options);
      return def.type === 'unknown' || def.type === 'any' ? 'any' : def.type;
  }
}

function walk(schema: z.core.$ZodType, path: string, depth: number, options: WalkOptions, out: SchemaKey[]): void {
  const def = schema._zod.def;
  switch (def.type) {
    case 'object':
      for (const [key, child] of Object.entries((def as z.core.$ZodObjectDef).shape)) {
        const childPath = path ? `${path}.${key}` : key;
        const field = unwrap(child);
        const entry: SchemaKey = { path: childPath, key, depth, type: typeOf(field.core, options), required: !field.optional };
        if (field.hasDefault) entry.default = JSON.stringify(field.default);
        if (field.description !== undefined) entry.description = field.description;
        out.push(entry);
        walk(field.core, childPath, depth + 1, options, out);
      }
      break;
    case 'pipe':
      walk((def as z.core.$ZodPipeDef).in, path, depth, options, out);
      walk((def as z.core.$ZodPipeDef).out, path, depth, options, out);
      break;
    case 'array':
      walk((def as z.core.$ZodArrayDef).element, `${path}[]`, depth, options, out);
      break;
    case 'record':
      walk((def as z.core.$ZodRecordDef).valueType, `${path}.*`, depth, options, out);
      break;
    case 'union':
      for (const option of (def as z.core.$ZodUnionDef).options) walk(option, path, depth, options, out);
      break;
    case 'intersection':
      walk((def as z.core.$ZodIntersectionDef).left, path, depth, options, out);
      walk((def as z.core.$ZodIntersectionDef).right, path, depth, options, out);
      break;
    case 'tuple':
      for (const item of (def as z.core.$ZodTupleDef).items) walk(item, `${path}[]`, depth, options, out);
      break;
    case 'lazy':
      walk((def as z.core.$ZodLazyDef).getter(), path, depth, options, out);
      break;
    default:
      if (WRAPPERS.has(def.type)) walk((def as z.core.$ZodOptionalDef).innerType, path, depth, options, out);
      else if (!LEAVES.has(def.type)) {
        throw new Error(`schemaKeys: schema type "${def.type}" at ${path || '(top level)'} is not handled; extend src/config/schema-walk.ts`);
      }
  }
}

/**
 * Every object key reachable from a schema, in schema order. A key reachable through several
 * union options appears once per option that declares it; the first wins in `uniqueKeys`.
 */
export function schemaKeys(schema: z.core.$ZodType, options: WalkOptions = {}): SchemaKey[] {
  const out: SchemaKey[] = [];
  walk(schema, '', 0, options, out);
  return out;
}

/** One entry per path (the first declaration wins), for listing. */
export function uniqueKeys(keys: readonly SchemaKey[]): SchemaKey[] {
  const seen = new Set<string>();
  return keys.filter((k) => !seen.has(k.path) && seen.add(k.path));
}
