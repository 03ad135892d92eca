import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createLogger, createServer, generateSigningKey, hashPassword, parseConfigText } from '../../../src/index.js';
import type { AuditEvent, AuditSink, KeyKind, LoadedConfig } from '../../../src/index.js';

export interface AclRule {
  match: { account?: string; type?: string; name?: string; service?: string; ip?: string };
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
  close(): Promise<void>;
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
    const yamlText = stringify({
      server: { addr: '127.0.0.1:0' },
      token: {
        issuer,
        expiration: 300,
        certificate: 'token.crt',
        key: 'token.key',
        services: [service],
        ...(options.jwtHeader ? { jwt_header: options.jwtHeader } : {}),
      },
      users,
      acl: options.acl,
    });
    // An empty env: a developer's STS_ADDR must not move the test server.
    const loaded = await parseConfigText(yamlText, { baseDir: dir, source: join(dir, 'config.yml'), env: {} });

    const audit: AuditEvent[] = [];
    const sink: AuditSink = { write: (event) => void audit.push(event) };
    const server = await createServer(loaded, { logger: createLogger({ level: 'silent' }), audit: sink });
    let url: string;
    try {
      url = await server.listen({ host: '127.0.0.1', port: 0 });
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
