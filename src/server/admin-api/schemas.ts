import { z } from 'zod';
import type { CreatedToken } from '../../admin/service.js';
import { aclRuleSchema } from '../../config/schema.js';
import { component } from './route.js';
import type { AccessTokenRecord, ChangeRecord, RefreshTokenRecord, StoredGroup, StoredRule, StoredUser } from '../../store/types.js';

/**
 * What the admin API accepts and answers, as zod schemas: they validate requests and, turned
 * into JSON Schema, describe the routes in the OpenAPI document. Views are built field by field
 * from the store's records, so a password hash or a token digest can never slip into a response.
 */

const time = z.string().meta({ format: 'date-time', description: 'RFC 3339 time (UTC)' });
const optionalTime = (what: string) => time.nullable().describe(`${what}; null if never`);
const iso = (ms: number) => new Date(ms).toISOString();
const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export const labelsSchema = component(
  'Labels',
  z.record(z.string(), z.array(z.string())).describe('labels for ACL matching: name → list of values, e.g. {"team": ["web"]}'),
);
const aclRule = component('AclRule', aclRuleSchema.describe('an ACL rule, exactly as in the config file’s acl list'));

// Requests.

export const nameParams = z.strictObject({ name: z.string() });
export const idParams = z.strictObject({ id: z.string() });
export const memberParams = z.strictObject({ name: z.string().describe('the group'), user: z.string().describe('the user') });
export const userFilterQuery = z.strictObject({ user: z.string().optional().describe('only those of this user') });

export const createUserBody = z.strictObject({
  name: z.string().describe('letters, digits and . _ @ + -, starting with a letter or digit'),
  password: z.string().nullable().optional().describe('null or absent: a robot account, which signs in only with access tokens'),
  labels: labelsSchema.optional(),
});

export const updateUserBody = z
  .strictObject({
    password: z.string().optional().describe('a new password'),
    disabled: z.boolean().optional().describe('a disabled user cannot sign in, nor can its tokens'),
    labels: labelsSchema.optional(),
  })
  .refine((b) => b.password !== undefined || b.disabled !== undefined || b.labels !== undefined, {
    message: 'nothing to change: give password, disabled or labels',
  });

export const createGroupBody = z.strictObject({
  name: z.string().describe('letters, digits and . _ -, starting with a letter or digit'),
  labels: labelsSchema.optional(),
});

export const addRuleBody = z.strictObject({
  rule: aclRule,
  position: z.int().min(0).optional().describe('0 = first; absent: appended after the last stored rule'),
});

export const createTokenBody = z.strictObject({
  user: z.string().describe('the owner: a user who can sign in (of the store or of the config file)'),
  name: z.string().describe('unique per user; letters, digits and . _ -'),
  scopes: z
    .array(z.string())
    .describe('what the token may be used for: patterns such as repository:team/*:pull,push, or admin for this API'),
  expires_in: z
    .int()
    .positive()
    .max(100 * 365 * 86_400)
    .nullable()
    .optional()
    .describe('lifetime in seconds; null: never expires; absent: 90 days, or access_tokens.max_lifetime if shorter (as the CLI)'),
});

export const revokeRefreshBody = z
  .strictObject({
    user: z.string().optional().describe('revoke every refresh token of this user'),
    all: z.literal(true).optional().describe('revoke every refresh token of every user'),
  })
  .refine((b) => (b.user === undefined) !== (b.all === undefined), { message: 'give either user or all: true' });

export const changesQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).optional().describe('at most this many, newest first (default 100)'),
  target: z.string().optional().describe('only changes made to this user, group, rule or token id'),
});

// Responses.

export const userView = component('User', z.object({
  name: z.string(),
  robot: z.boolean().describe('true: no password; signs in with access tokens only'),
  disabled: z.boolean(),
  labels: labelsSchema,
  groups: z.array(z.string()).describe('the groups the user belongs to'),
  created_at: time,
  updated_at: time,
}));
export const toUserView = (u: StoredUser): z.output<typeof userView> => ({
  name: u.name,
  robot: u.passwordHash === null,
  disabled: u.disabled,
  labels: u.labels,
  groups: u.groups,
  created_at: iso(u.createdAt),
  updated_at: iso(u.updatedAt),
});

export const groupView = component('Group', z.object({ name: z.string(), labels: labelsSchema, members: z.array(z.string()), created_at: time }));
export const toGroupView = (g: StoredGroup): z.output<typeof groupView> => ({
  name: g.name,
  labels: g.labels,
  members: g.members,
  created_at: iso(g.createdAt),
});

export const ruleView = component('Rule', z.object({
  id: z.string(),
  position: z.int().describe('stored rules apply in ascending position, after the config file’s rules'),
  rule: aclRule,
  created_at: time,
}));
export const toRuleView = (r: StoredRule): z.output<typeof ruleView> => ({ id: r.id, position: r.position, rule: r.rule, created_at: iso(r.createdAt) });

const tokenFields = {
  id: z.string(),
  user: z.string(),
  name: z.string(),
  scopes: z.array(z.string()),
  created_at: time,
  expires_at: optionalTime('when it stops working'),
  last_used_at: optionalTime('its last use'),
  last_used_ip: z.string().nullable().describe('the client address of its last use'),
  revoked_at: optionalTime('when it was revoked'),
};
export const tokenView = component('AccessToken', z.object(tokenFields));
export const toTokenView = (t: AccessTokenRecord): z.output<typeof tokenView> => ({
  id: t.id,
  user: t.user,
  name: t.name,
  scopes: t.scopes,
  created_at: iso(t.createdAt),
  expires_at: isoOrNull(t.expiresAt),
  last_used_at: isoOrNull(t.lastUsedAt),
  last_used_ip: t.lastUsedIp,
  revoked_at: isoOrNull(t.revokedAt),
});

export const createdTokenView = component('CreatedAccessToken', z.object({
  token: z.string().describe('the secret (stsat_…): shown this once, only its digest is kept'),
  ...tokenFields,
  warnings: z.array(z.string()),
}));
export const toCreatedTokenView = (c: CreatedToken): z.output<typeof createdTokenView> => ({
  token: c.secret,
  ...toTokenView(c.record),
  warnings: c.warnings,
});

export const refreshTokenView = component('RefreshToken', z.object({
  id: z.string(),
  user: z.string(),
  service: z.string(),
  client_id: z.string().nullable(),
  created_at: time,
  last_used_at: optionalTime('its last use'),
  expires_at: time.describe('its maximum age: it never works after this'),
  revoked_at: optionalTime('when it was revoked'),
}));
export const toRefreshTokenView = (t: RefreshTokenRecord): z.output<typeof refreshTokenView> => ({
  id: t.id,
  user: t.user,
  service: t.service,
  client_id: t.clientId,
  created_at: iso(t.createdAt),
  last_used_at: isoOrNull(t.lastUsedAt),
  expires_at: iso(t.expiresAt),
  revoked_at: isoOrNull(t.revokedAt),
});

export const changeView = component('Change', z.object({
  id: z.string(),
  at: time,
  actor: z.string().describe('who made it: cli:<os user> for the CLI, api:<token id> for this API'),
  action: z.string().describe('e.g. user.create, token.revoke'),
  target: z.string().describe('what it was made to: a user name, a token id, ...'),
  details: z.record(z.string(), z.unknown()).describe('what changed; never a secret'),
}));
export const toChangeView = (c: ChangeRecord): z.output<typeof changeView> => ({
  id: c.id,
  at: iso(c.at),
  actor: c.actor,
  action: c.action,
  target: c.target,
  details: c.details,
});
