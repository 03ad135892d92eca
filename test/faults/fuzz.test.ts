// Fuzz: at least 100,000 malformed requests against the built server process over loopback.
// Most go through keep-alive node:http connections (random methods, paths, scopes, query
// parameters, headers, bodies and encodings that an HTTP client can still send); the rest are
// written byte by byte on raw node:net sockets (broken request lines, headers, framing, truncated
// and pipelined requests). Whatever arrives, the server must answer no 5xx, never echo a password
// or a stack trace, and stay up. A seeded PRNG drives everything; the seed is printed so that a
// failure replays with STS_FUZZ_SEED=<seed>. STS_FUZZ_LONG=1 sends 1,000,000.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Teardown } from '../e2e/harness/teardown.js';
import { isAlive, prng, quickHash, startFaultServer, writeFaultConfig, type FaultServer, type FaultServerFiles } from './helpers.js';

const LONG = process.env.STS_FUZZ_LONG === '1';
const TOTAL = LONG ? 1_000_000 : 100_000;
/** Share of the requests written on raw sockets (one connection each). */
const RAW_SHARE = 0.12;
const HTTP_CONNECTIONS = 6;
const RAW_CONNECTIONS = 3;
const SEED = Number(process.env.STS_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const REQUEST_TIMEOUT_MS = 10_000;

type Rand = () => number;
const int = (r: Rand, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rand, items: readonly T[]): T => items[int(r, items.length)] as T;
const chance = (r: Rand, p: number) => r() < p;

/** A marker inside every password sent: it must never come back in a response. */
const MARKER = `pw${randomBytes(9).toString('hex')}`;
const GOOD_PASSWORD = `${MARKER}-good`;
const SERVICE = 'sts-faults-registry';

const STACK_TRACE = /\n\s+at\s|\bat [^\s()]+ \([^)]*:\d+:\d+\)|node_modules|\/work\/|\.ts:\d+/;

// ---------------------------------------------------------------------------------------------
// Generators

const ODD_CHARS = ['\0', '\x01', '\x7f', '\t', ' ', '%', '%00', '%zz', '%2', '\u00ff', '\u00e9', '\u2028', '\ud83d\ude00', '\ufffd', '\u202e', '..', '/', '//', ':', '::', ',', ';', '=', '&', '?', '#', '*', '@', '\\', '"', "'", '<', '>', '{', '}', '[', ']', '\r', '\n'];
const ACTIONS = ['pull', 'push', 'delete', '*', 'pull,push', '', 'PULL', 'pull,pull', 'push,*,delete', 'x'.repeat(300)];
const TYPES = ['repository', 'registry', 'repository(plugin)', 'repository(x', 'REPOSITORY', '', 'x'];
const NAMES = ['team/app', 'library/alpine', 'a', 'a/b/c/d/e/f', 'catalog', 'dev/tool', 'UPPER/case', 'a__b', 'a..b', '-a', 'a-', 'localhost:5000/x', 'x'.repeat(256)];

function name(r: Rand): string {
  if (chance(r, 0.3)) return Array.from({ length: 1 + int(r, 8) }, () => pick(r, ['a', 'b1', 'x-y', 'z.z', 'q_q', 'É', ''])).join('/');
  return pick(r, NAMES);
}

/** Grammar-aware: a valid-looking scope, then a few mutations. */
function scope(r: Rand): string {
  let s = `${pick(r, TYPES)}:${name(r)}:${pick(r, ACTIONS)}`;
  const mutations = int(r, 4);
  for (let i = 0; i < mutations; i++) {
    const at = int(r, s.length + 1);
    switch (int(r, 7)) {
      case 0:
        s = s.slice(0, at) + pick(r, ODD_CHARS) + s.slice(at);
        break;
      case 1:
        s = s.slice(0, at) + s.slice(at + 1 + int(r, 5));
        break;
      case 2:
        s = s.slice(0, at) + s.slice(at).repeat(2 + int(r, 3));
        break;
      case 3:
        s = `${s}:${pick(r, ACTIONS)}`;
        break;
      case 4:
        s = s.replaceAll(':', pick(r, ['', '::', '%3A', ' ']));
        break;
      case 5:
        s = s.slice(0, at) + String.fromCharCode(int(r, 0x3000)) + s.slice(at);
        break;
      default:
        s = s.slice(0, at) + 'x'.repeat(int(r, 4) === 0 ? 5000 + int(r, 20_000) : int(r, 300)) + s.slice(at);
    }
  }
  return s;
}

