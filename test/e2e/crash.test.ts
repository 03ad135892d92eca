// End to end: crash safety of the SQLite store. The server process is SIGKILLed in the middle of
// a burst of requests that write refresh tokens, and admin CLI processes are SIGKILLed in the
// middle of creating access tokens and users. Whatever a client was told (a refresh token in a
// 200 response, a secret printed by `tokens create`, "added user" from `users add`) must have been
// committed: it must work after a restart, and the database file must be intact.
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as PackageApi from '../../src/index.js';
import type * as StoreApi from '../../src/store/index.js';
import { explain } from './harness/clients.js';
import {
  importBuilt,
  requireBuiltCli,
  runCli,
  spawnCli,
  startServerProcess,
  writeServerFiles,
  type CliRun,
  type ServerFiles,
  type ServerProcess,
} from './harness/server-process.js';
import { Teardown } from './harness/teardown.js';

const SETUP_TIMEOUT = 60_000;
/** Requests in the burst the server is killed in; it dies after KILL_AFTER of them are answered. */
const BURST = 300;
const KILL_AFTER = 100;
const SEED_TOKENS = 20;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** integrity_check, quick_check and foreign_key_check on the file as it is, read-only. */
function checkDatabase(path: string): { integrity: unknown; foreignKeys: unknown[] } {
  const db = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
  try {
    return { integrity: db.pragma('integrity_check', { simple: true }), foreignKeys: db.pragma('foreign_key_check') as unknown[] };
  } finally {
    db.close();
  }
}

