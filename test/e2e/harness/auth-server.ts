import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { AdminService } from '../../../src/admin/service.js';
import { buildIssuer, createLogger, createServer, generateSigningKey, hashPassword, parseConfigText } from '../../../src/index.js';
import type { AuditEvent, AuditSink, KeyKind, LoadedConfig } from '../../../src/index.js';
import type { Store } from '../../../src/store/index.js';

export interface AclRule {
  match: { account?: string; type?: string; name?: string; service?: string; ip?: string; labels?: Record<string, string> };
  actions: string[];
  comment?: string;
}

export interface AuthServerOptions {
  keyKind: KeyKind;
  /** Account → password; `null` declares the anonymous account (use the key `''`). */
  users: Record<string, string | null>;
  acl: AclRule[];
  issuer?: string;
  service?: string;
  /** How tokens name their key (`token.jwt_header`); the default is x5c. */
  jwtHeader?: 'x5c' | 'libtrust' | 'thumbprint';
  /**
   * A SQLite store (`store: {driver: sqlite}`) in the server's temporary folder: store users,
   * access tokens and refresh tokens. The running server then exposes `store` and `admin`.
   */
  sqliteStore?: boolean;
  /** Users created in the store before the server answers (bcrypt cost 4): name → password. */
  storeUsers?: Record<string, string>;
  /** `token.allow_post`; false answers POST with 404 (the server's default is true). */
  allowPost?: boolean;
  /**
   * Further top-level config sections (e.g. `trusted_issuers`), added to the generated file as
   * they are; a key the harness writes itself (server, token, users, acl, store) is refused.
   */
  configExtra?: Record<string, unknown>;
  /** The port to listen on (127.0.0.1); default a free one. For URLs the config must name in advance. */
  port?: number;
}

/** One HTTP request the token server received, as the client sent it (secrets masked). */
export interface RecordedRequest {
  method: string;
  path: string;
  /** Query parameters, every value of each (repeated `scope` stays a list). */
  query: Record<string, string[]>;
  /** A POST's form fields; `password` and `refresh_token` are replaced by `***`. */
  form: Record<string, string[]> | undefined;
  /** The user name of a Basic Authorization header ('' for an empty one), never the password. */
  basicUser: string | undefined;
  /** The HTTP status answered (set once the response is sent). */
  status: number | undefined;
}

export interface RunningAuthServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The token endpoint, as the registry's `auth.token.realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** The signing certificate, for the registry's `rootcertbundle`. */
  certPem: string;
  /** Every token decision so far, in order. */
  audit: AuditEvent[];
  /** The loaded config, e.g. for `distribution2Block`. */
  loaded: LoadedConfig;
  /** Every HTTP request the server received (token requests and 404s alike), in order. */
  requests: RecordedRequest[];
  /** The store, with `sqliteStore`; closed by close(). */
  store: Store | undefined;
  /** Administration of that store (users, access tokens, refresh tokens), with `sqliteStore`. */
  admin: AdminService | undefined;
  close(): Promise<void>;
}

const SECRET_FIELDS = new Set(['password', 'refresh_token']);

function paramsOf(params: URLSearchParams): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [key, value] of params) (out[key] ??= []).push(SECRET_FIELDS.has(key) ? '***' : value);
  return out;
}

function basicUserOf(header: string | undefined): string | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(0, colon);
}

/**
 * Our server, in-process, with a fresh key of the given kind in a temporary folder. Passwords are
 * hashed at bcrypt cost 4: the tests are about the protocol, not about slow hashes.
 */
