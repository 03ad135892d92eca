import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { AclAuthorizer } from '../authz/acl-authorizer.js';
import { StaticAuthenticator } from '../authn/static.js';
import type { Authenticator } from '../authn/types.js';
import type { Authorizer } from '../authz/types.js';
import type { LoadedConfig } from '../config/load.js';
import { LogAuditSink, type AuditSink } from '../observability/audit.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { TokenIssuer } from '../token/issue.js';
import { Signer } from '../token/signer.js';
import { tokenRoutes } from './token-route.js';
import { parseListenAddress, type ListenAddress } from './listen.js';

export interface ServerOptions {
  /** A pino logger; by default one writing JSON to stdout. */
  logger?: Logger;
  /** Where token decisions go; by default the logger. */
  audit?: AuditSink;
  /** Extra authenticators, tried after the config's own (for embedding). */
  authenticators?: Authenticator[];
  /** Extra authorizers, asked after the config's own. */
  authorizers?: Authorizer[];
}

export interface StsServer {
  readonly app: FastifyInstance;
  readonly config: LoadedConfig;
  readonly issuer: TokenIssuer;
  readonly signer: Signer;
  /** Starts listening (by default on server.addr) and returns the base URL. */
  listen(address?: Partial<ListenAddress>): Promise<string>;
  close(): Promise<void>;
}

/** Wires the backends the config names into one TokenIssuer. */
export function buildIssuer(loaded: LoadedConfig, options: ServerOptions = {}): { issuer: TokenIssuer; signer: Signer } {
  const { config } = loaded;
  const signer = new Signer(loaded.signingKey, loaded.jwtHeader);
  const authenticators: Authenticator[] = [];
  if (config.users) authenticators.push(new StaticAuthenticator(config.users));
  authenticators.push(...(options.authenticators ?? []));
  const authorizers: Authorizer[] = [new AclAuthorizer(loaded.acl), ...(options.authorizers ?? [])];
  const issuer = new TokenIssuer(
    { issuer: config.token.issuer, expiresIn: config.token.expiration, services: config.token.services },
    authenticators,
    authorizers,
    signer,
  );
  return { issuer, signer };
}

/** Creates the HTTP server for a loaded config. Nothing listens until `listen()`. */
export async function createServer(loaded: LoadedConfig, options: ServerOptions = {}): Promise<StsServer> {
  const { config } = loaded;
  const logger = options.logger ?? createLogger();
  // The audit trail is not a debug log: it is written whatever level the rest of the log is at.
  const audit = options.audit ?? new LogAuditSink(logger.child({}, { level: 'info' }));
  const { issuer, signer } = buildIssuer(loaded, options);

  const app = Fastify({
    loggerInstance: logger,
    // The audit event is the request log; it knows what is secret.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    ...(loaded.tls ? { https: { cert: loaded.tls.cert, key: loaded.tls.key } } : {}),
  }) as unknown as FastifyInstance;

  if (config.server.hsts) {
    app.addHook('onSend', async (_req, reply) => {
      reply.header('strict-transport-security', 'max-age=63072000; includeSubDomains');
    });
  }
  app.setNotFoundHandler((_req, reply) => {
    reply.code(404).send({ errors: [{ code: 'NOT_FOUND', message: 'not found' }], details: 'not found' });
  });

  await app.register(tokenRoutes, {
    pathPrefix: config.server.path_prefix,
    realm: config.token.issuer,
    realIp: { header: config.server.real_ip_header, position: config.server.real_ip_pos },
    issuer: () => issuer,
    audit,
  });
  app.get(`${config.server.path_prefix}/healthz`, async () => ({ status: 'ok' }));

  return {
    app,
    config: loaded,
    issuer,
    signer,
    async listen(address) {
      const configured = parseListenAddress(config.server.addr);
      const host = address?.host ?? configured.host;
      const port = address?.port ?? configured.port;
      await app.listen({ host, port });
      const bound = app.server.address();
      const boundPort = typeof bound === 'object' && bound ? bound.port : port;
      const shownHost = host === '::' || host === '0.0.0.0' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
      return `${loaded.tls ? 'https' : 'http'}://${shownHost}:${boundPort}`;
    },
    async close() {
      // Requests in flight finish; keep-alive connections that turn idle meanwhile are closed as
      // soon as they do, or close() would wait for the client to hang up.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(sweep);
      }
    },
  };
}
