import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { AclAuthorizer } from '../authz/acl-authorizer.js';
import { StaticAuthenticator } from '../authn/static.js';
import type { Authenticator } from '../authn/types.js';
import type { Authorizer } from '../authz/types.js';
import type { LoadedConfig } from '../config/load.js';
import type { AuditSink } from '../observability/audit.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { TokenIssuer } from '../token/issue.js';
import { Signer } from '../token/signer.js';
import { tokenRoutes } from './token-route.js';
import { AccessTokenAuthenticator } from '../authn/access-token.js';
import { directoryOf, type Directory } from '../authn/directory.js';
import { RefreshTokenAuthenticator } from '../authn/refresh-token.js';
import { StoreUserAuthenticator } from '../authn/store-users.js';
import { WorkloadAuthenticator } from '../authn/workload.js';
import { StoreAclAuthorizer } from '../authz/store-acl.js';
import { ExtAuthenticator } from '../authn/ext.js';
import { WebhookAuthenticator } from '../authn/webhook.js';
import { LdapAuthenticator } from '../authn/ldap.js';
import { ExtAuthorizer } from '../authz/ext.js';
import { WebhookAuthorizer } from '../authz/webhook.js';
import { checkNameClashes, openConfiguredStore } from '../store/from-config.js';
import type { Store } from '../store/types.js';
import { StoreRefreshTokenIssuer } from '../token/refresh.js';
import { parseListenAddress, type ListenAddress } from './listen.js';
import { observeAuthenticators } from '../authn/chain.js';
import { observeAuthorizers } from '../authz/chain.js';
import { CERTIFICATE_WARNING_DAYS, certificateExpiry, Metrics, warnIfCertificateExpiresSoon } from '../observability/metrics.js';
import { openAuditOutput, type AuditOutput } from '../observability/audit-destination.js';
import { countRequests, meteredAudit, metricsRoutes } from './metrics-route.js';
import { healthRoutes, Readiness } from './health-route.js';
import { createLockout, type Lockout } from '../security/lockout.js';
import { parseIpRule } from '../authz/acl/ip.js';
import { planReload, type ReloadResult } from './reload.js';
import { keyringView } from '../token/keyring.js';
import type { SigningKey } from '../token/keys.js';
import type { Server as TlsServer } from 'node:tls';
import type { Server as HttpServer } from 'node:http';
import { moveListener, retireListener } from './listener.js';

export interface ServerOptions {
  /**
   * The store to use instead of opening the one the config names; the caller keeps it (migrates
   * and closes it). Without it, a configured store is opened and migrated here, and closed with
   * the server.
   */
  store?: Store;
  /** A pino logger; by default one writing JSON to stdout. */
  logger?: Logger;
  /** Where token decisions go; by default the logger. */
  audit?: AuditSink;
  /** Extra authenticators, tried after the config's own (for embedding). */
  authenticators?: Authenticator[];
  /** Extra authorizers, asked after the config's own. */
  authorizers?: Authorizer[];
  /** The clock (epoch ms); tests move it to check expiry. */
  now?: () => number;
}

export interface StsServer {
  readonly app: FastifyInstance;
  readonly config: LoadedConfig;
  readonly store: Store | undefined;
  readonly issuer: TokenIssuer;
  readonly signer: Signer;
  /** The Prometheus metrics, unless `metrics.enabled` is false. */
  readonly metrics: Metrics | undefined;
  /** Reopens the audit file (SIGUSR2, after logrotate moved it); nothing without audit.file. */
  reopenAuditFile(): void;
  /**
   * Swaps in a new, already validated config: new requests use it, requests in flight finish on
   * the old one. Settings only a restart applies keep their old values (listed in the result).
   */
  reload(loaded: LoadedConfig): Promise<ReloadResult>;
  /** Starts listening (by default on server.addr) and returns the base URL. */
  listen(address?: Partial<ListenAddress>): Promise<string>;
  close(): Promise<void>;
}

