import { z } from 'zod';
import { ssoSchema } from '../sso/config.js';
import { durationSchema } from './duration.js';
import { trustedIssuersSchema } from '../authn/workload.js';
import { extAuthSchema } from '../authn/ext.js';
import { webhookAuthSchema } from '../authn/webhook.js';
import { extAuthzSchema } from '../authz/ext.js';
import { webhookAuthzSchema } from '../authz/webhook.js';
import { ldapAuthSchema } from '../authn/ldap.js';
import { metricsSchema } from '../server/metrics-route.js';
import { auditSchema } from '../observability/audit-destination.js';
import { lockoutSchema } from '../security/lockout.js';
import { IpPatternError, parseIpRule } from '../authz/acl/ip.js';
import { credentialCacheSchema } from '../authn/password-cache.js';

/**
 * The configuration file, in docker_auth's format for the sections it shares with us (server,
 * token, users, acl), so that an existing docker_auth file runs unmodified. Keys of our own extend
 * these sections. Every object is strict: an unknown key is an error, never silently ignored
 * (docker_auth ignores them, which turns a typo in an ACL match into a match-everything rule).
 */

const nonEmpty = z.string().min(1, 'must not be empty');

const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;

export const serverSchema = z.strictObject({
  addr: nonEmpty
    .regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/, 'must be host:port, :port or [v6]:port')
    .refine((addr) => Number(addr.slice(addr.lastIndexOf(':') + 1)) <= 65535, 'the port must be at most 65535')
    .default(':5001')
    .describe('listen address, host:port; an empty host listens on every interface'),
  certificate: nonEmpty.optional().describe('TLS certificate (PEM); HTTPS when set together with key'),
  key: nonEmpty.optional().describe('TLS private key (PEM)'),
  path_prefix: z
    .string()
    .regex(/^(\/[A-Za-z0-9._~\-/]*)?$/, 'must start with "/" and hold only URL path characters')
    .transform((p) => p.replace(/\/+$/, ''))
    .default('')
    .describe('a prefix for every route: <prefix>/auth, <prefix>/auth/token, <prefix>/healthz'),
  real_ip_header: nonEmpty.optional().describe('header holding the client address when behind a proxy'),
  real_ip_pos: z.int().default(0).describe('which entry of real_ip_header: 0 the first, -1 the last'),
  trusted_proxies: z
    .array(
      z.string().superRefine((value, ctx) => {
        try {
          parseIpRule(value);
        } catch (err) {
          if (!(err instanceof IpPatternError)) throw err;
          ctx.addIssue({ code: 'custom', message: err.message });
        }
      }),
    )
    .optional()
    .describe('addresses or CIDRs of the proxies whose real_ip_header is believed; from any other peer the socket address is used'),
  hsts: z.boolean().default(false).describe('send Strict-Transport-Security on every response'),
  workers: z
    .union([z.int('must be a whole number or auto').min(1, 'must be at least 1').max(256, 'must be at most 256'), z.literal('auto')])
    .default(1)
    .describe('processes serving requests (node:cluster): 1 runs in one process, auto one per CPU'),
  public_url: z
    .url({ protocol: /^https?$/, message: 'must be an absolute http(s) URL' })
    .optional()
    .describe('the URL clients reach this server at; used for the realm in registry-config'),
});

export const tokenSchema = z.strictObject({
  issuer: nonEmpty.describe("the iss claim; must equal the registry's auth.token.issuer"),
  expiration: z
    .int('must be a whole number of seconds')
    .min(60, 'must be at least 60 seconds: clients treat shorter tokens as 60 s anyway')
    .max(86_400, 'must be at most 86400 seconds: tokens cannot be revoked before they expire')
    .default(300)
    .describe('token lifetime in seconds: exp and expires_in'),
  certificate: nonEmpty.optional().describe("signing certificate (PEM), the registry's rootcertbundle; default server.certificate"),
  key: nonEmpty.optional().describe('signing private key (PEM): RSA 2048+ or EC P-256/384/521; default server.key'),
  disable_legacy_key_id: z.boolean().optional().describe('docker_auth compatibility: same as jwt_header: thumbprint'),
  jwt_header: z.enum(['x5c', 'libtrust', 'thumbprint']).optional().describe('how the registry finds the signing key; default x5c'),
  services: z.array(nonEmpty).optional().describe('the registry services (aud) tokens are issued for; others get 400'),
  allow_post: z.boolean().default(true).describe('answer POST (OAuth2) token requests; false answers them 404'),
  keyring: z
    .strictObject({
      dir: nonEmpty.describe('folder of the keys made by `keys rotate`, with keyring.json, bundle.pem and jwks.json'),
      activation_delay: durationSchema
        .optional()
        .describe('a rotated key starts signing this long after `keys rotate`; without it, at `keys activate`'),
    })
    .optional()
    .describe('several signing keys, for rotation without downtime (docs/operations.md)'),
});

