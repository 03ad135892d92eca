import { randomBytes, timingSafeEqual } from 'node:crypto';
import fastifyCookie, { type CookieSerializeOptions } from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as client from 'openid-client';
import { AdminService } from '../admin/service.js';
import type { Directory } from '../authn/directory.js';
import { BackendUnavailableError } from '../authn/errors.js';
import type { LoadedConfig } from '../config/load.js';
import { SsoAccounts } from '../sso/accounts.js';
import { accountNameOf, checkRestrictions, labelsOf, managedLabelKeys, userClaimOf } from '../sso/claims.js';
import {
  decodePendingLogin,
  decodeSession,
  encodeCookieValue,
  SESSION_COOKIE,
  SESSION_LIFETIME_SECONDS,
  STATE_COOKIE,
  STATE_LIFETIME_SECONDS,
  type Session,
} from '../sso/cookies.js';
import { providerFailure, SsoError, type SsoStatus } from '../sso/errors.js';
import { CONTENT_SECURITY_POLICY, errorPage, loginPage, resultPage } from '../sso/pages.js';
import { ensureSessionSecret } from '../sso/prepare.js';
import type { PendingLogin, SsoProvider } from '../sso/provider.js';
import { createProviders } from '../sso/providers.js';
import { StoreUnavailableError, type Store } from '../store/types.js';

export interface LoginPageOptions {
  loaded: LoadedConfig;
  store: Store;
  /** Whether an account may sign in now: the owner of a new access token must. */
  directory: Directory;
  /** The clock (epoch ms); Date.now by default. */
  now?: () => number;
}

const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;
// Provider error codes are ASCII words (RFC 6749 §4.1.2.1); anything else is not echoed.
const OAUTH_ERROR = /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/;

type Query = Record<string, string | string[] | undefined>;

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Fastify's own 4xx errors: a body it cannot parse, a wrong content type, one too large. */
const isClientError = (err: unknown): boolean => {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' && status >= 400 && status < 500;
};

const single = (value: string | string[] | undefined): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * Remembers the states whose callback has run, until they expire, so a callback URL replayed
 * (reloaded, or copied from a history) is refused before the code reaches the provider. Per
 * process; across replicas the provider's single-use codes refuse it all the same.
 */
class UsedStates {
  private readonly used = new Map<string, number>();
  constructor(private readonly limit = 10_000) {}

  /** False when the state was used already. */
  use(state: string, expiresAt: number, now: number): boolean {
    if (this.used.has(state)) return false;
    if (this.used.size >= this.limit) {
      for (const [key, expiry] of this.used) if (expiry <= now) this.used.delete(key);
      // Still full of live entries: forget the oldest; its cookie has at most minutes left.
      if (this.used.size >= this.limit) this.used.delete(this.used.keys().next().value as string);
    }
    this.used.set(state, expiresAt);
    return true;
  }
}

/**
 * Single sign-on in the browser: `GET <prefix>/login` lists the providers, `GET .../login/<id>`
 * starts the authorization code flow (PKCE, state, nonce), `GET .../login/<id>/callback` finishes
 * it, creates or updates the person's store account and shows a new access token once, and
 * `POST <prefix>/logout` ends the page session. Codes, tokens and cookies are never logged.
 */