/** Wires the backends the config names into one TokenIssuer. */
export function buildIssuer(
  loaded: LoadedConfig,
  options: Pick<ServerOptions, 'authenticators' | 'authorizers' | 'store' | 'now'> & { lockout?: Lockout | undefined; metrics?: Metrics | undefined } = {},
): { issuer: TokenIssuer; signer: Signer; directory: Directory; authenticators: readonly Authenticator[] } {
  const { config } = loaded;
  const { store } = options;
  const now = options.now ?? Date.now;
  const signer = new Signer(loaded.signingKey, loaded.jwtHeader);

  const userBackends: Authenticator[] = [];
  for (const source of config.authn_order) {
    if (source === 'users' && config.users) userBackends.push(new StaticAuthenticator(config.users, { cache: config.credential_cache, now }));
    if (source === 'store' && store) userBackends.push(new StoreUserAuthenticator(store, { cache: config.credential_cache, now }));
    // The loader found the program on PATH at start; parseConfig always does, so the bare name is
    // only a fallback for a hand-built LoadedConfig.
    if (source === 'ext' && config.ext_auth) {
      userBackends.push(new ExtAuthenticator(config.ext_auth, loaded.external?.extAuthCommand ?? config.ext_auth.command, now));
    }
    if (source === 'webhook' && config.webhook_auth) {
      userBackends.push(new WebhookAuthenticator(config.webhook_auth, loaded.external?.webhookAuthSecret, now));
    }
    if (source === 'ldap' && config.ldap_auth) userBackends.push(new LdapAuthenticator(config.ldap_auth, loaded.ldap ?? {}, { now }));
  }
  userBackends.push(...(options.authenticators ?? []));
  // Our own secrets come first: they are recognised by prefix, so no password hash runs for them.
  const authenticators: Authenticator[] = [];
  const directory = directoryOf(userBackends);
  if (store) {
    authenticators.push(new AccessTokenAuthenticator(store, directory, now));
    if (config.refresh_tokens.enabled) {
      authenticators.push(new RefreshTokenAuthenticator(store, directory, { idleTimeout: config.refresh_tokens.idle_timeout }, now));
    }
  }
  // Trusted issuers' ID tokens are recognised by shape and iss, not by a user name: before the
  // password backends, so no bcrypt runs for them.
  if (config.trusted_issuers?.length) authenticators.push(new WorkloadAuthenticator(config.trusted_issuers, now));
  authenticators.push(...userBackends);

  const authorizers: Authorizer[] = [new AclAuthorizer(loaded.acl)];
  if (store) authorizers.push(new StoreAclAuthorizer(store));
  // docker_auth's order: the ACLs, then ext_authz, which never answers "no rule" and so ends the
  // chain; a webhook after it is asked only when there is no ext_authz.
  if (config.ext_authz) authorizers.push(new ExtAuthorizer(config.ext_authz, loaded.external?.extAuthzCommand ?? config.ext_authz.command, now));
  if (config.webhook_authz) authorizers.push(new WebhookAuthorizer(config.webhook_authz, loaded.external?.webhookAuthzSecret, now));
  authorizers.push(...(options.authorizers ?? []));

  // Metrics time and count every backend call at the chain level; the backends know nothing of it.
  const { metrics } = options;
  const authnChain = metrics ? observeAuthenticators(authenticators, (name) => metrics.authnRecorder(name)) : authenticators;
  const authzChain = metrics ? observeAuthorizers(authorizers, (name) => metrics.authzRecorder(name)) : authorizers;

  const refresh = store && config.refresh_tokens.enabled ? new StoreRefreshTokenIssuer(store, config.refresh_tokens.max_age, now) : undefined;
  const issuer = new TokenIssuer(
    { issuer: config.token.issuer, expiresIn: config.token.expiration, services: config.token.services },
    authnChain,
    authzChain,
    signer,
    refresh,
    now,
    options.lockout,
  );
  return { issuer, signer, directory, authenticators: authnChain };
}

