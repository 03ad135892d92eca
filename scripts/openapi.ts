/**
 * Writes docs/openapi.json, the OpenAPI 3 description of the admin API, from the routes' own
 * schemas: `npm run openapi`. The admin API's routes are built exactly as the server builds them,
 * on a throwaway in-memory SQLite store, with @fastify/swagger collecting them.
 * test/integration/admin-api.test.ts fails when the committed document is out of step.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import swagger from '@fastify/swagger';
import Fastify from 'fastify';
import { parseConfig } from '../src/config/load.js';
import { adminApiRoutes } from '../src/server/admin-api.js';
import { buildIssuer, prepareStore } from '../src/server/app.js';
import { generateSigningKey } from '../src/token/generate.js';

export const OPENAPI_PATH = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));

const DESCRIPTION = [
  'Manage the users, groups, ACL rules and tokens kept in the store of sts-docker-auth.',
  'Paths are relative to the server (after `server.path_prefix`, if one is set).',
  'Every call needs `Authorization: Bearer <access token>` with an access token that carries the `admin` scope:',
  '`sts-docker-auth tokens create --user admin --name api --scope admin --expires 30d`.',
  'See docs/admin-api.md.',
].join(' ');

const TAGS = [
  { name: 'users', description: 'Users of the store (config-file users are managed in the file)' },
  { name: 'groups', description: 'Groups and their members; members carry the group’s labels' },
  { name: 'acl', description: 'ACL rules kept in the store, applied after the config file’s rules' },
  { name: 'tokens', description: 'Access tokens: long-lived secrets for CI and robots, limited by scopes' },
  { name: 'refresh-tokens', description: 'Refresh tokens handed to docker login and other OAuth2 clients' },
  { name: 'changes', description: 'The audit trail of every change made through the CLI or this API' },
];

/** The OpenAPI document of the admin API, as plain JSON. */
export async function generateOpenApi(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'sts-openapi-'));
  try {
    const { keyPem, certPem } = await generateSigningKey({ kind: 'ec-p256' });
    await writeFile(join(dir, 'token.key'), keyPem);
    await writeFile(join(dir, 'token.crt'), certPem);
    const loaded = await parseConfig(
      {
        token: { issuer: 'openapi', certificate: 'token.crt', key: 'token.key' },
        store: { driver: 'sqlite', path: ':memory:' },
      },
      { baseDir: dir, source: 'openapi.yml', env: {} },
    );
    const store = await prepareStore(loaded);
    if (!store) throw new Error('openapi: no store was opened');
    try {
      const { directory } = buildIssuer(loaded, { store });
      const app = Fastify({ logger: false, exposeHeadRoutes: false });
      await app.register(swagger, {
        openapi: {
          openapi: '3.0.3',
          info: { title: 'sts-docker-auth admin API', version: '1', description: DESCRIPTION, license: { name: 'Apache-2.0' } },
          tags: TAGS,
          components: {
            securitySchemes: {
              adminToken: {
                type: 'http',
                scheme: 'bearer',
                description: 'An access token (stsat_…) with the admin scope, not revoked or expired, whose owner may sign in',
              },
            },
          },
          security: [{ adminToken: [] }],
        },
        // Shared schemas under their own names ("AdminApiError"), not def-0, def-1, ...
        refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
      });
      await app.register(adminApiRoutes, { loaded, store, directory });
      await app.ready();
      const document = app.swagger();
      await app.close();
      return JSON.parse(JSON.stringify(document)) as Record<string, unknown>;
    } finally {
      await store.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatOpenApi(document: Record<string, unknown>): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await writeFile(OPENAPI_PATH, formatOpenApi(await generateOpenApi()));
  console.log(`wrote ${OPENAPI_PATH}`);
}
