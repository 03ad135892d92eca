/**
 * Keeps the user documentation in step with the code: every error code has a row in
 * docs/errors.md with its real HTTP status, every configuration key is documented in
 * docs/configuration.md, docs/config-keys.md is what the schema generates, and every CLI command
 * is listed in README.md.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS_PATH, generateConfigReference } from '../../scripts/config-reference.js';
import { configSchema } from '../../src/config/schema.js';
import { schemaKeys } from '../../src/config/schema-walk.js';
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

describe('docs/config-keys.md', () => {
  it('is what scripts/config-reference.ts generates from the schema now (npm run config-reference)', () => {
    const committed = readFileSync(CONFIG_KEYS_PATH, 'utf8');
    expect(committed, 'docs/config-keys.md is out of date: run `npm run config-reference`').toBe(generateConfigReference());
  });

  it('lists every key path with its type and default', () => {
    const doc = read('docs/config-keys.md');
    expect(doc).toMatch(/^\| `token\.expiration` \| integer \(60–86400\) \| `300` \| .+ \|$/m);
    expect(doc).toMatch(/^\| `token\.issuer` \| string \| required \| .+ \|$/m);
    expect(doc).toMatch(/^\| `acl\[\]\.match\.ip` \| string \| — \| .+ \|$/m);
    for (const { path } of schemaKeys(configSchema)) expect(doc).toContain(`| \`${path}\` |`);
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
