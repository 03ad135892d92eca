import { configSchema, serverSchema } from './schema.js';

/**
 * docker_auth's configuration sections and server keys that sts-docker-auth may not implement,
 * each with what to use here instead. Whether one is supported is read from our own schema, so a
 * backend added later (a top-level key in configSchema, a key in serverSchema) stops being
 * reported without an edit here. Used by the loader's messages and by the migration check.
 */

const MIGRATION_GUIDE = 'docs/migrating-from-docker_auth.md';

const topLevel = (key: string): boolean => Object.hasOwn(configSchema.shape, key);
const serverKey = (key: string): boolean => Object.hasOwn(serverSchema.shape, key);

/** The first of our sections that exists, named as a reader would look for it. */
function firstOf(...choices: [key: string | null, text: string][]): string {
  for (const [key, text] of choices) if (key === null || topLevel(key)) return text;
  return choices.at(-1)?.[1] ?? '';
}

const browserSignIn = () =>
  firstOf(
    ['sso', 'the sso section (browser sign-in that hands out access tokens)'],
    [null, 'store users with access tokens (sts-docker-auth users add, tokens create)'],
  );
const programAuthn = () =>
  firstOf(
    ['ext_auth', 'ext_auth (an external program)'],
    ['webhook_auth', 'webhook_auth (an HTTP service)'],
    [null, 'an authenticator added in code (docs/library.md)'],
  );
const programAuthz = () =>
  firstOf(
    ['ext_authz', 'ext_authz (an external program)'],
    ['webhook_authz', 'webhook_authz (an HTTP service)'],
    [null, 'an authorizer added in code (docs/library.md)'],
  );
const storeUsers = () => 'store users (the store section, SQLite or PostgreSQL; sts-docker-auth users add)';
const storeRules = () => 'store ACL rules (the store section; sts-docker-auth acl add)';

/** Keyed by the path as a dotted string; the value says what to use instead. */
const SECTIONS: Readonly<Record<string, { supported: () => boolean; alternative: () => string }>> = {
  google_auth: { supported: () => topLevel('google_auth'), alternative: browserSignIn },
  github_auth: { supported: () => topLevel('github_auth'), alternative: browserSignIn },
  gitlab_auth: { supported: () => topLevel('gitlab_auth'), alternative: browserSignIn },
  oidc_auth: { supported: () => topLevel('oidc_auth'), alternative: browserSignIn },
  ldap_auth: { supported: () => topLevel('ldap_auth'), alternative: () => `${storeUsers()}, or ${programAuthn()}` },
  mongo_auth: { supported: () => topLevel('mongo_auth'), alternative: storeUsers },
  xorm_auth: { supported: () => topLevel('xorm_auth'), alternative: storeUsers },
  ext_auth: { supported: () => topLevel('ext_auth'), alternative: () => `${storeUsers()}, or an authenticator added in code (docs/library.md)` },
  plugin_authn: { supported: () => topLevel('plugin_authn'), alternative: programAuthn },
  acl_mongo: { supported: () => topLevel('acl_mongo'), alternative: storeRules },
  acl_xorm: { supported: () => topLevel('acl_xorm'), alternative: storeRules },
  ext_authz: { supported: () => topLevel('ext_authz'), alternative: () => `${storeRules()}, or an authorizer added in code (docs/library.md)` },
  plugin_authz: { supported: () => topLevel('plugin_authz'), alternative: () => `the acl section or store ACL rules, or ${programAuthz()}` },
  casbin_authz: { supported: () => topLevel('casbin_authz'), alternative: () => `the acl section or store ACL rules, or ${programAuthz()}` },
  'server.net': {
    supported: () => serverKey('net'),
    alternative: () => 'server.addr as host:port (TCP is the only listener; put a proxy in front for a Unix socket)',
  },
  'server.letsencrypt': {
    supported: () => serverKey('letsencrypt'),
    alternative: () => 'server.certificate and server.key from your ACME client, or a TLS-terminating proxy',
  },
  'server.tls_min_version': {
    supported: () => serverKey('tls_min_version'),
    alternative: () => "a TLS-terminating proxy (the server's own HTTPS uses Node's defaults: TLS 1.2 or newer)",
  },
  'server.tls_curve_preferences': {
    supported: () => serverKey('tls_curve_preferences'),
    alternative: () => "a TLS-terminating proxy (the server's own HTTPS uses Node's default curves)",
  },
  'server.tls_cipher_suites': {
    supported: () => serverKey('tls_cipher_suites'),
    alternative: () => "a TLS-terminating proxy (the server's own HTTPS uses Node's default cipher suites)",
  },
};

/** Every docker_auth section and server key in the table, supported here or not. */
export const DOCKER_AUTH_SECTIONS: readonly string[] = Object.keys(SECTIONS);

/** Whether a docker_auth section or server key (`mongo_auth`, `server.net`) is implemented here. */
export function isSupportedHere(path: string): boolean {
  return SECTIONS[path]?.supported() ?? false;
}

/**
 * The message for a docker_auth section (or server key) that we do not support, such as
 * `mongo_auth` or `server.net`; undefined for any other key, supported ones included.
 */
export function unsupportedSectionMessage(path: string): string | undefined {
  const entry = SECTIONS[path];
  if (!entry || entry.supported()) return undefined;
  return `docker_auth's ${path} is not supported: use ${entry.alternative()} (see ${MIGRATION_GUIDE})`;
}
