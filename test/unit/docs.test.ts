/**
 * Keeps the user documentation in step with the code: every error code has a row in
 * docs/errors.md with its real HTTP status, every configuration key is documented in
 * docs/configuration.md, and every CLI command is listed in README.md.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';
import type { ErrorCode } from '../../src/protocol/errors.js';
import { statusOf } from '../../src/server/errors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The members of the `ErrorCode` union, read from its source text. */
function errorCodes(): ErrorCode[] {
  const source = read('src/protocol/errors.ts');
  const union = /export type ErrorCode\s*=([^;]+);/.exec(source)?.[1];
  if (union === undefined) throw new Error('cannot find the ErrorCode union in src/protocol/errors.ts');
  return [...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1] as ErrorCode);
}

interface SchemaKey {
  /** Where the key sits, e.g. `acl[].match.ip`. */
  path: string;
  key: string;
  depth: number;
}

/**
 * Every object key reachable from a schema, through the wrappers the config schema uses
 * (optional, default, prefault, nullable, pipe, array, record, ...). zod v4 keeps the structure
 * in `_zod.def`; an unknown wrapper fails the walk, so a new kind of schema cannot hide keys.
 */
function schemaKeys(schema: z.core.$ZodType, path = '', depth = 0, out: SchemaKey[] = []): SchemaKey[] {
  const def = schema._zod.def;
  switch (def.type) {
    case 'object':
      for (const [key, child] of Object.entries((def as z.core.$ZodObjectDef).shape)) {
        const childPath = path ? `${path}.${key}` : key;
        out.push({ path: childPath, key, depth });
        schemaKeys(child, childPath, depth + 1, out);
      }
      break;
    case 'optional':
    case 'nonoptional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'readonly':
    case 'catch':
      schemaKeys((def as z.core.$ZodOptionalDef).innerType, path, depth, out);
      break;
    case 'pipe':
      schemaKeys((def as z.core.$ZodPipeDef).in, path, depth, out);
      schemaKeys((def as z.core.$ZodPipeDef).out, path, depth, out);
      break;
    case 'array':
      schemaKeys((def as z.core.$ZodArrayDef).element, `${path}[]`, depth, out);
      break;
    case 'record':
      schemaKeys((def as z.core.$ZodRecordDef).valueType, `${path}.*`, depth, out);
      break;
    case 'union':
      for (const option of (def as z.core.$ZodUnionDef).options) schemaKeys(option, path, depth, out);
      break;
    case 'string':
    case 'number':
    case 'int':
    case 'boolean':
    case 'enum':
    case 'literal':
    case 'transform':
      break;
    default:
      throw new Error(`schemaKeys: schema type "${def.type}" at ${path || '(top level)'} is not handled; extend the walk`);
  }
  return out;
}

/** `.command('name'` calls in the CLI entry point. */
function cliCommands(): string[] {
  const source = read('src/cli/main.ts');
  return [...source.matchAll(/\.command\(\s*['"]([a-z][a-z0-9-]*)['"]/g)].map((m) => m[1] as string);
}

describe('docs/errors.md', () => {
  const doc = read('docs/errors.md');
  const codes = errorCodes();

  it('finds the error codes in the source', () => {
    expect(codes.length).toBeGreaterThanOrEqual(5);
    expect(codes).toContain('UNAUTHORIZED');
  });

  it.each(codes)('has a row for %s with its HTTP status', (code) => {
    const row = new RegExp(`^\\| \`${code}\` \\| (\\d{3}) \\|`, 'm').exec(doc);
    expect(row, `docs/errors.md needs a row starting with "| \`${code}\` |"`).not.toBeNull();
    expect(Number(row?.[1]), `the status of ${code} in docs/errors.md`).toBe(statusOf(code));
  });

  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.filter((c) => !codes.includes(c as ErrorCode))).toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  const doc = read('docs/configuration.md');
  const keys = schemaKeys(configSchema);

  it('walks the whole schema', () => {
    const paths = keys.map((k) => k.path);
    expect(paths).toEqual(expect.arrayContaining(['server.addr', 'token.jwt_header', 'users.*.labels', 'acl[].match.ip']));
  });

  it.each(keys.map((k) => [k.path, k] as const))('documents %s', (_path, { key, depth }) => {
    expect(doc, `docs/configuration.md never mentions \`${key}\``).toContain(`\`${key}\``);
    if (depth > 0) {
      // Keys inside a section belong in one of the key tables.
      const row = new RegExp(`^\\| \`${escapeRegExp(key)}\` \\|`, 'm');
      expect(doc, `docs/configuration.md needs a table row starting with "| \`${key}\` |"`).toMatch(row);
    }
  });
});

describe('README.md', () => {
  const readme = read('README.md');
  const commands = cliCommands();

  it('finds the commands in the CLI', () => {
    expect(commands).toContain('serve');
    expect(commands.length).toBeGreaterThanOrEqual(2);
  });

  it.each(commands)('lists the command %s', (command) => {
    expect(readme, `README.md never shows \`sts-docker-auth ${command}\``).toContain(`sts-docker-auth ${command}`);
  });
});
