/**
 * The npm package's manifest: what a user installs must run with `dependencies` alone, and the
 * tarball must carry what the manifest points at. test/e2e/pack.test.ts packs and installs it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

interface Manifest {
  name: string;
  version: string;
  license: string;
  type: string;
  bin: Record<string, string>;
  main: string;
  types: string;
  exports: Record<string, string | Record<string, string>>;
  files: string[];
  engines: { node: string };
  repository: { type: string; url: string };
  keywords: string[];
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

const manifest = JSON.parse(read('package.json')) as Manifest;

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(join(root, path)).isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(entry) ? [path] : [];
  });
}

/** `lodash/fp` -> `lodash`, `@scope/pkg/sub` -> `@scope/pkg`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] as string);
}

/** Every module specifier that is not relative: static imports, re-exports and `import()`. */
function bareImports(source: string): string[] {
  const patterns = [/\bfrom\s+['"]([^'"]+)['"]/g, /\bimport\s+['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  return patterns.flatMap((re) => [...source.matchAll(re)].map((m) => m[1] as string)).filter((s) => !s.startsWith('.'));
}

/** `dist/x/y.js` -> `src/x/y.ts`: what tsconfig.build.json compiles into it. */
const sourceOf = (distPath: string): string => distPath.replace(/^\.?\/?dist\//, 'src/').replace(/\.d\.ts$|\.js$/, '.ts');

describe('package.json', () => {
  const builtins = new Set(builtinModules);

  it.each(sourceFiles('src').map((f) => [relative(root, join(root, f))]))('%s imports only node: modules and dependencies', (file) => {
    const wrong = bareImports(read(file)).filter((specifier) => {
      if (specifier.startsWith('node:') || builtins.has(specifier)) return false;
      return !(packageName(specifier) in manifest.dependencies);
    });
    const hint = wrong.map((s) => `${s}${packageName(s) in manifest.devDependencies ? ' (a devDependency)' : ''}`);
    expect(hint, 'runtime code may import only what `npm install --omit=dev` installs').toEqual([]);
  });

  it('puts no package in both dependencies and devDependencies', () => {
    expect(Object.keys(manifest.dependencies).filter((name) => name in manifest.devDependencies)).toEqual([]);
  });

  it('pins every dependency to an exact version', () => {
    const loose = Object.entries({ ...manifest.dependencies, ...manifest.devDependencies }).filter(([, v]) => !/^\d+\.\d+\.\d+(-[\w.]+)?$/.test(v));
    expect(loose).toEqual([]);
  });

  it('ships dist, docs, README, CHANGELOG and LICENSE, which exist', () => {
    expect(manifest.files).toEqual(expect.arrayContaining(['dist', 'docs', 'README.md', 'CHANGELOG.md', 'LICENSE']));
    for (const entry of manifest.files.filter((f) => f !== 'dist')) expect(() => statSync(join(root, entry)), entry).not.toThrow();
  });

  it('has a bin built from the CLI entry point, which starts with a node shebang', () => {
    expect(Object.keys(manifest.bin)).toEqual(['sts-docker-auth']);
    const entry = sourceOf(manifest.bin['sts-docker-auth'] as string);
    expect(entry).toBe('src/cli/main.ts');
    expect(read(entry).startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('exports the library entry point and its types, built from src/index.ts', () => {
    const dot = manifest.exports['.'] as Record<string, string>;
    expect(dot).toEqual({ types: './dist/index.d.ts', import: './dist/index.js' });
    expect(sourceOf(dot.import as string)).toBe('src/index.ts');
    expect(sourceOf(manifest.main)).toBe('src/index.ts');
    expect(manifest.types).toBe('dist/index.d.ts');
    expect(manifest.type).toBe('module');
  });

  it('states the Node.js versions it runs on, the repository and keywords', () => {
    expect(manifest.engines.node).toBe('>=20');
    expect(manifest.repository).toMatchObject({ type: 'git', url: expect.stringMatching(/^git\+https:\/\//) });
    expect(manifest.keywords).toEqual(expect.arrayContaining(['docker', 'registry', 'token']));
  });

  it('builds before it is packed', () => {
    expect(manifest.scripts.prepack).toMatch(/npm run build$/);
    expect(manifest.scripts.build).toBe('tsc -p tsconfig.build.json');
  });

  it('carries the Apache License 2.0 that it declares', () => {
    expect(manifest.license).toBe('Apache-2.0');
    const license = read('LICENSE');
    expect(license).toContain('Apache License');
    expect(license).toContain('Version 2.0, January 2004');
    expect(license).toContain('END OF TERMS AND CONDITIONS');
  });

  it('has a CHANGELOG in the Keep a Changelog format with an entry for this version', () => {
    const changelog = read('CHANGELOG.md');
    expect(changelog).toMatch(/^# Changelog\n/);
    expect(changelog).toContain('https://keepachangelog.com/');
    const heading = new RegExp(`^## \\[(Unreleased|${manifest.version.replace(/\./g, '\\.')})\\]`, 'm');
    expect(changelog).toMatch(heading);
    expect(changelog).toMatch(/^### (Added|Changed|Deprecated|Removed|Fixed|Security)$/m);
  });
});
