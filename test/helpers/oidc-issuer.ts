/**
 * A real OpenID Connect issuer for tests, on 127.0.0.1: it serves
 * `/.well-known/openid-configuration` and a JWKS over HTTP, and signs ID tokens with keys the test
 * generates (never committed). Tests rotate keys, slow the JWKS down or close the server to see
 * what the token server does.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';

export type IssuerAlg = 'RS256' | 'ES256';

interface IssuerKey {
  kid: string;
  alg: IssuerAlg;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  publicJwk: JWK;
  publicPem: string;
}

export interface SignOptions {
  /** The key to sign with (default: the first one). */
  kid?: string;
  /** Extra or replacing header fields (e.g. a kid the issuer never published). */
  header?: Record<string, unknown>;
}

export interface TestIssuer {
  /** `http://127.0.0.1:<port>`: the `iss` and the discovery base. */
  readonly issuer: string;
  /** Paths requested so far, in order (`/.well-known/openid-configuration`, `/jwks`). */
  readonly requests: string[];
  /** How many times the JWKS was requested. */
  jwksFetches(): number;
  /** Generates a key; `publish: false` keeps it out of the JWKS (a rotation yet to happen). */
  addKey(alg: IssuerAlg, kid: string, options?: { publish?: boolean }): Promise<void>;
  /** Puts a key generated with publish: false into the JWKS. */
  publish(kid: string): void;
  /** Signs a token with one of the issuer's keys. */
  sign(claims: JWTPayload, options?: SignOptions): Promise<string>;
  /** The SPKI PEM of a key (what an algorithm-confusion attack uses as an HMAC secret). */
  publicPem(kid: string): string;
  /** Delay every JWKS answer by this long (0: answer at once). */
  jwksDelayMs: number;
  /** Stops answering: open connections are cut, new ones refused. */
  close(): Promise<void>;
}

export async function startIssuer(options: { path?: string } = {}): Promise<TestIssuer> {
  const keys = new Map<string, IssuerKey>();
  // In the order addKey was called (keys are generated concurrently): the first is the default.
  const order: string[] = [];
  const published = new Set<string>();
  const requests: string[] = [];
  const path = options.path ?? '';
  let issuer = '';
  let delay = 0;
  const timers = new Set<NodeJS.Timeout>();

  const send = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    requests.push(url);
    if (url === `${path}/.well-known/openid-configuration`) {
      send(res, { issuer, jwks_uri: `${issuer}/jwks`, id_token_signing_alg_values_supported: ['RS256', 'ES256'] });
    } else if (url === `${path}/jwks`) {
      const body = { keys: [...published].map((kid) => keys.get(kid)?.publicJwk) };
      if (delay <= 0) return send(res, body);
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!res.destroyed) send(res, body);
      }, delay);
      timers.add(timer);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  let closed = false;

  return {
    issuer,
    requests,
    jwksFetches: () => requests.filter((p) => p === `${path}/jwks`).length,
    async addKey(alg, kid, { publish = true } = {}) {
      order.push(kid);
      const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
      const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
      keys.set(kid, { kid, alg, privateKey, publicJwk, publicPem: await exportSPKI(publicKey) });
      if (publish) published.add(kid);
    },
    publish(kid) {
      if (!keys.has(kid)) throw new Error(`no key ${kid}`);
      published.add(kid);
    },
    async sign(claims, signOptions = {}) {
      const key = keys.get(signOptions.kid ?? order[0] ?? '');
      if (!key) throw new Error(`no key ${signOptions.kid ?? '(none generated)'}`);
      return new SignJWT(claims).setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid, ...signOptions.header }).sign(key.privateKey);
    },
    publicPem(kid) {
      const key = keys.get(kid);
      if (!key) throw new Error(`no key ${kid}`);
      return key.publicPem;
    },
    get jwksDelayMs() {
      return delay;
    },
    set jwksDelayMs(ms: number) {
      delay = ms;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** base64url of a JSON value, for hand-made (unsigned or tampered) tokens. */
export const b64json = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
