import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import BetterSqlite3 from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/open.js';
import { StoreUnavailableError } from '../../src/store/types.js';
import { storeConformance } from './conformance.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every temp folder this file made, removed at the end even if a test failed half-way. */
const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sts-store-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

storeConformance('sqlite', async () => {
  const dir = await tempDir();
  // A folder that does not exist yet: openStore creates it.
  const store = await openStore({ driver: 'sqlite', path: join(dir, 'data', 'store.db') });
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

/** Runs a TypeScript snippet in another Node process (through tsx) with openStore in scope. */
function child(code: string, env: Record<string, string>): ChildProcess {
  const script = `import { openStore } from ${JSON.stringify(join(ROOT, 'src/store/open.ts'))};\n${code}`;
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** Resolves with the first stdout line; rejects if the process ends first. */
function firstLine(proc: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const newline = out.indexOf('\n');
      if (newline >= 0) resolve(out.slice(0, newline));
    });
    proc.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    proc.on('exit', (code) => reject(new Error(`child exited (${code}) before answering: ${err}`)));
  });
}

function exited(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
    else proc.on('exit', (code) => resolve(code));
  });
}

describe('sqlite store: the file', () => {
  const children: ChildProcess[] = [];
  afterEach(() => {
    // Only the processes this test started, by their handle.
    for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });

  it('creates the folder and a 0600 file in WAL mode, and does not migrate on open', async () => {
    const path = join(await tempDir(), 'a', 'b', 'store.db');
    const store = await openStore({ driver: 'sqlite', path });
    try {
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect(await store.schemaVersion()).toBe(0);
      await store.migrate();
      const raw = new BetterSqlite3(path, { readonly: true });
      try {
        expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      } finally {
        raw.close();
      }
      const wal = await stat(`${path}-wal`);
      expect(wal.mode & 0o077).toBe(0);
    } finally {
      await store.close();
    }
  });

  it('opens :memory: for tests', async () => {
    const store = await openStore({ driver: 'sqlite', path: ':memory:' });
    expect(await store.migrate()).toEqual({ from: 0, to: 2 });
    await store.users.create({ name: 'alice', passwordHash: null }, 'test');
    expect(await store.users.get('alice')).toBeDefined();
    await store.close();
    await store.close();
  });

  it('reports a file it cannot open as StoreUnavailableError naming the store', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'plain-file'), '');
    const path = join(dir, 'plain-file', 'store.db');
    const error = await openStore({ driver: 'sqlite', path }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect(String(error)).toContain(`SQLite store ${path}`);

    const notADatabase = join(dir, 'not-a-db');
    await writeFile(notADatabase, 'x'.repeat(4096));
    const store = await openStore({ driver: 'sqlite', path: notADatabase }).catch((e: unknown) => e);
    expect(store).toBeInstanceOf(StoreUnavailableError);
  });

  it('answers StoreUnavailableError after close', async () => {
    const store = await openStore({ driver: 'sqlite', path: join(await tempDir(), 'store.db') });
    await store.close();
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('shares one file between two stores in one process', async () => {
    const path = join(await tempDir(), 'store.db');
    const [a, b] = [await openStore({ driver: 'sqlite', path }), await openStore({ driver: 'sqlite', path })];
    try {
      await Promise.all([a.migrate(), b.migrate()]);
      await a.users.create({ name: 'alice', passwordHash: null }, 'a');
      expect((await b.users.get('alice'))?.name).toBe('alice');
      const before = await a.rules.version();
      await b.rules.add({ match: {}, actions: ['pull'] }, {}, 'b');
      expect(await a.rules.version()).not.toBe(before);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('lets two processes write one file at once: writers wait, none fails', async () => {
    const path = join(await tempDir(), 'store.db');
    const store = await openStore({ driver: 'sqlite', path });
    try {
      await store.migrate();
      // The child starts writing when told to; the parent writes until the child is done, so
      // the two overlap however slowly either starts.
      const proc = child(
        `const store = await openStore({ driver: 'sqlite', path: process.env.DB });
         await store.migrate();
         console.log('ready');
         process.stdin.once('data', async () => {
           for (let i = 0; i < 300; i++) await store.users.create({ name: 'child-' + i, passwordHash: null }, 'child');
           for (let i = 0; i < 20; i++) await store.rules.add({ match: {}, actions: ['pull'] }, { position: 0 }, 'child');
           await store.close();
           process.exit(0);
         });`,
        { DB: path },
      );
      children.push(proc);
      expect(await firstLine(proc)).toBe('ready');
      const done = exited(proc);
      let finished = false;
      void done.then(() => (finished = true));
      proc.stdin?.write('go\n');
      let users = 0;
      const deadline = Date.now() + 20_000;
      while ((!finished || users < 300) && Date.now() < deadline) {
        await store.users.create({ name: `parent-${users++}`, passwordHash: null }, 'parent');
        // better-sqlite3 answers synchronously, so without this the loop would never let the
        // event loop deliver the child's exit (or even send it 'go').
        await new Promise((resolve) => setImmediate(resolve));
      }
      for (let i = 0; i < 20; i++) await store.rules.add({ match: {}, actions: ['push'] }, {}, 'parent');
      expect(await done).toBe(0);
      expect(await store.users.list()).toHaveLength(300 + users);
      const rules = await store.rules.list();
      expect(rules.map((r) => r.position)).toEqual(rules.map((_, i) => i));
      expect(await store.rules.version()).toBe(40);
      expect(await store.changes.list()).toHaveLength(300 + users + 40);
    } finally {
      await store.close();
    }
  });

  it('keeps a committed write when the process is killed right after (SIGKILL)', async () => {
    const path = join(await tempDir(), 'store.db');
    const proc = child(
      `const store = await openStore({ driver: 'sqlite', path: process.env.DB });
       await store.migrate();
       await store.users.create({ name: 'durable', passwordHash: 'h' }, 'child');
       await store.rules.add({ match: {}, actions: ['pull'] }, {}, 'child');
       console.log('committed');
       setInterval(() => undefined, 1000);`,
      { DB: path },
    );
    children.push(proc);
    expect(await firstLine(proc)).toBe('committed');
    proc.kill('SIGKILL');
    await exited(proc);
    const store = await openStore({ driver: 'sqlite', path });
    try {
      expect((await store.users.get('durable'))?.passwordHash).toBe('h');
      expect(await store.rules.list()).toHaveLength(1);
      expect((await store.changes.list()).map((c) => c.action)).toEqual(['rule.add', 'user.create']);
    } finally {
      await store.close();
    }
  });

  it('waits busy_timeout (5 s) for another process holding the write lock, then answers StoreUnavailableError', async () => {
    const path = join(await tempDir(), 'store.db');
    const store = await openStore({ driver: 'sqlite', path });
    try {
      await store.migrate();
      const proc = child(
        `const { default: Database } = await import('better-sqlite3');
         const db = new Database(process.env.DB);
         db.exec('begin immediate');
         console.log('locked');
         setTimeout(() => { db.exec('rollback'); db.close(); }, 15000);`,
        { DB: path },
      );
      children.push(proc);
      expect(await firstLine(proc)).toBe('locked');
      const started = Date.now();
      const error = await store.users.create({ name: 'blocked', passwordHash: null }, 'test').catch((e: unknown) => e);
      const waited = Date.now() - started;
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect(String(error)).toContain(`SQLite store ${path}`);
      expect(waited).toBeGreaterThanOrEqual(4500);
      // Reads go on while another process writes (WAL).
      expect(await store.users.list()).toEqual([]);
    } finally {
      await store.close();
    }
  }, 20_000);
});