export async function startAuthServer(options: AuthServerOptions): Promise<RunningAuthServer> {
  const issuer = options.issuer ?? 'sts-e2e-issuer';
  const service = options.service ?? 'sts-e2e-registry';
  const dir = await mkdtemp(join(tmpdir(), 'sts-e2e-auth-'));
  try {
    const key = await generateSigningKey({ kind: options.keyKind });
    await writeFile(join(dir, 'token.key'), key.keyPem, { mode: 0o600 });
    await writeFile(join(dir, 'token.crt'), key.certPem);

    const users: Record<string, { password?: string }> = {};
    for (const [name, password] of Object.entries(options.users)) {
      users[name] = password === null ? {} : { password: await hashPassword(password, 4) };
    }
    const own = ['server', 'token', 'users', 'acl', 'store'];
    const clash = Object.keys(options.configExtra ?? {}).filter((key) => own.includes(key));
    if (clash.length > 0) throw new Error(`configExtra may not set ${clash.join(', ')}: use the harness options`);
    const yamlText = stringify({
      ...options.configExtra,
      server: { addr: '127.0.0.1:0' },
      token: {
        issuer,
        expiration: 300,
        certificate: 'token.crt',
        key: 'token.key',
        services: [service],
        ...(options.jwtHeader ? { jwt_header: options.jwtHeader } : {}),
        ...(options.allowPost !== undefined ? { allow_post: options.allowPost } : {}),
      },
      users,
      acl: options.acl,
      ...(options.sqliteStore ? { store: { driver: 'sqlite', path: 'store.db' } } : {}),
    });
    // An empty env: a developer's STS_ADDR must not move the test server.
    const loaded = await parseConfigText(yamlText, { baseDir: dir, source: join(dir, 'config.yml'), env: {} });

    const audit: AuditEvent[] = [];
    const sink: AuditSink = { write: (event) => void audit.push(event) };
    const server = await createServer(loaded, { logger: createLogger({ level: 'silent' }), audit: sink });
    const requests: RecordedRequest[] = [];
    let url: string;
    let admin: AdminService | undefined;
    try {
      if (options.sqliteStore && !server.store) throw new Error('the server opened no store although the config names one');
      const store = server.store;
      if (store) {
        admin = new AdminService(store, loaded, buildIssuer(loaded, { store }).directory);
        for (const [name, password] of Object.entries(options.storeUsers ?? {})) {
          // The store directly: AdminService.addUser would hash at the default cost (slow).
          await store.users.create({ name, passwordHash: await hashPassword(password, 4) }, 'e2e');
        }
      }
      // Root hooks, added before listen, see every request (including 404s for a refused POST).
      const recorded = new WeakMap<object, RecordedRequest>();
      server.app.addHook('onRequest', async (request) => {
        const at = request.url.indexOf('?');
        const entry: RecordedRequest = {
          method: request.method,
          path: at < 0 ? request.url : request.url.slice(0, at),
          query: paramsOf(new URLSearchParams(at < 0 ? '' : request.url.slice(at + 1))),
          form: undefined,
          basicUser: basicUserOf(request.headers.authorization),
          status: undefined,
        };
        recorded.set(request, entry);
        requests.push(entry);
      });
      server.app.addHook('preHandler', async (request) => {
        const entry = recorded.get(request);
        if (entry && request.body instanceof URLSearchParams) entry.form = paramsOf(request.body);
      });
      server.app.addHook('onResponse', async (request, reply) => {
        const entry = recorded.get(request);
        if (entry) entry.status = reply.statusCode;
      });
      url = await server.listen({ host: '127.0.0.1', port: options.port ?? 0 });
    } catch (err) {
      await server.close();
      throw err;
    }
    return {
      url,
      realm: `${url}/auth`,
      service,
      issuer,
      certPem: key.certPem,
      audit,
      loaded,
      requests,
      store: server.store,
      admin,
      async close() {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Asks the token endpoint directly (GET with Basic), as a registry client would. */
export async function fetchToken(
  server: RunningAuthServer,
  scopes: readonly string[],
  credentials?: { username: string; password: string },
): Promise<{ status: number; token: string | undefined; body: unknown }> {
  const query = new URLSearchParams({ service: server.service });
  for (const scope of scopes) query.append('scope', scope);
  const headers: Record<string, string> = {};
  if (credentials) {
    headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  }
  const res = await fetch(`${server.realm}?${query.toString()}`, { headers });
  const body: unknown = await res.json();
  const token =
    typeof body === 'object' && body !== null && 'token' in body && typeof body.token === 'string' ? body.token : undefined;
  return { status: res.status, token, body };
}