describe('crash safety of the SQLite store (SIGKILL)', () => {
  const teardown = new Teardown();
  const alicePassword = randomBytes(12).toString('base64url');
  let dir: string;
  let dbPath: string;
  let files: ServerFiles;
  /** The running server, whichever incarnation; teardown stops the last one. */
  let server: ServerProcess | undefined;

  const cli = (args: string[], stdin?: string) => runCli([...args, '--config', files.configPath], stdin === undefined ? {} : { stdin });

  async function start(): Promise<ServerProcess> {
    server = await startServerProcess(files.configPath);
    return server;
  }

  async function refreshGrant(url: string, refreshToken: string): Promise<{ status: number; refreshToken?: string | undefined }> {
    const res = await fetch(`${url}/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        service: files.service,
        client_id: 'docker',
        scope: 'repository:alice/app:pull',
      }).toString(),
    });
    const body = (await res.json()) as { refresh_token?: string };
    return { status: res.status, refreshToken: body.refresh_token };
  }

  async function offlineToken(url: string): Promise<{ status: number; refreshToken?: string | undefined }> {
    const query = new URLSearchParams({ service: files.service, offline_token: 'true', client_id: 'docker' });
    const res = await fetch(`${url}/auth?${query.toString()}`, { headers: { authorization: basic('alice', alicePassword) } });
    const body = (await res.json()) as { refresh_token?: string };
    return { status: res.status, refreshToken: body.refresh_token };
  }

  beforeAll(async () => {
    await requireBuiltCli();
    dir = teardown.defer(await mkdtemp(join(tmpdir(), 'sts-e2e-crash-')), (d) => rm(d, { recursive: true, force: true }));
    teardown.defer(undefined, async () => server?.stop());
    dbPath = join(dir, 'store.db');
    files = await writeServerFiles(dir, {
      store: { driver: 'sqlite', path: 'store.db' },
      acl: [{ match: { account: 'alice' }, actions: ['pull', 'push'] }],
    });
    // alice at bcrypt cost 4, straight into the store: the burst is about writes, not hashing.
    // With the built code, which the server and CLI processes run too.
    const { hashPassword } = await importBuilt<typeof PackageApi>('index.js');
    const { openStore } = await importBuilt<typeof StoreApi>('store/index.js');
    const store = await openStore({ driver: 'sqlite', path: dbPath });
    try {
      await store.migrate();
      await store.users.create({ name: 'alice', passwordHash: await hashPassword(alicePassword, 4) }, 'e2e');
    } finally {
      await store.close();
    }
  }, SETUP_TIMEOUT);

  afterAll(() => teardown.run(), SETUP_TIMEOUT);

  it('keeps every refresh token a client received when the server is SIGKILLed mid-burst', async () => {
    let running = await start();
    const received = new Set<string>();
    for (let i = 0; i < SEED_TOKENS; i++) {
      const { status, refreshToken } = await offlineToken(running.url);
      expect(status, running.logs().slice(-2000)).toBe(200);
      received.add(refreshToken ?? '');
    }
    const seeds = [...received];
    expect(seeds.every((t) => t.startsWith('stsrt_'))).toBe(true);

    // The burst: half create refresh tokens (GET offline_token), half use one (POST refresh grant,
    // which records its use). The server dies once KILL_AFTER answers are in.
    let answered = 0;
    let failed = 0;
    let refusedWhileAlive = 0;
    let killing: Promise<void> | undefined;
    const victim = running;
    const burst = Array.from({ length: BURST }, async (_, i) => {
      try {
        const result = i % 2 === 0 ? await offlineToken(victim.url) : await refreshGrant(victim.url, seeds[i % seeds.length] ?? '');
        if (result.status === 200 && result.refreshToken) received.add(result.refreshToken);
        else if (!killing) refusedWhileAlive++;
        answered++;
        if (answered === KILL_AFTER) killing = victim.kill('SIGKILL');
      } catch {
        failed++; // connection reset or refused: the server is gone
      }
    });
    await Promise.all(burst);
    await killing;
    expect(victim.exited()).toBe(true);
    expect(refusedWhileAlive).toBe(0);
    // The kill landed mid-burst: some requests were answered, some never were.
    expect(answered).toBeGreaterThanOrEqual(KILL_AFTER);
    expect(failed).toBeGreaterThan(0);
    expect(answered + failed).toBe(BURST);
    const afterBurst = received.size;
    expect(afterBurst).toBeGreaterThan(SEED_TOKENS);
    console.log(`crash e2e (server): ${answered} of ${BURST} answered before the SIGKILL, ${failed} cut off; ${afterBurst - SEED_TOKENS} refresh tokens received in the burst`);

    // The file as the kill left it (WAL and all) is intact.
    expect(checkDatabase(dbPath)).toEqual({ integrity: 'ok', foreignKeys: [] });

    // Restarted on the same data: every refresh token received works, and is not rotated.
    running = await start();
    const tokens = [...received];
    const results = await Promise.all(tokens.map((token) => refreshGrant(running.url, token)));
    const broken = tokens.filter((token, i) => results[i]?.status !== 200 || results[i]?.refreshToken !== token);
    expect(broken, `${broken.length} of ${tokens.length} received refresh tokens fail after the restart`).toEqual([]);

    // alice (committed before the start) is there, and the store lists at least what was received.
    expect((await offlineToken(running.url)).status).toBe(200);
    const listed = await cli(['refresh-tokens', 'list', '--user', 'alice', '--json']);
    expect(listed.code, explain(listed)).toBe(0);
    const records = JSON.parse(listed.stdout) as { revokedAt: string | null }[];
    expect(records.length).toBeGreaterThanOrEqual(afterBurst + 1);
    expect(records.every((r) => r.revokedAt === null)).toBe(true);
    const users = await cli(['users', 'list', '--json']);
    expect((JSON.parse(users.stdout) as { name: string }[]).map((u) => u.name)).toEqual(['alice']);
  }, 60_000);

  it('keeps every access token and user whose CLI printed it when CLI processes are SIGKILLed mid-way', async () => {
    const running = server && !server.exited() ? server : await start();
    const TOKEN_RUNS = 24;
    const USER_RUNS = 6;
    const runs: { kind: 'token' | 'user'; name: string; run: CliRun }[] = [];
    for (let i = 0; i < TOKEN_RUNS; i++) {
      const name = `ci-${i}`;
      const args = ['tokens', 'create', '--user', 'alice', '--name', name, '--scope', 'repository:alice/*:pull', '--expires', '1d', '--config', files.configPath];
      runs.push({ kind: 'token', name, run: spawnCli(args) });
    }
    for (let i = 0; i < USER_RUNS; i++) {
      const name = `user-${i}`;
      runs.push({ kind: 'user', name, run: spawnCli(['users', 'add', name, '--config', files.configPath], { stdin: `pw-${name}` }) });
    }
    // Every other run is a victim. The runs advance roughly together, so when the first survivor
    // has finished, the victims are about opening, migrating or writing the store themselves: they
    // are killed from then on, 30 ms apart (a victim that finished already is not killed at all).
    const victims = runs.filter((_, i) => i % 2 === 1);
    const survivors = runs.filter((_, i) => i % 2 === 0);
    const killing = Promise.race(survivors.map((s) => s.run.done)).then(async () => {
      for (const victim of victims) {
        victim.run.kill('SIGKILL');
        await sleep(30);
      }
    });
    await killing;
    const results = await Promise.all(runs.map((entry) => entry.run.done));

    const printed: { name: string; secret: string }[] = [];
    const addedUsers: string[] = [];
    let killedBeforePrinting = 0;
    results.forEach((result, i) => {
      const entry = runs[i];
      if (!entry) return;
      const out = result.stdout.trim();
      if (result.signal === null) expect(result.code, explain(result)).toBe(0);
      if (entry.kind === 'token' && /^stsat_[A-Za-z0-9_-]+$/.test(out)) printed.push({ name: entry.name, secret: out });
      else if (entry.kind === 'user' && out === `added user ${entry.name}`) addedUsers.push(entry.name);
      else {
        // Nothing printed: only a killed run may end like that.
        expect(result.signal, explain(result)).toBe('SIGKILL');
        expect(out).toBe('');
        killedBeforePrinting++;
      }
    });
    const killed = results.filter((r) => r.signal === 'SIGKILL').length;
    // The kills landed: some runs died, some of them before printing, and some runs completed.
    expect(killed).toBeGreaterThan(0);
    expect(killedBeforePrinting).toBeGreaterThan(0);
    expect(printed.length).toBeGreaterThan(0);

    expect(checkDatabase(dbPath)).toEqual({ integrity: 'ok', foreignKeys: [] });

    // Every printed secret works against the running server, as itself.
    for (const { name, secret } of printed) {
      const from = running.audit().length;
      const query = new URLSearchParams({ service: files.service, scope: 'repository:alice/app:pull' });
      const res = await fetch(`${running.realm}?${query.toString()}`, { headers: { authorization: basic('alice', secret) } });
      expect(res.status, `token ${name}: ${await res.text()}`).toBe(200);
      const [event] = await running.waitForAudit(from);
      expect(event).toMatchObject({ account: 'alice', backend: expect.stringMatching(/^access-token:at_/), result: 'issued' });
    }
    // The store lists every printed token, and every user whose run said so (and may list more:
    // a run can commit and die before printing).
    const tokens = await cli(['tokens', 'list', '--user', 'alice', '--json']);
    expect(tokens.code, explain(tokens)).toBe(0);
    const tokenNames = (JSON.parse(tokens.stdout) as { name: string }[]).map((t) => t.name);
    expect(tokenNames).toEqual(expect.arrayContaining(printed.map((p) => p.name)));
    const users = await cli(['users', 'list', '--json']);
    expect(users.code, explain(users)).toBe(0);
    const userNames = (JSON.parse(users.stdout) as { name: string }[]).map((u) => u.name);
    expect(userNames).toEqual(expect.arrayContaining(['alice', ...addedUsers]));
    for (const name of addedUsers) {
      const query = new URLSearchParams({ service: files.service });
      const res = await fetch(`${running.realm}?${query.toString()}`, { headers: { authorization: basic(name, `pw-${name}`) } });
      expect(res.status, `user ${name}`).toBe(200);
    }
    console.log(
      `crash e2e (CLI): ${TOKEN_RUNS + USER_RUNS} runs, ${killed} SIGKILLed (${killedBeforePrinting} before printing); ` +
        `${printed.length} secrets and ${addedUsers.length} users printed; the store holds ${tokenNames.length} tokens ` +
        `and ${userNames.length - 1} users (committed, then killed before printing: ${tokenNames.length - printed.length} and ` +
        `${userNames.length - 1 - addedUsers.length})`,
    );
  }, 60_000);
});
