// The GitHub preset against a small GitHub of our own on 127.0.0.1: the OAuth web flow
// (authorize → code → access_token, with PKCE) and the REST API (/user, /user/orgs, /user/teams,
// paginated with Link headers), as GitHub Enterprise Server lays them out (<web_url>/api/v3). It is
// the protocol peer our code talks to over real HTTP, not a stand-in for any of our modules.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { StsServer } from '../../src/server/app.js';
import { nextLink } from '../../src/sso/github.js';
import { baseConfig, makeKeyDir, type KeyDir } from '../helpers/fixtures.js';
import { attributeOf, HttpBrowser, type BrowserResponse } from '../helpers/http-browser.js';
import { basic, startInProcess } from '../helpers/server.js';

const STS = 'http://sts.test';
const CLIENT_ID = 'Iv1.testclient';
const CLIENT_SECRET = 'github-client-secret';

interface GitHubUser {
  id: number;
  login: string;
  orgs: string[];
  /** org/slug */
  teams: string[];
}

interface FakeGitHub {
  url: string;
  /** Who approves the next authorization request. */
  next: { login: string };
  users: Record<string, GitHubUser>;
  authorizeRequests: URLSearchParams[];
  apiRequests: { path: string; authorization: string | undefined; version: string | undefined }[];
  /** Paths answered 502 once (to simulate an outage). */
  failOnce: Set<string>;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += (chunk as Buffer).toString('utf8');
  return text;
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body));

async function startFakeGitHub(users: Record<string, GitHubUser>): Promise<FakeGitHub> {
  const codes = new Map<string, { login: string; challenge: string; redirectUri: string }>();
  const tokens = new Map<string, string>();
  const fake: Omit<FakeGitHub, 'url' | 'close'> = { next: { login: '' }, users, authorizeRequests: [], apiRequests: [], failOnce: new Set() };
  let base = '';

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', base);
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
      fake.authorizeRequests.push(url.searchParams);
      const q = url.searchParams;
      if (q.get('client_id') !== CLIENT_ID || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
        return void res.writeHead(400).end('bad authorization request');
      }
      const code = randomBytes(10).toString('hex');
      codes.set(code, { login: fake.next.login, challenge: q.get('code_challenge') ?? '', redirectUri: q.get('redirect_uri') ?? '' });
      const back = new URL(q.get('redirect_uri') ?? '');
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.get('state') ?? '');
      return void res.writeHead(302, { location: back.href }).end();
    }
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      const form = new URLSearchParams(await readBody(req));
      const grant = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      // GitHub answers a bad code with 200 and an error field; so do we.
      if (form.get('client_id') !== CLIENT_ID || form.get('client_secret') !== CLIENT_SECRET) return json(res, 200, { error: 'incorrect_client_credentials' });
      const verifier = form.get('code_verifier') ?? '';
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      if (!grant || grant.challenge !== challenge || grant.redirectUri !== form.get('redirect_uri')) return json(res, 200, { error: 'bad_verification_code' });
      const token = `gho_${randomBytes(16).toString('hex')}`;
      tokens.set(token, grant.login);
      return json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:org' });
    }
    if (url.pathname.startsWith('/api/v3/')) {
      const path = url.pathname.slice('/api/v3'.length);
      fake.apiRequests.push({ path: `${path}${url.search}`, authorization: req.headers.authorization, version: req.headers['x-github-api-version'] as string | undefined });
      if (fake.failOnce.delete(path)) return json(res, 502, { message: 'Server Error' });
      const login = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      const user = login === undefined ? undefined : fake.users[login];
      if (!user) return json(res, 401, { message: 'Bad credentials' });
      // One item per page, so that the client must follow the Link header.
      const page = Number(url.searchParams.get('page') ?? '1');
      const paged = (items: unknown[]) => {
        const more = page < items.length;
        const link = `<${base}/api/v3${path}?per_page=100&page=${page + 1}>; rel="next", <${base}/api/v3${path}?per_page=100&page=${items.length}>; rel="last"`;
        return json(res, 200, items.slice(page - 1, page), more ? { link } : {});
      };
      if (path === '/user') return json(res, 200, { login: user.login, id: user.id, name: `${user.login} Example`, email: null, type: 'User' });
      if (path === '/user/orgs') return paged(user.orgs.map((login, i) => ({ login, id: 500 + i })));
      if (path === '/user/teams') {
        return paged(user.teams.map((t) => ({ slug: t.split('/')[1], name: t, organization: { login: t.split('/')[0] } })));
      }
      return json(res, 404, { message: 'Not Found' });
    }
    res.writeHead(404).end();
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    ...fake,
    url: base,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let keys: KeyDir;
let github: FakeGitHub;
let server: StsServer;

beforeAll(async () => {
  github = await startFakeGitHub({
    Alice: { id: 1001, login: 'Alice', orgs: ['acme', 'oss-friends'], teams: ['acme/registry', 'acme/web'] },
    bob: { id: 1002, login: 'bob', orgs: ['acme'], teams: ['acme/web'] },
    eve: { id: 1003, login: 'eve', orgs: ['elsewhere'], teams: [] },
  });
  keys = await makeKeyDir();
  await writeFile(join(keys.dir, 'session.key'), randomBytes(48));
  const provider = (id: string, extra: Record<string, unknown>) => ({
    id,
    type: 'github' as const,
    web_url: github.url,
    api_url: `${github.url}/api/v3`,
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_url: `${STS}/login/${id}/callback`,
    ...extra,
  });
  ({ server } = await startInProcess(
    keys,
    baseConfig({
      store: { driver: 'sqlite', path: 'store.db' },
      acl: [{ match: { account: '/.+/', name: '${account}/*' }, actions: ['pull', 'push'] }],
      sso: {
        session_secret_file: 'session.key',
        providers: [
          provider('github', { restrictions: { organizations: ['ACME'] } }),
          provider('gh-team', { display_name: 'GitHub (registry team)', account_prefix: 'gh-', restrictions: { teams: ['acme/registry'] } }),
        ],
      },
    }),
  ));
});

