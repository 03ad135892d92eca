import { z } from 'zod';
import { durationSchema } from '../config/duration.js';

/**
 * The `sso` section: single sign-on in the browser. A person signs in at `<prefix>/login` with an
 * OpenID Connect provider (or GitHub, which speaks OAuth2 only) and gets an access token to use
 * as the password of `docker login`. The accounts live in the store, password-less like robots.
 */

const nonEmpty = z.string().min(1, 'must not be empty');

export const PROVIDER_TYPES = ['oidc', 'github', 'gitlab', 'google'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

// Provider ids become URL path segments and label values.
const PROVIDER_ID = /^[a-z0-9][a-z0-9_-]{0,31}$/;
// Claim names become label keys, which the store limits to these characters.
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/;

/** Loopback hosts may be reached over plain HTTP (development and tests); anything else needs HTTPS. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127(?:\.\d{1,3}){3}$/.test(host);
}

// The issuer is kept exactly as written: discovery compares it with the provider's own, slash included.
const httpsUrl = (what: string) =>
  z.url({ protocol: /^https?$/, message: `must be an absolute https URL (${what})` }).refine((value) => {
    const url = new URL(value);
    return url.protocol === 'https:' || isLoopbackHost(url.hostname);
  }, 'must use https (plain http is accepted for loopback addresses only)');
const baseUrl = (what: string) => httpsUrl(what).transform((value) => value.replace(/\/+$/, ''));

const claimName = z.string().regex(LABEL_KEY, 'must be a claim name of letters, digits, ".", "_" or "-" (it becomes a label name)');


export const restrictionsSchema = z.strictObject({
  organizations: z
    .array(nonEmpty)
    .min(1)
    .optional()
    .describe('github: the user must belong to one of these organizations'),
  teams: z
    .array(z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'must be organization/team-slug'))
    .min(1)
    .optional()
    .describe('github: the user must belong to one of these teams, as organization/team-slug'),
  groups: z
    .array(nonEmpty)
    .min(1)
    .optional()
    .describe('gitlab and oidc: the groups claim must hold one of these groups (full paths)'),
  domains: z
    .array(z.string().regex(/^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/, 'must be a domain such as example.com'))
    .min(1)
    .optional()
    .describe("google: the hd claim; others: the verified email's domain; one of these"),
  required_claims: z
    .record(claimName, z.union([z.string(), z.boolean(), z.array(z.string()).min(1)]))
    .optional()
    .describe('each claim must equal (or, for a list claim, contain) the value, or one of the listed values'),
});

export const ssoProviderSchema = z
  .strictObject({
    id: z
      .string()
      .regex(PROVIDER_ID, 'must be 1-32 lowercase letters, digits, "_" or "-", starting with a letter or digit')
      .describe('the provider in URLs (/login/<id>) and in the sso label'),
    type: z.enum(PROVIDER_TYPES).describe('oidc (any OpenID Connect provider), gitlab, google, or github (OAuth2)'),
    display_name: nonEmpty.max(80).optional().describe('the button text on the login page; default from the type'),
    issuer: httpsUrl('the issuer').optional().describe('oidc (required), gitlab and google: the issuer, for discovery'),
    web_url: baseUrl('GitHub').optional().describe('github: the web address (default https://github.com; GitHub Enterprise: https://github.example.com)'),
    api_url: baseUrl('the GitHub API').optional().describe('github: the REST API (default https://api.github.com; GitHub Enterprise: <web_url>/api/v3)'),
    client_id: nonEmpty.describe('the client id registered at the provider'),
    client_secret: nonEmpty.optional().describe('prefer client_secret_file'),
    client_secret_file: nonEmpty.optional().describe('a file holding the client secret, relative to the config file'),
    scopes: z.array(nonEmpty).min(1).optional().describe('scopes to ask for; default from the type'),
    redirect_url: z
      .url({ protocol: /^https?$/, message: 'must be an absolute http(s) URL' })
      .describe('this server as the browser reaches it: <public URL>/login/<id>/callback'),
    user_claim: claimName.optional().describe('the claim that names the account; default from the type'),
    labels_claims: z.array(claimName).optional().describe('claims that become labels; default from the type'),
    account_prefix: z
      .string()
      .regex(/^[A-Za-z0-9._@+-]{0,32}$/, 'must be at most 32 letters, digits, ".", "_", "@", "+" or "-"')
      .optional()
      .describe('prepended to every account name from this provider'),
    restrictions: restrictionsSchema.optional().describe('who may sign in; every restriction set must hold'),
  })
  .superRefine((provider, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (provider.type === 'oidc' && provider.issuer === undefined) issue(['issuer'], 'is required for type oidc');
    if (provider.type === 'github' && provider.issuer !== undefined) {
      issue(['issuer'], 'belongs to OpenID Connect types; GitHub takes web_url and api_url');
    }
    if (provider.type !== 'github') {
      if (provider.web_url !== undefined) issue(['web_url'], `belongs to type github, not ${provider.type}`);
      if (provider.api_url !== undefined) issue(['api_url'], `belongs to type github, not ${provider.type}`);
    }
    if (provider.client_secret === undefined && provider.client_secret_file === undefined) {
      issue(['client_secret_file'], 'is required (or client_secret): the secret the provider gave this client');
    }
    if (provider.client_secret !== undefined && provider.client_secret_file !== undefined) {
      issue(['client_secret'], 'set client_secret or client_secret_file, not both');
    }
    const path = URL.canParse(provider.redirect_url) ? new URL(provider.redirect_url).pathname : '';
    if (path !== '' && !path.endsWith(`/login/${provider.id}/callback`)) {
      issue(['redirect_url'], `must end with /login/${provider.id}/callback (the callback of this provider)`);
    }
    const r = provider.restrictions;
    if (r) {
      if (provider.type !== 'github') {
        if (r.organizations) issue(['restrictions', 'organizations'], 'is for type github; OpenID providers use groups or required_claims');
        if (r.teams) issue(['restrictions', 'teams'], 'is for type github; OpenID providers use groups or required_claims');
      } else {
        if (r.groups) issue(['restrictions', 'groups'], 'is not for type github; use organizations or teams');
        if (r.domains) issue(['restrictions', 'domains'], 'is not for type github: GitHub vouches for no email domain; use organizations');
      }
    }
  });

/**
 * Every repository, pull and push. In token scopes `*` does not cross `/` (Go path.Match, as in
 * the ACL), so one pattern per depth: names of up to three components, such as `alice/team/app`.
 */
export const DEFAULT_TOKEN_SCOPES: readonly string[] = ['repository:*:pull,push', 'repository:*/*:pull,push', 'repository:*/*/*:pull,push'];

export const ssoSchema = z
  .strictObject({
    providers: z.array(ssoProviderSchema).min(1, 'needs at least one provider').describe('the sign-in providers, one button each'),
    session_secret_file: nonEmpty
      .default('session.key')
      .describe('at least 32 random bytes that sign the login cookies; created on first start in the data folder'),
    token_lifetime: durationSchema.default(30 * 86_400).describe('how long the access token minted at sign-in lives'),
    token_scopes: z
      .array(nonEmpty)
      .min(1)
      .default([...DEFAULT_TOKEN_SCOPES])
      .describe("the access token's scopes; the user's rules limit it further"),
    registry_host: z
      .string()
      .regex(HOST, 'must be host or host:port, such as registry.example.com')
      .optional()
      .describe('the registry named in the docker login command shown; default the host the page was asked on'),
    timeout: z.int().min(1).max(120).default(10).describe('seconds to wait for the provider on each request'),
  })
  .superRefine((sso, ctx) => {
    const seen = new Set<string>();
    sso.providers.forEach((provider, index) => {
      if (seen.has(provider.id)) ctx.addIssue({ code: 'custom', path: ['providers', index, 'id'], message: `${provider.id} is used twice` });
      seen.add(provider.id);
    });
  });

export type SsoConfig = z.output<typeof ssoSchema>;
export type SsoProviderConfig = z.output<typeof ssoProviderSchema>;
export type Restrictions = z.output<typeof restrictionsSchema>;

/** What each type means when the config leaves a key out. */
export interface ProviderDefaults {
  displayName: string;
  issuer?: string;
  scopes: string[];
  userClaim: string;
  labelsClaims: string[];
}

export const PROVIDER_DEFAULTS: Readonly<Record<ProviderType, ProviderDefaults>> = {
  oidc: { displayName: 'single sign-on', scopes: ['openid', 'profile', 'email'], userClaim: 'preferred_username', labelsClaims: ['groups'] },
  gitlab: {
    displayName: 'GitLab',
    issuer: 'https://gitlab.com',
    scopes: ['openid', 'profile', 'email'],
    userClaim: 'preferred_username',
    labelsClaims: ['groups'],
  },
  google: {
    displayName: 'Google',
    issuer: 'https://accounts.google.com',
    scopes: ['openid', 'email', 'profile'],
    userClaim: 'email',
    labelsClaims: [],
  },
  // read:org lets /user/orgs and /user/teams list private memberships too.
  github: { displayName: 'GitHub', scopes: ['read:org'], userClaim: 'login', labelsClaims: ['organizations', 'teams'] },
};

export const GITHUB_WEB_URL = 'https://github.com';
export const GITHUB_API_URL = 'https://api.github.com';