/** Random text for a field: empty, short, unicode, control characters or huge. */
function junk(r: Rand): string {
  switch (int(r, 6)) {
    case 0:
      return '';
    case 1:
      return Array.from({ length: 1 + int(r, 20) }, () => pick(r, ODD_CHARS)).join('');
    case 2:
      return 'x'.repeat(int(r, 3) === 0 ? 30_000 : 200);
    case 3:
      return String.fromCharCode(...Array.from({ length: 1 + int(r, 30) }, () => int(r, 0xd7ff)));
    case 4:
      return randomBytes(1 + int(r, 40)).toString('latin1');
    default:
      return pick(r, ['true', 'false', '1', '0', 'null', '-1', '1e309', 'password', 'refresh_token', SERVICE, 'docker']);
  }
}

/** Lone surrogates (from slicing or mutating) replaced: encodeURIComponent throws on them. */
const wellFormed = (s: string) => s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');

/** application/x-www-form-urlencoded, with broken and doubled encodings now and then. */
function encode(r: Rand, raw: string): string {
  const value = wellFormed(raw);
  switch (int(r, 5)) {
    case 0:
      return encodeURIComponent(encodeURIComponent(value));
    case 1:
      return value.replace(/[^A-Za-z0-9]/gu, (c) => (c.charCodeAt(0) < 0x100 ? `%${c.charCodeAt(0).toString(16).padStart(2, '0')}` : encodeURIComponent(c)));
    case 2:
      return `${encodeURIComponent(value)}${pick(r, ['%', '%G1', '%c3', '%ff%fe', '+', '%2'])}`;
    default:
      return encodeURIComponent(value);
  }
}

function queryString(r: Rand): string {
  const parts: string[] = [];
  if (!chance(r, 0.15)) parts.push(`service=${chance(r, 0.8) ? SERVICE : encode(r, junk(r))}`);
  if (chance(r, 0.05)) parts.push(`service=${SERVICE}`, `service=${encode(r, junk(r))}`);
  const scopes = chance(r, 0.05) ? 50 + int(r, 500) : int(r, 4);
  for (let i = 0; i < scopes; i++) parts.push(`scope=${encode(r, scope(r))}`);
  for (const key of ['account', 'client_id', 'offline_token', 'grant_type', 'refresh_token', 'password']) {
    if (chance(r, 0.12)) parts.push(`${key}=${encode(r, key === 'password' || key === 'refresh_token' ? `${MARKER}${junk(r)}` : junk(r))}`);
  }
  if (chance(r, 0.1)) parts.push(`${encode(r, junk(r))}=${encode(r, junk(r))}`);
  if (chance(r, 0.05)) parts.push('&&&', '=', '==', 'scope', 'scope=');
  return parts.join('&');
}

function basicOf(user: string, password: string, encoding: BufferEncoding = 'utf8'): string {
  return Buffer.from(`${user}:${password}`, encoding).toString('base64');
}

/** An Authorization value an HTTP client can send (latin1, one line). */
function authorization(r: Rand): string | undefined {
  switch (int(r, 12)) {
    case 0:
    case 1:
      return undefined;
    case 2:
      return `Basic ${basicOf('fuzz', GOOD_PASSWORD)}`;
    case 3:
      return `Basic ${basicOf(pick(r, ['fuzz', 'ghost', '', 'é', 'a'.repeat(3000), 'a:b']), `${MARKER}${junk(r)}`)}`;
    case 4:
      return `Basic ${basicOf('fuzz', `${MARKER}x`).slice(0, 1 + int(r, 20))}`;
    case 5:
      return `${pick(r, ['Basic', 'basic', 'BASIC', 'Basic  ', 'Basic\t', 'Bearer', 'Digest', 'Negotiate', ''])} ${pick(r, ['', '=', '!!!', '====', 'Zm9v', `${basicOf('fuzz', MARKER)}==`, basicOf('nocolon', '').replace(/O[a-z0-9]*=*$/i, '')])}`;
    case 6:
      return `Basic ${'A'.repeat(pick(r, [3_000, 3_000, 3_000, 12_000, 100_000]))}`;
    case 7:
      return `Basic ${Buffer.from(`fuzz:${MARKER}`, 'utf16le').toString('base64')}`;
    case 8:
      return `Basic ${basicOf(junk(r).replace(/:/g, ''), `${MARKER}${junk(r)}`, pick(r, ['utf8', 'latin1'] as const))}`;
    case 9:
      return `Bearer ${pick(r, ['eyJhbGciOiJub25lIn0.e30.', 'stsat_x', 'a.b.c', junk(r).replace(/[^\x20-\x7e]/g, '')])}`;
    case 10:
      return randomBytes(1 + int(r, 64)).toString('latin1').replace(/[^\t\x20-\x7e\x80-\xff]/g, '');
    default:
      return `Basic ${basicOf('fuzz', GOOD_PASSWORD)}, Basic ${basicOf('ghost', MARKER)}`;
  }
}

const CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/x-www-form-urlencoded; charset=utf-16',
  'APPLICATION/X-WWW-FORM-URLENCODED',
  'application/json',
  'multipart/form-data; boundary=xyz',
  'text/plain',
  'application/octet-stream',
  '',
  ';',
  'application/x-www-form-urlencoded;;;=',
  'x/'.repeat(500),
];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'POST', 'POST', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'FOO', 'get'];
const PATHS = ['/auth', '/auth', '/auth', '/auth', '/auth', '/auth', '/auth/token', '/auth/token', '/auth/token', '/auth/', '//auth', '/auth/../auth', '/AUTH', '/healthz', '/readyz', '/metrics', '/', '/v2/', '/auth%00', '/auth;x', '/login', '/auth/token/x'];

interface Generated {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  chunked: boolean;
}

function formBody(r: Rand): string {
  const fields: string[] = [];
  if (!chance(r, 0.1)) fields.push(`grant_type=${pick(r, ['password', 'password', 'refresh_token', 'authorization_code', 'client_credentials', '', encode(r, junk(r))])}`);
  if (!chance(r, 0.2)) fields.push(`username=${pick(r, ['fuzz', 'ghost', '', encode(r, junk(r))])}`);
  if (!chance(r, 0.2)) fields.push(`password=${encode(r, chance(r, 0.3) ? GOOD_PASSWORD : `${MARKER}${junk(r)}`)}`);
  if (chance(r, 0.3)) fields.push(`refresh_token=${encode(r, `${MARKER}${junk(r)}`)}`);
  if (!chance(r, 0.2)) fields.push(`service=${chance(r, 0.8) ? SERVICE : encode(r, junk(r))}`);
  if (!chance(r, 0.2)) fields.push(`client_id=${encode(r, junk(r))}`);
  for (let i = int(r, 4); i > 0; i--) fields.push(`scope=${encode(r, scope(r))}`);
  if (chance(r, 0.1)) fields.push(`access_type=${encode(r, junk(r))}`, `${encode(r, junk(r))}`);
  return fields.join('&');
}

function generate(r: Rand): Generated {
  const method = pick(r, METHODS);
  const path = pick(r, PATHS);
  const headers: Record<string, string> = {};
  const auth = authorization(r);
  if (auth !== undefined) headers.authorization = auth;
  let body: Buffer | undefined;
  if (method !== 'GET' && method !== 'HEAD' ? !chance(r, 0.1) : chance(r, 0.05)) {
    switch (int(r, 6)) {
      case 0:
        body = randomBytes(int(r, 2000));
        break;
      case 1:
        body = Buffer.from(`${formBody(r)}&password=${MARKER}${'p'.repeat(70 * 1024)}`);
        break;
      case 2:
        body = Buffer.from(JSON.stringify({ grant_type: 'password', username: 'fuzz', password: `${MARKER}x`, scope: scope(r) }));
        break;
      default:
        body = Buffer.from(formBody(r), pick(r, ['utf8', 'utf8', 'latin1', 'utf16le'] as const));
    }
    if (chance(r, 0.9)) headers['content-type'] = pick(r, CONTENT_TYPES);
  }
  if (chance(r, 0.08)) headers['content-encoding'] = pick(r, ['gzip', 'deflate', 'br', 'identity', 'x-unknown']);
  if (chance(r, 0.05)) headers['accept-encoding'] = pick(r, ['gzip', '*', 'identity;q=0']);
  if (chance(r, 0.08)) headers['x-forwarded-for'] = pick(r, ['1.2.3.4', '::1', 'junk', '1.2.3.4, 5.6.7.8', ' , ', '999.1.1.1', '']);
  if (chance(r, 0.05)) headers['x-real-ip'] = pick(r, ['1.2.3.4', 'junk']);
  if (chance(r, 0.05)) headers.accept = pick(r, ['application/json', 'text/html', '*/*', '', 'x'.repeat(5000)]);
  if (chance(r, 0.03)) headers.cookie = `sts_session=${junk(r).replace(/[^\x20-\x7e]/g, '')}`;
  if (chance(r, 0.03)) headers.expect = '100-continue';
  const query = chance(r, 0.9) ? queryString(r) : '';
  // node:http refuses characters outside \x21-\xff in a path: what remains (latin1, unescaped
  // '%', '"', '<'…) still reaches the server; the raw sockets send the rest.
  let target = wellFormed(`${path}${query === '' ? '' : `?${query}`}`).replace(/[^\x21-\xff]/gu, (c) => encodeURIComponent(c));
  if (chance(r, 0.05)) target += pick(r, ['#frag', '?', '&', '%', '\u00e9\u00ff']);
  return { method, path: target, headers, body, chunked: body !== undefined && chance(r, 0.15) };
}