export async function loginPageRoutes(app: FastifyInstance, options: LoginPageOptions): Promise<void> {
  const { loaded, store } = options;
  const sso = loaded.sso;
  if (!sso) throw new Error('loginPageRoutes needs a config with an sso section');
  const now = options.now ?? Date.now;
  const prefix = loaded.config.server.path_prefix;
  const settings = sso.settings;
  const providers = createProviders(sso);
  const accounts = new SsoAccounts(new AdminService(store, loaded, options.directory, now), (name) => store.users.get(name), now);
  const usedStates = new UsedStates();

  await app.register(fastifyCookie, { secret: await ensureSessionSecret(sso), hook: 'onRequest' });
  await app.register(fastifyFormbody, { bodyLimit: 4096 });

  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('cache-control', 'no-store');
    return payload;
  });

  /** A path relative to the page asked for, so links survive any prefix a proxy puts in front. */
  const relative = (request: FastifyRequest, target: string): string => {
    const path = (request.url.split('?')[0] ?? '').slice(prefix.length);
    return `${'../'.repeat(Math.max(0, path.split('/').length - 2))}${target}`;
  };

  const html = (reply: FastifyReply, status: number, body: string) => reply.code(status).type('text/html; charset=utf-8').send(body);

  app.setErrorHandler((err, request, reply) => {
    let status: SsoStatus | 500;
    let message: string;
    if (err instanceof SsoError) {
      status = err.status;
      message = err.message;
      const level = status >= 500 ? 'error' : 'warn';
      request.log[level]({ status, reason: err.detail ?? err.message }, 'sso sign-in failed');
    } else if (err instanceof StoreUnavailableError || err instanceof BackendUnavailableError) {
      status = 503;
      message = 'Sign-in is unavailable right now; try again shortly.';
      request.log.error({ reason: err.message }, 'sso sign-in failed');
    } else if (isClientError(err)) {
      status = 400;
      message = 'The request could not be read.';
    } else {
      status = 500;
      message = 'Something went wrong on this server; try again, or tell the administrator.';
      request.log.error({ err }, 'sso page failed');
    }
    if (status === 503) reply.header('retry-after', '5');
    return html(reply, status, errorPage(status, message, relative(request, 'login')));
  });

  const providerOf = (id: string): SsoProvider => {
    const provider = providers.get(id);
    if (!provider) throw new SsoError(404, `There is no sign-in provider named ${id.slice(0, 64)} here.`);
    return provider;
  };

  /** The path the browser sees in front of /login: the redirect URL's, which a proxy may have changed. */
  const externalPrefix = (provider: SsoProvider) => {
    const path = new URL(provider.config.redirect_url).pathname;
    return path.slice(0, path.length - `/login/${provider.id}/callback`.length);
  };
  const cookieOptions = (provider: SsoProvider, path: string, maxAge: number): CookieSerializeOptions => ({
    path,
    maxAge,
    httpOnly: true,
    sameSite: 'lax',
    secure: new URL(provider.config.redirect_url).protocol === 'https:',
    signed: true,
  });
  const sessionPath = (provider: SsoProvider | undefined) => `${provider ? externalPrefix(provider) : prefix}/`;

  const readSession = (request: FastifyRequest): Session | undefined => {
    const raw = request.cookies[SESSION_COOKIE];
    if (raw === undefined) return undefined;
    const unsigned = request.unsignCookie(raw);
    const session = unsigned.valid && unsigned.value !== null ? decodeSession(unsigned.value) : undefined;
    return session && session.expiresAt > now() && providers.has(session.provider) ? session : undefined;
  };

  const registryOf = (request: FastifyRequest) => settings.registry_host ?? (HOST.test(request.host) ? request.host : 'REGISTRY');

  app.get(`${prefix}/login`, async (request, reply) => {
    const session = readSession(request);
    const body = loginPage({
      providers: [...providers.values()].map((p) => ({ displayName: p.displayName, href: relative(request, `login/${p.id}`) })),
      registry: registryOf(request),
      ...(session
        ? {
            session: {
              account: session.account,
              providerName: providerOf(session.provider).displayName,
              csrf: session.csrf,
              logoutAction: relative(request, 'logout'),
            },
          }
        : {}),
    });
    return html(reply, 200, body);
  });

  app.get<{ Params: { id: string } }>(`${prefix}/login/:id`, async (request, reply) => {
    const provider = providerOf(request.params.id);
    const pending: PendingLogin = {
      provider: provider.id,
      state: client.randomState(),
      nonce: client.randomNonce(),
      codeVerifier: client.randomPKCECodeVerifier(),
      expiresAt: now() + STATE_LIFETIME_SECONDS * 1000,
    };
    let url: URL;
    try {
      url = await provider.authorizationUrl(pending);
    } catch (err) {
      throw providerFailure(err, provider.displayName);
    }
    reply.setCookie(STATE_COOKIE, encodeCookieValue(pending), cookieOptions(provider, `${externalPrefix(provider)}/login`, STATE_LIFETIME_SECONDS));
    return reply.code(302).header('location', url.href).send();
  });

  app.get<{ Params: { id: string }; Querystring: Query }>(`${prefix}/login/:id/callback`, async (request, reply) => {
    const provider = providerOf(request.params.id);
    const statePath = `${externalPrefix(provider)}/login`;
    const raw = request.cookies[STATE_COOKIE];
    // Whatever happens next, this sign-in is over: the cookie goes.
    reply.clearCookie(STATE_COOKIE, { path: statePath });
    const restart = 'Start again from the sign-in page.';
    if (raw === undefined) throw new SsoError(400, `This sign-in has expired or was started in another browser. ${restart}`, 'no state cookie');
    const unsigned = request.unsignCookie(raw);
    const pending = unsigned.valid && unsigned.value !== null ? decodePendingLogin(unsigned.value) : undefined;
    if (!pending) throw new SsoError(400, `This sign-in is not valid. ${restart}`, 'state cookie: bad signature or content');
    if (pending.provider !== provider.id) throw new SsoError(400, `This sign-in was started with another provider. ${restart}`, `state cookie for provider ${pending.provider}`);
    if (pending.expiresAt <= now()) throw new SsoError(400, `This sign-in has expired. ${restart}`, 'state cookie expired');
    const state = single(request.query.state);
    if (state === undefined || !safeEqual(state, pending.state)) {
      throw new SsoError(400, `This sign-in does not match the one this browser started. ${restart}`, 'state mismatch');
    }
    const error = single(request.query.error);
    if (error !== undefined) {
      const shown = OAUTH_ERROR.test(error) ? error : 'error';
      throw new SsoError(error === 'access_denied' ? 403 : 400, `${provider.displayName} did not sign you in (${shown}).`, `authorization response error ${shown}`);
    }
    if (!usedStates.use(pending.state, pending.expiresAt, now())) {
      throw new SsoError(400, `This sign-in link has been used already. ${restart}`, 'replayed callback');
    }

    const callbackUrl = new URL(provider.config.redirect_url);
    callbackUrl.search = new URL(request.url, 'http://callback.invalid').search;
    let user;
    try {
      user = await provider.complete(callbackUrl, pending);
    } catch (err) {
      throw providerFailure(err, provider.displayName);
    }

    const account = accountNameOf(provider.config, user.claims);
    if (account === undefined) {
      throw new SsoError(403, `${provider.displayName} did not say who you are: your account has no ${userClaimOf(provider.config)}.`, 'no user claim');
    }
    const refusal = checkRestrictions(provider.config, user.claims);
    if (refusal) throw new SsoError(403, refusal.message, `${account}: ${refusal.detail}`);

    const created = await accounts.signIn({
      provider: provider.id,
      providerName: provider.displayName,
      account,
      subject: user.subject,
      labels: labelsOf(provider.config, user.subject, user.claims),
      managedKeys: managedLabelKeys(provider.config),
      scopes: settings.token_scopes,
      lifetime: settings.token_lifetime,
    });
    request.log.info({ sso: provider.id, account, token_id: created.record.id }, 'sso sign-in');

    const session: Session = {
      account,
      provider: provider.id,
      csrf: randomBytes(24).toString('base64url'),
      expiresAt: now() + SESSION_LIFETIME_SECONDS * 1000,
    };
    reply.setCookie(SESSION_COOKIE, encodeCookieValue(session), cookieOptions(provider, sessionPath(provider), SESSION_LIFETIME_SECONDS));
    return html(
      reply,
      200,
      resultPage({
        account,
        providerName: provider.displayName,
        token: created.secret,
        tokenName: created.record.name,
        expiresAt: created.record.expiresAt,
        registry: registryOf(request),
        logoutAction: relative(request, 'logout'),
        csrf: session.csrf,
      }),
    );
  });

  app.post<{ Body: Record<string, unknown> | undefined }>(`${prefix}/logout`, async (request, reply) => {
    const session = readSession(request);
    if (session) {
      const csrf = request.body?.csrf;
      // SameSite=Lax keeps the cookie off cross-site POSTs already; the form's token is the second lock.
      if (typeof csrf !== 'string' || !safeEqual(csrf, session.csrf)) {
        throw new SsoError(400, 'This sign-out form is out of date; reload the page and sign out again.', 'logout: csrf mismatch');
      }
      request.log.info({ sso: session.provider, account: session.account }, 'sso sign-out');
    }
    reply.clearCookie(SESSION_COOKIE, { path: sessionPath(session ? providers.get(session.provider) : undefined) });
    return reply.code(303).header('location', relative(request, 'login')).send();
  });
}