const labelsSchema = z.record(nonEmpty, z.array(z.string()));

export const storeSchema = z
  .strictObject({
    driver: z.enum(['sqlite', 'postgres']).default('sqlite').describe('sqlite for one machine, postgres for replicas'),
    path: nonEmpty.optional().describe('SQLite file, relative to the config file (default store.db)'),
    url: nonEmpty.optional().describe('PostgreSQL connection string'),
    url_file: nonEmpty.optional().describe('a file holding the PostgreSQL connection string'),
    pool_size: z.int().min(1).max(100).default(10).describe('connections per process (PostgreSQL)'),
    query_timeout: durationSchema
      .default(5)
      .describe('how long a store call made for a token request may take before it is answered 503 (migrations and admin commands are not bound by it)'),
  })
  .superRefine((store, ctx) => {
    if (store.driver === 'postgres' && !store.url && !store.url_file) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'is required for driver postgres (or url_file)' });
    }
    if (store.url && store.url_file) ctx.addIssue({ code: 'custom', path: ['url_file'], message: 'set url or url_file, not both' });
    if (store.driver === 'sqlite' && (store.url || store.url_file)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'belongs to driver postgres; sqlite takes path' });
    }
    if (store.driver === 'postgres' && store.path) {
      ctx.addIssue({ code: 'custom', path: ['path'], message: 'belongs to driver sqlite; postgres takes url' });
    }
  });

export const refreshTokensSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('issue and accept refresh tokens'),
  idle_timeout: durationSchema.default(30 * 86_400).describe('a refresh token unused this long stops working'),
  max_age: durationSchema.default(365 * 86_400).describe('a refresh token stops working this long after its creation'),
});

export const accessTokensSchema = z.strictObject({
  max_lifetime: durationSchema.optional().describe('the longest expiry a new access token may have; unset: no limit'),
});

export const userSchema = z.strictObject({
  password: z
    .string()
    .regex(BCRYPT_HASH, 'must be a bcrypt hash ($2a$/$2b$/$2y$); make one with `sts-docker-auth hash-password`')
    .optional()
    .describe('a bcrypt hash; required for every user but ""'),
  labels: labelsSchema.optional().describe('label name to values, for ACL labels conditions and ${labels:name}'),
});

export const aclMatchSchema = z.strictObject({
  account: z.string().optional().describe('pattern (glob or /regex/) for the account; "" is anonymous'),
  type: z.string().optional().describe('pattern for the resource type: repository, registry'),
  name: z.string().optional().describe('pattern for the resource name: team/app, catalog'),
  service: z.string().optional().describe('pattern for the requested service'),
  ip: z.string().optional().describe('the client address, or a CIDR'),
  labels: z.record(nonEmpty, z.string()).optional().describe("label name to pattern; one of the account's values must match each"),
});

export const aclRuleSchema = z.strictObject({
  match: aclMatchSchema.describe('the conditions, all of which must hold; {} matches every request'),
  actions: z.array(z.string()).describe('["*"] grants what is asked, another list its intersection with it, [] denies'),
  comment: z.string().optional().describe('free text, shown in the audit reason and by explain'),
});