/** Opens, migrates and checks the configured store; the caller closes it. */
export async function prepareStore(loaded: LoadedConfig): Promise<Store | undefined> {
  const store = await openConfiguredStore(loaded);
  if (!store) return undefined;
  try {
    await store.migrate();
    await checkNameClashes(loaded, store);
    return store;
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** Creates the HTTP server for a loaded config. Nothing listens until `listen()`. */
export async function createServer(loaded: LoadedConfig, options: ServerOptions = {}): Promise<StsServer> {
  const { config } = loaded;
  const logger = options.logger ?? createLogger();
  const metrics = config.metrics.enabled ? new Metrics() : undefined;
  // audit.stdout goes through the logger (its child at info: the audit trail is not a debug log).
  const auditOutput: AuditOutput | undefined = options.audit ? undefined : openAuditOutput(config.audit, loaded.baseDir, logger);
  const auditSink = options.audit ?? (auditOutput as AuditOutput).sink;
  const audit = metrics ? meteredAudit(auditSink, metrics) : auditSink;
  const ownsStore = options.store === undefined;
  const store = options.store ?? (await prepareStore(loaded));
  const lockout = createLockout(config.lockout, {
    signingKey: loaded.signingKey,
    logger,
    redisUrl: loaded.lockoutRedisUrl,
    ...(options.now ? { now: options.now } : {}),
    ...(metrics ? { onRefused: (scope: 'address' | 'account') => metrics.lockouts.labels(scope).inc() } : {}),
  });
  const { issuer, signer, directory, authenticators } = buildIssuer(loaded, { ...options, store, lockout, metrics });
  // Replaced as a whole by reload() and when a keyring key starts to sign; the token route reads
  // it once per request.
  let active = { loaded, issuer, signer };
  const clock = options.now ?? Date.now;
  warnIfCertificateExpiresSoon(signer.key, logger, clock());
  metrics?.setCertificate(signer.key);
  const build = (next: LoadedConfig) => buildIssuer(next, { ...options, store, lockout, metrics });

  // The warning also comes while the server runs: when the 30 days begin, and when it expires.
  let expiryTimer: NodeJS.Timeout | undefined;
  const watchExpiry = () => {
    clearTimeout(expiryTimer);
    const expiresMs = certificateExpiry(active.signer.key) * 1000;
    const now = clock();
    const next = [expiresMs - CERTIFICATE_WARNING_DAYS * 86_400_000, expiresMs].find((t) => t >= now);
    if (next === undefined) return;
    expiryTimer = setTimeout(() => {
      warnIfCertificateExpiresSoon(active.signer.key, logger, clock());
      watchExpiry();
    }, Math.min(next - now + 1000, 2 ** 31 - 1));
    expiryTimer.unref();
  };
  watchExpiry();

  const announceKey = (key: SigningKey) => {
    metrics?.setCertificate(key);
    warnIfCertificateExpiresSoon(key, logger, clock());
    watchExpiry();
    logger.info({ kid: key.libtrustKid, thumbprint: key.thumbprint }, 'a new signing key is active: new tokens are signed with it');
  };

  // A staged key with an activation time (token.keyring.activation_delay) starts to sign at that
  // time, in every replica at once: the moment follows from the shared keyring.json.
  let activationTimer: NodeJS.Timeout | undefined;
  const followKeyring = () => {
    clearTimeout(activationTimer);
    const keyring = active.loaded.keyring;
    if (!keyring) return;
    // One clock reading for both questions: a timer may fire a little early (libuv's loop time
    // lags the clock), and a key that turns active between two readings would be neither
    // switched to nor scheduled.
    const now = clock();
    const view = keyringView(keyring.keys, keyring.settings, now);
    if (view.signing && view.signing.key !== active.signer.key) {
      const next: LoadedConfig = { ...active.loaded, signingKey: view.signing.key };
      const built = build(next);
      active = { loaded: next, issuer: built.issuer, signer: built.signer };
      announceKey(view.signing.key);
    }
    if (view.nextActivationMs === undefined) return;
    // setTimeout takes at most 2^31-1 ms (24.8 days): a later time is re-checked then.
    activationTimer = setTimeout(followKeyring, Math.min(Math.max(view.nextActivationMs - now, 0), 2 ** 31 - 1));
    activationTimer.unref();
  };
  followKeyring();
  const stopCountingCache = metrics?.countCacheLookups([...authenticators.map((a) => a.name), 'ext_authz', 'webhook_authz']);
  if (config.server.real_ip_header && !config.server.trusted_proxies) {
    logger.warn(
      { real_ip_header: config.server.real_ip_header },
      'server.real_ip_header is read from every connection: any client can choose its address (and dodge lockouts or ACL ip rules); list your proxies in server.trusted_proxies',
    );
  }

  const app = Fastify({
    loggerInstance: logger,
    // The audit event is the request log; it knows what is secret.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    ...(loaded.tls ? { https: { cert: loaded.tls.cert, key: loaded.tls.key } } : {}),
  }) as unknown as FastifyInstance;

  if (metrics) countRequests(app, metrics, config.server.path_prefix);
  if (stopCountingCache) app.addHook('onClose', async () => void stopCountingCache());
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
    realIp: { header: config.server.real_ip_header, position: config.server.real_ip_pos, trustedProxies: config.server.trusted_proxies?.map(parseIpRule) },
    allowPost: config.token.allow_post,
    issuer: () => active.issuer,
    audit,
    storeQueryTimeoutMs: config.store ? config.store.query_timeout * 1000 : undefined,
  });
  if (lockout) app.addHook('onClose', () => lockout.close());
  const readiness = new Readiness({ signingKey: () => active.signer.key, store, authenticators, logger, ...(options.now ? { now: options.now } : {}) });
  metrics?.watchReadiness(async () => (await readiness.check()).checks);
  await app.register(healthRoutes, { pathPrefix: config.server.path_prefix, readiness });
  if (metrics) await app.register(metricsRoutes, { pathPrefix: config.server.path_prefix, metrics, section: config.metrics, prepared: loaded.metrics ?? {} });
  // The admin API (its routes and their zod schemas: about 5 MB and 0.15 s of start-up) only
  // exists with a store, so it is loaded only then (performance.md, memory and first token).
  if (store) {
    const { adminApiRoutes } = await import('./admin-api.js');
    await app.register(adminApiRoutes, { loaded, store, directory });
  }
  // The config refuses an sso section without a store: the accounts and their tokens live there.
  // Loaded only when configured: the login page and its OIDC client are a tenth of a second of
  // start-up that a server without sso would spend for nothing (performance.md, first token).
  if (store && loaded.sso) {
    const { loginPageRoutes } = await import('./login-page.js');
    await app.register(loginPageRoutes, { loaded, store, directory, ...(options.now ? { now: options.now } : {}) });
  }

  // The listening server: Fastify's own, until a reload moves server.addr or switches between
  // HTTP and HTTPS; then a new one with the same handlers, and the old one finishes its requests.
  let listener: HttpServer = app.server;
  let listening: ListenAddress | undefined;
  const retiring: Promise<void>[] = [];
  const urlOf = (at: ListenAddress, https: boolean) => {
    const shownHost = at.host === '::' || at.host === '0.0.0.0' ? '127.0.0.1' : at.host.includes(':') ? `[${at.host}]` : at.host;
    return `${https ? 'https' : 'http'}://${shownHost}:${at.port}`;
  };
  const boundTo = (server: HttpServer, host: string, fallbackPort: number): ListenAddress => {
    const bound = server.address();
    return { host, port: typeof bound === 'object' && bound ? bound.port : fallbackPort };
  };

  /** Moves the listener when the reload asks for it; false (and a logged reason) when it cannot. */
  const followListener = async (from: LoadedConfig, to: LoadedConfig): Promise<boolean> => {
    const addrChanged = from.config.server.addr !== to.config.server.addr;
    if (!listening || (!addrChanged && Boolean(from.tls) === Boolean(to.tls))) return false;
    const target = addrChanged ? parseListenAddress(to.config.server.addr) : listening;
    try {
      const fresh = await moveListener(listener, listening, target, to.tls);
      retiring.push(retireListener(listener));
      listener = fresh;
      listening = boundTo(fresh, target.host, target.port);
      logger.info({ url: urlOf(listening, Boolean(to.tls)) }, 'listening on the new address; the old one takes no new connections and finishes its requests');
      return true;
    } catch (err) {
      throw new Error(`cannot listen on ${to.config.server.addr}${to.tls ? ' (HTTPS)' : ''}: ${(err as Error).message}`, { cause: err });
    }
  };

  return {
    app,
    get config() {
      return active.loaded;
    },
    store,
    get issuer() {
      return active.issuer;
    },
    get signer() {
      return active.signer;
    },
    async reload(next) {
      const planned = planReload(active.loaded, next);
      const { result } = planned;
      let { effective } = planned;
      let listenerMoved = false;
      try {
        listenerMoved = await followListener(active.loaded, effective);
      } catch (err) {
        // The rest of the file applies; the listener stays where it is, and so does its setting.
        const { addr, certificate, key } = active.loaded.config.server;
        const server = { ...effective.config.server, addr, certificate, key };
        if (certificate === undefined) delete server.certificate;
        if (key === undefined) delete server.key;
        const { tls: _tls, ...rest } = effective;
        effective = { ...rest, config: Object.freeze({ ...effective.config, server }), ...(active.loaded.tls ? { tls: active.loaded.tls } : {}) };
        logger.error({ listening: listening && urlOf(listening, Boolean(active.loaded.tls)) }, `config reload: ${(err as Error).message}; the server goes on listening where it did`);
      }
      const built = build(effective);
      let tlsReloaded = listenerMoved && Boolean(effective.tls);
      const { tls } = effective;
      if (!listenerMoved && tls && (tls.cert !== active.loaded.tls?.cert || tls.key !== active.loaded.tls.key)) {
        // Open connections keep their session; new handshakes get the new certificate.
        (listener as unknown as TlsServer).setSecureContext({ cert: tls.cert, key: tls.key });
        tlsReloaded = true;
      }
      const keyChanged = built.signer.key.thumbprint !== active.signer.key.thumbprint;
      active = { loaded: effective, issuer: built.issuer, signer: built.signer };
      // The same key may come with a renewed certificate: the expiry gauge follows either way.
      if (keyChanged) announceKey(built.signer.key);
      else {
        metrics?.setCertificate(built.signer.key);
        watchExpiry();
      }
      followKeyring();
      if (result.restartRequired.length > 0) {
        logger.warn({ settings: result.restartRequired }, `config reload: ${result.restartRequired.join(', ')} changed; restart to apply (the old values stay in force)`);
      }
      logger.info({ changed: result.changed, tlsReloaded, listenerMoved }, 'config reloaded');
      return { ...result, tlsReloaded, listenerMoved };
    },
    metrics,
    reopenAuditFile: () => auditOutput?.reopen(),
    async listen(address) {
      const configured = parseListenAddress(config.server.addr);
      const host = address?.host ?? configured.host;
      const port = address?.port ?? configured.port;
      await app.listen({ host, port });
      listening = boundTo(app.server, host, port);
      return urlOf(listening, Boolean(loaded.tls));
    },
    async close() {
      // Requests in flight finish; keep-alive connections that turn idle meanwhile are closed as
      // soon as they do, or close() would wait for the client to hang up.
      clearTimeout(activationTimer);
      clearTimeout(expiryTimer);
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        if (listener !== app.server) retiring.push(retireListener(listener));
        await Promise.all([app.close(), ...retiring]);
      } finally {
        clearInterval(sweep);
        if (ownsStore) await store?.close();
        await auditOutput?.close();
      }
    },
  };
}
