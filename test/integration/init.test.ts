import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureDataDir } from '../../src/config/init.js';
import { loadConfig } from '../../src/config/load.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sts-init-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('ensureDataDir', () => {
  it('creates a config that loads, then leaves it alone', async () => {
    const first = await ensureDataDir(join(dir, 'data'));
    expect(first.adminPassword).toBeDefined();
    const loaded = await loadConfig(first.configPath, {});
    expect(loaded.signingKey.alg).toBe('ES256');
    const before = await readFile(first.configPath, 'utf8');
    const second = await ensureDataDir(join(dir, 'data'));
    expect(second.adminPassword).toBeUndefined();
    expect(await readFile(first.configPath, 'utf8')).toBe(before);
  });

  it('never replaces a signing key whose certificate went missing', async () => {
    const data = join(dir, 'data');
    await mkdir(data);
    await writeFile(join(data, 'token.key'), 'existing key');
    await expect(ensureDataDir(data)).rejects.toThrow(/token\.crt is missing but .*token\.key exists/);
    expect(await readFile(join(data, 'token.key'), 'utf8')).toBe('existing key');
  });
});