// ---------------------------------------------------------------------------------------------
// Raw requests

function rawRequest(r: Rand): Buffer {
  const target = () => `/auth?service=${SERVICE}&scope=${pick(r, ['repository:team/app:pull', scope(r)])}`;
  const basicLine = () => `Authorization: Basic ${basicOf('fuzz', chance(r, 0.5) ? GOOD_PASSWORD : `${MARKER}${junk(r)}`)}\r\n`;
  const head = (extra = '') => `GET ${target()} HTTP/1.1\r\nHost: 127.0.0.1\r\n${basicLine()}${extra}`;
  switch (int(r, 20)) {
    case 0:
      return randomBytes(1 + int(r, 400));
    case 1:
      return Buffer.from(`${pick(r, ['GET', 'POST', 'G ET', '', 'GET\0'])} ${target()} ${pick(r, ['HTTP/1.1', 'HTTP/9.9', 'HTTP/1', 'HTTP/1.1 x', '', 'HTTPS/1.1'])}\r\n\r\n`, 'latin1');
    case 2:
      return Buffer.from(`GET ${target()}\r\n\r\n`, 'latin1');
    case 3:
      return Buffer.from(`${head()}\n\n`.replace(/\r/g, ''), 'latin1');
    case 4:
      return Buffer.from(`${head('NoColonHeader\r\nSpace : before\r\n')}\r\n`, 'latin1');
    case 5:
      return Buffer.from(`${head('X-Folded: a\r\n  b\r\n')}\r\n`, 'latin1');
    case 6:
      return Buffer.from(`POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\ngrant_type=password`, 'latin1');
    case 7:
      return Buffer.from(
        `POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
        'latin1',
      );
    case 8:
      return Buffer.from(`POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n${pick(r, ['zz', 'ffffffffffffffff', '-1', '5', '3\r\nabc'])}\r\n`, 'latin1');
    case 9: {
      // Content-Length larger than what is sent, then the connection is half-closed.
      const body = `grant_type=password&username=fuzz&password=${MARKER}`;
      return Buffer.from(`POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length + 1 + int(r, 1000)}\r\n\r\n${body}`, 'latin1');
    }
    case 10: {
      const full = `${head()}\r\n`;
      return Buffer.from(full.slice(0, int(r, full.length)), 'latin1');
    }
    case 11:
      return Buffer.from(`${head(`X-Big: ${'b'.repeat(20_000 + int(r, 60_000))}\r\n`)}\r\n`, 'latin1');
    case 12:
      return Buffer.from(`${head(Array.from({ length: 200 + int(r, 3000) }, (_, i) => `X-H${i}: ${i}\r\n`).join(''))}\r\n`, 'latin1');
    case 13:
      return Buffer.from(`${head('Authorization: Basic Zm9vOmJhcg==\r\n')}\r\n`, 'latin1');
    case 14:
      return Buffer.from(`${head(`X-Ctl: a\x00b\x7f\x01\r\nX-Utf8: \u00e9\u00ff\r\n`)}\r\n`, 'latin1');
    case 15:
      // Pipelined: several requests in one write, the last one cut short.
      return Buffer.from(`${head()}\r\n${head()}\r\nPOST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na=b`, 'latin1');
    case 16:
      return Buffer.from(`${head('Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n')}\r\n`, 'latin1');
    case 17:
      return Buffer.from(`GET ${'/x'.repeat(10_000 + int(r, 20_000))} HTTP/1.1\r\nHost: x\r\n\r\n`, 'latin1');
    case 18:
      return Buffer.from(`${head()}\r\n`.replace('GET /auth?', `GET /auth?${Array.from({ length: 1 + int(r, 20) }, () => pick(r, ODD_CHARS)).join('')}`), 'utf8');
    default:
      return Buffer.from(`${head(`Expect: 100-continue\r\nContent-Length: ${int(r, 100)}\r\n`)}\r\n`, 'latin1');
  }
}

// ---------------------------------------------------------------------------------------------

interface Outcome {
  statuses: number[];
  body: string;
  error?: string;
}

describe(`fuzz: ${TOTAL.toLocaleString('en')} malformed requests`, () => {
  const teardown = new Teardown();
  let files: FaultServerFiles;
  let server: FaultServer;

  beforeAll(async () => {
    files = await writeFaultConfig({
      users: {
        '': {},
        fuzz: { password: await quickHash(GOOD_PASSWORD) },
        // Never sent by the fuzzer: the last check signs in with it (fuzz may be locked out by then).
        checker: { password: await quickHash(GOOD_PASSWORD) },
      },
      acl: [
        { match: { account: '' }, actions: ['pull'] },
        { match: { account: '/^(fuzz|checker)$/', name: 'team/*' }, actions: ['*'] },
        { match: { account: '/.+/', type: 'registry' }, actions: ['*'] },
      ],
    });
    teardown.defer(files, (f) => rm(f.dir, { recursive: true, force: true }));
    server = teardown.defer(await startFaultServer(files.configPath, 'error'), (s) => s.stop());
  }, 60_000);

  afterAll(() => teardown.run(), 60_000);

  it('answers no 5xx, echoes no password or stack trace, and stays up', async () => {
    console.log(`fuzz seed ${SEED} (STS_FUZZ_SEED=${SEED} replays it), ${TOTAL} requests`);
    const { hostname, port } = new URL(server.url);
    const agent = new Agent({ keepAlive: true, maxSockets: HTTP_CONNECTIONS });
    teardown.defer(agent, (a) => Promise.resolve(a.destroy()));

    const statusCounts = new Map<number, number>();
    const problems: string[] = [];
    const clientErrors = new Map<string, number>();
    let rawTimeouts = 0;
    const note = (problem: string) => {
      if (problems.length < 30) problems.push(problem);
    };
    const check = (what: string, outcome: Outcome) => {
      for (const status of outcome.statuses) {
        statusCounts.set(status, (statusCounts.get(status) ?? 0) + 1);
        if (status >= 500) note(`${what} → ${status}: ${outcome.body.slice(0, 300)}`);
      }
      if (outcome.body.includes(MARKER)) note(`${what} → a response echoed a password: ${outcome.body.slice(0, 300)}`);
      if (STACK_TRACE.test(outcome.body)) note(`${what} → a response holds a stack trace or a path: ${outcome.body.slice(0, 300)}`);
    };

    const viaHttp = (g: Generated) =>
      new Promise<Outcome>((resolve) => {
        const headers: Record<string, string> = { ...g.headers };
        if (g.body !== undefined && !g.chunked) headers['content-length'] = String(g.body.length);
        let req: ReturnType<typeof request>;
        try {
          req = request({ host: hostname, port: Number(port), method: g.method, path: g.path, headers, agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ statuses: [res.statusCode ?? 0], body: `${JSON.stringify(res.headers)}\n${Buffer.concat(chunks).toString('utf8')}` }));
            res.on('error', (err) => resolve({ statuses: [res.statusCode ?? 0], body: '', error: err.message }));
          });
        } catch (err) {
          // The client itself refused to send it (an invalid header or method): not the server's.
          resolve({ statuses: [], body: '', error: `client: ${(err as Error).message.slice(0, 60)}` });
          return;
        }
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (err) => resolve({ statuses: [], body: '', error: (err as NodeJS.ErrnoException).code ?? err.message }));
        if (g.body !== undefined) req.end(g.body);
        else req.end();
      });

    const viaRaw = (bytes: Buffer) =>
      new Promise<Outcome>((resolve) => {
        const chunks: Buffer[] = [];
        const socket = connect(Number(port), hostname);
        let settled = false;
        const done = (error?: string) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          socket.destroy();
          const text = Buffer.concat(chunks).toString('latin1');
          const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
          resolve({ statuses, body: text, ...(error === undefined ? {} : { error }) });
        };
        const timer = setTimeout(() => {
          rawTimeouts++;
          done();
        }, 3_000);
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('end', () => done());
        socket.on('close', () => done());
        socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
        socket.on('connect', () => {
          socket.write(bytes);
          socket.end();
        });
      });

    const rawCount = Math.round(TOTAL * RAW_SHARE);
    const httpCount = TOTAL - rawCount;
    let httpSent = 0;
    let rawSent = 0;
    const started = Date.now();
    const httpLoop = async (loop: number) => {
      const r = prng(SEED ^ (0x9e3779b9 * (loop + 1)));
      while (httpSent < httpCount) {
        httpSent++;
        const g = generate(r);
        const outcome = await viaHttp(g);
        if (outcome.error !== undefined) clientErrors.set(outcome.error, (clientErrors.get(outcome.error) ?? 0) + 1);
        check(`${g.method} ${g.path.slice(0, 200)}`, outcome);
      }
    };
    const rawLoop = async (loop: number) => {
      const r = prng(SEED ^ (0x85ebca6b * (loop + 1)));
      while (rawSent < rawCount) {
        rawSent++;
        const bytes = rawRequest(r);
        const outcome = await viaRaw(bytes);
        if (outcome.error !== undefined) clientErrors.set(`raw ${outcome.error}`, (clientErrors.get(`raw ${outcome.error}`) ?? 0) + 1);
        check(`raw ${JSON.stringify(bytes.subarray(0, 120).toString('latin1'))}`, outcome);
      }
    };
    const progress = setInterval(() => {
      if (!isAlive(server.pid)) note(`the server process ${server.pid} died: ${server.exitStatus()}`);
    }, 1_000);
    try {
      await Promise.all([
        ...Array.from({ length: HTTP_CONNECTIONS }, (_, i) => httpLoop(i)),
        ...Array.from({ length: RAW_CONNECTIONS }, (_, i) => rawLoop(i)),
      ]);
    } finally {
      clearInterval(progress);
    }
    const seconds = (Date.now() - started) / 1000;

    const statuses = [...statusCounts.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(', ');
    const errors = [...clientErrors.entries()].sort((a, b) => b[1] - a[1]).map(([e, n]) => `${e}: ${n}`).join(', ');
    console.log(
      `fuzz: ${httpSent} HTTP + ${rawSent} raw requests in ${seconds.toFixed(1)} s (${Math.round(TOTAL / seconds)}/s); ` +
        `statuses {${statuses}}; connection outcomes without a status {${errors}}; raw sockets still open after 3 s: ${rawTimeouts}`,
    );
    const ctx = `seed ${SEED}; server ${server.exitStatus()}; logs:\n${server.logs().slice(-3000)}`;
    expect(problems, ctx).toEqual([]);
    expect(httpSent + rawSent).toBeGreaterThanOrEqual(TOTAL);
    expect(server.exited(), ctx).toBe(false);
    expect(isAlive(server.pid), ctx).toBe(true);
    // Most requests got an answer. The others met a connection the server closed on purpose:
    // after answering 431 (headers too large) or 413 while the client was still writing (reset,
    // broken pipe), or after an early answer that left the rest of a body to be parsed as the
    // next request (a response the client cannot match: HPE_*), or the client itself refused to
    // send it. A timeout (no answer in 10 s) or a refused connection is never acceptable.
    const answered = [...statusCounts.values()].reduce((a, b) => a + b, 0);
    expect(answered, `only ${answered} answers: ${errors}`).toBeGreaterThan(TOTAL * 0.75);
    const unexplained = [...clientErrors.keys()].filter((e) => !/^(raw )?(ECONNRESET|EPIPE|HPE_[A-Z_]+|client: .*)$/.test(e));
    expect(unexplained, errors).toEqual([]);
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    // And it still does its job.
    const token = await fetch(`${server.url}/auth?service=${SERVICE}&scope=repository:team/app:pull`, {
      headers: { authorization: `Basic ${basicOf('checker', GOOD_PASSWORD)}` },
    });
    expect(token.status, await token.clone().text()).toBe(200);
    // About a minute on a quiet 2-core machine; the bound leaves room for a busy one (a limit on
    // how long the test may take, not a speed target: bench/ measures speed).
  }, LONG ? 3_600_000 : 420_000);
});