export const configSchema = z
  .strictObject({
    server: serverSchema.prefault({}).describe('how the server listens'),
    token: tokenSchema.describe('what tokens contain and how they are signed'),
    users: z.record(z.string(), userSchema).optional().describe('static accounts, by name; "" is the anonymous caller'),
    acl: z.array(aclRuleSchema).optional().describe('the authorization rules, tried in order: the first match decides'),
    store: storeSchema.optional().describe('where store users, groups, rules, access and refresh tokens live'),
    authn_order: z
      .array(z.enum(['users', 'store', 'ext', 'webhook', 'ldap']))
      .min(1)
      .refine((order) => new Set(order).size === order.length, 'lists a source twice')
      .default(['users', 'store', 'ext', 'webhook', 'ldap'])
      .describe('the order in which the password backends are tried; those not configured are skipped'),
    credential_cache: credentialCacheSchema.prefault({}).describe('how long verified passwords of static and store users are remembered'),
    lockout: lockoutSchema.prefault({}).describe('lock out repeated bad passwords per account and address (429 with Retry-After)'),
    refresh_tokens: refreshTokensSchema.prefault({}).describe('the refresh tokens docker login keeps (needs a store)'),
    access_tokens: accessTokensSchema.prefault({}).describe('access tokens (stsat_…) for CI and robots (needs a store)'),
    sso: ssoSchema.optional().describe('single sign-on in the browser: the login page and its providers'),
    ext_auth: extAuthSchema.optional(),
    ext_authz: extAuthzSchema.optional(),
    webhook_auth: webhookAuthSchema.optional(),
    webhook_authz: webhookAuthzSchema.optional(),
    ldap_auth: ldapAuthSchema.optional().describe('users of an LDAP directory or Active Directory (docker_auth keys)'),
    metrics: metricsSchema.prefault({}).describe('Prometheus metrics at <path_prefix>/metrics and who may read them'),
    audit: auditSchema.prefault({}).describe('where the audit trail goes: stdout, a file, or both'),
    trusted_issuers: trustedIssuersSchema.optional().describe('OIDC issuers whose ID tokens (CI jobs, service accounts) are accepted as passwords'),
  })
  .superRefine((config, ctx) => {
    for (const [name, user] of Object.entries(config.users ?? {})) {
      if (name !== '' && user.password === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['users', name, 'password'],
          message:
            'is required: docker_auth let a user without a password in with any password; set a bcrypt hash instead',
        });
      }
      if (name === '' && user.password !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['users', '', 'password'],
          message: 'the anonymous user "" takes no password',
        });
      }
    }
    if ((config.server.certificate === undefined) !== (config.server.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['server'], message: 'set both certificate and key, or neither' });
    }
    if ((config.token.certificate === undefined) !== (config.token.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['token'], message: 'set both certificate and key, or neither' });
    }
    if (config.token.certificate === undefined && config.server.certificate === undefined && config.token.keyring === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['token', 'certificate'],
        message: 'is required (or server.certificate, or token.keyring): the signing key and its certificate',
      });
    }
    for (const [source, section] of [['ext', 'ext_auth'], ['webhook', 'webhook_auth'], ['ldap', 'ldap_auth']] as const) {
      if (config[section] && !config.authn_order.includes(source)) {
        ctx.addIssue({ code: 'custom', path: ['authn_order'], message: `does not list ${source}, so ${section} would never be asked; add it` });
      }
    }
    if (config.users === undefined && config.store === undefined && !config.trusted_issuers?.length && !config.ext_auth && !config.webhook_auth && !config.ldap_auth) {
      ctx.addIssue({ code: 'custom', path: ['users'], message: 'is required (or store, or trusted_issuers): no authentication method is configured' });
    }
    if (config.acl === undefined && config.store === undefined && !config.ext_authz && !config.webhook_authz) {
      ctx.addIssue({ code: 'custom', path: ['acl'], message: 'is required (or store, ext_authz or webhook_authz): no authorization method is configured' });
    }
    if (config.refresh_tokens.idle_timeout > config.refresh_tokens.max_age) {
      ctx.addIssue({ code: 'custom', path: ['refresh_tokens', 'idle_timeout'], message: 'is longer than max_age' });
    }
  });

/** The file as written. */
export type ConfigInput = z.input<typeof configSchema>;
/** The file after validation and defaults. */
export type Config = z.output<typeof configSchema>;
export type AclRuleConfig = z.output<typeof aclRuleSchema>;
export type UserConfig = z.output<typeof userSchema>;
