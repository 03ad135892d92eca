import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { watchConfigFile, type ConfigWatcher } from '../../src/config/watch.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let dir: string | undefined;
let watcher: ConfigWatcher | undefined;
afterEach(async () => {
  watcher?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function calls(setup: (dir: string) => Promise<string>, change: (dir: string) => Promise<void>): Promise<number> {
  dir = await mkdtemp(join(tmpdir(), 'sts-watch-'));
  const file = await setup(dir);
  let count = 0;
  watcher = watchConfigFile(file, () => count++, 100);
  await sleep(50);
  await change(dir);
  await sleep(400);
  return count;
}

describe('watchConfigFile', () => {
  it('sees a new file renamed over the config (an editor save), once per burst', async () => {
    const n = await calls(
      async (d) => {
        await writeFile(join(d, 'config.yml'), 'a: 1\n');
        return join(d, 'config.yml');
      },
      async (d) => {
        await writeFile(join(d, 'config.yml.tmp'), 'a: 2\n');
        await rename(join(d, 'config.yml.tmp'), join(d, 'config.yml'));
      },
    );
    expect(n).toBe(1);
  });

  it('sees a Kubernetes ConfigMap update (the ..data symlink swapped)', async () => {
    const n = await calls(
      async (d) => {
        await mkdir(join(d, '..v1'));
        await writeFile(join(d, '..v1', 'config.yml'), 'a: 1\n');
        await symlink('..v1', join(d, '..data'));
        await symlink('..data/config.yml', join(d, 'config.yml'));
        return join(d, 'config.yml');
      },
      async (d) => {
        await mkdir(join(d, '..v2'));
        await writeFile(join(d, '..v2', 'config.yml'), 'a: 2\n');
        await symlink('..v2', join(d, '..data_tmp'));
        await rename(join(d, '..data_tmp'), join(d, '..data'));
      },
    );
    expect(n).toBe(1);
  });

  it('ignores other files in the folder', async () => {
    const n = await calls(
      async (d) => {
        await writeFile(join(d, 'config.yml'), 'a: 1\n');
        return join(d, 'config.yml');
      },
      async (d) => {
        await writeFile(join(d, 'store.db'), 'x');
      },
    );
    expect(n).toBe(0);
  });
});