afterAll(async () => {
  await server?.close();
  await github?.close();
  await keys?.cleanup();
});

beforeEach(() => {
  github.authorizeRequests.length = 0;
  github.apiRequests.length = 0;
});

async function signIn(login: string, providerId = 'github'): Promise<BrowserResponse> {
  github.next.login = login;
  const chain = await new HttpBrowser({ origin: STS, app: server.app }).follow(`${STS}/login/${providerId}`);
  return chain.at(-1) as BrowserResponse;
}

describe('GitHub sign-in', () => {
  it('runs the OAuth flow with PKCE and state, reads the user, orgs and teams, and mints a token', async () => {
    const page = await signIn('Alice');
    expect(page.status, page.body).toBe(200);
    expect(page.body).toContain('Signed in as alice');

    const authorize = github.authorizeRequests[0];
    expect(authorize?.get('code_challenge_method')).toBe('S256');
    expect(authorize?.get('state')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(authorize?.get('scope')).toBe('read:org');
    expect(authorize?.get('redirect_uri')).toBe(`${STS}/login/github/callback`);
    expect(authorize?.has('nonce')).toBe(false);

    // Every page of orgs and teams was read (one item per page), always with the token.
    expect(github.apiRequests.map((r) => r.path)).toEqual([
      '/user',
      '/user/orgs?per_page=100',
      '/user/orgs?per_page=100&page=2',
      '/user/teams?per_page=100',
      '/user/teams?per_page=100&page=2',
    ]);
    for (const request of github.apiRequests) {
      expect(request.authorization).toMatch(/^Bearer gho_/);
      expect(request.version).toBe('2022-11-28');
    }

    expect((await server.store?.users.get('alice'))?.labels).toEqual({
      organizations: ['acme', 'oss-friends'],
      teams: ['acme/registry', 'acme/web'],
      sso: ['github'],
      sso_subject: ['1001'],
    });
    const token = attributeOf(page.body, /<input[^>]*id="token"[^>]*>/, 'value') ?? '';
    const res = await server.app.inject({
      method: 'GET',
      url: '/auth?service=test-registry&scope=repository:alice/app:push',
      headers: { authorization: basic('alice', token) },
    });
    expect(res.statusCode).toBe(200);
  });

  it('checks organizations without regard to case, and teams as org/slug', async () => {
    expect((await signIn('bob')).status).toBe(200);
    const eve = await signIn('eve');
    expect(eve.status).toBe(403);
    expect(eve.body).toContain('not a member of an organization allowed to sign in here');

    const team = await signIn('Alice', 'gh-team');
    expect(team.status, team.body).toBe(200);
    expect(team.body).toContain('Signed in as gh-alice');
    const bob = await signIn('bob', 'gh-team');
    expect(bob.status).toBe(403);
    expect(bob.body).toContain('not a member of a team allowed to sign in here');
  });

  it('never hands an account to a new GitHub user who took a freed login', async () => {
    github.users.bob = { id: 9999, login: 'bob', orgs: ['acme'], teams: [] };
    try {
      const page = await signIn('bob');
      expect(page.status).toBe(403);
      expect(page.body).toContain('belongs to another account here');
    } finally {
      github.users.bob = { id: 1002, login: 'bob', orgs: ['acme'], teams: ['acme/web'] };
    }
  });

  it('answers 503 when the GitHub API fails, and 400 when the code exchange is refused', async () => {
    github.failOnce.add('/user');
    const outage = await signIn('bob');
    expect(outage.status).toBe(503);
    expect(outage.headers['retry-after']).toBe('5');

    // A callback carrying a code GitHub never issued: GitHub answers 200 with an error field.
    const browser = new HttpBrowser({ origin: STS, app: server.app });
    github.next.login = 'bob';
    const start = await browser.request('GET', `${STS}/login/github`);
    const state = new URL(start.location ?? '').searchParams.get('state') ?? '';
    const page = await browser.request('GET', `${STS}/login/github/callback?code=forged&state=${state}`);
    expect(page.status).toBe(400);
  });
});

describe('nextLink', () => {
  const api = 'https://api.github.com';
  it.each([
    ['<https://api.github.com/user/orgs?page=2>; rel="next", <https://api.github.com/user/orgs?page=3>; rel="last"', 'https://api.github.com/user/orgs?page=2'],
    ['<https://api.github.com/user/orgs?page=3>; rel="last", <https://api.github.com/user/orgs?page=2>; rel="next"', 'https://api.github.com/user/orgs?page=2'],
    ['<https://api.github.com/user/orgs?page=1>; rel="prev"', undefined],
    // The token is never sent to another host, even when a Link header names one.
    ['<https://evil.example/user/orgs?page=2>; rel="next"', undefined],
    ['<https://api.github.com.evil.example/x>; rel="next"', undefined],
    [null, undefined],
  ])('%s', (header, expected) => {
    expect(nextLink(header, api)).toBe(expected);
  });
});
