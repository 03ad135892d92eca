import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AdminService } from '../admin/service.js';
import type { Directory } from '../authn/directory.js';
import type { LoadedConfig } from '../config/load.js';
import { errorBody } from '../protocol/response.js';
import type { Store } from '../store/types.js';
import { ADMIN_REALM, adminAuthenticator } from './admin-api/auth.js';
import { toApiError } from './admin-api/errors.js';
import { componentSchemas, type Caller } from './admin-api/route.js';
import { adminRoutes } from './admin-api/routes.js';

export { ADMIN_REALM } from './admin-api/auth.js';
export type { ApiErrorCode } from './admin-api/errors.js';

export interface AdminApiOptions {
  loaded: LoadedConfig;
  store: Store;
  /** Whether an account exists and may sign in now: the owner of an admin token must. */
  directory: Directory;
  /** The clock, for token expiry; Date.now by default. */
  now?: () => number;
}

/** The path every admin API route lives under. */
export function adminApiBase(loaded: LoadedConfig): string {
  return `${loaded.config.server.path_prefix}/api/v1`;
}

/**
 * The admin HTTP API under `<path_prefix>/api/v1/`: users, groups, ACL rules, access and refresh
 * tokens and the change log, in JSON, for callers holding an access token with the `admin` scope.
 * The same operations, validation included, as the CLI (AdminService). Every route has a schema,
 * from which `npm run openapi` writes docs/openapi.json.
 */
export async function adminApiRoutes(app: FastifyInstance, options: AdminApiOptions): Promise<void> {
  const { loaded, store, directory } = options;
  const { config } = loaded;
  const service = new AdminService(store, loaded, directory, options.now);
  const authenticate = adminAuthenticator({
    store,
    directory,
    realIp: { header: config.server.real_ip_header, position: config.server.real_ip_pos },
    ...(options.now ? { now: options.now } : {}),
  });
  const callers = new WeakMap<FastifyRequest, Caller>();
  for (const schema of componentSchemas()) app.addSchema(schema);

  // JSON only (anything else is 415), and an empty body is no body: clients that label every
  // request application/json, DELETE and PUT without a body included, are not refused for it.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === '') done(null, undefined);
    else parseJson(request, text, done);
  });

  app.setErrorHandler((err, request, reply) => {
    const { error, internal } = toApiError(err);
    if (internal) request.log.error({ err }, 'admin API request failed');
    if (error.status === 401 || error.status === 403) {
      const attribute = error.bearerError ? `, error="${error.bearerError}"${error.bearerError === 'insufficient_scope' ? ', scope="admin"' : ''}` : '';
      reply.header('www-authenticate', `Bearer realm="${ADMIN_REALM}"${attribute}`);
    }
    if (error.status === 503) reply.header('retry-after', '5');
    return reply.code(error.status).send(errorBody(error.code, error.message));
  });

  // Authentication before the body is even parsed: an unauthenticated caller learns nothing.
  app.addHook('onRequest', async (request, reply) => {
    reply.header('cache-control', 'no-store');
    callers.set(request, await authenticate(request));
  });

  const base = adminApiBase(loaded);
  for (const route of adminRoutes(service, store, config.access_tokens.max_lifetime)) {
    app.route({
      method: route.method,
      url: `${base}${route.path}`,
      schema: route.schema,
      validatorCompiler: route.validatorCompiler,
      handler: async (request, reply) => {
        const caller = callers.get(request);
        if (!caller) throw new Error('admin API: a request reached its handler unauthenticated');
        const body = await route.run(request, caller);
        reply.code(route.status);
        return route.status === 204 ? reply.send() : body;
      },
    });
  }
}
