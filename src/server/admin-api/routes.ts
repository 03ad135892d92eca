import { z } from 'zod';
import { AdminInputError, type AdminService } from '../../admin/service.js';
import { StoreConflictError, StoreNotFoundError, type Store } from '../../store/types.js';
import { defineRoute, type AdminRoute } from './route.js';
import * as s from './schemas.js';

/** A new access token's lifetime when none is given, as in `tokens create`: 90 days. */
const DEFAULT_TOKEN_EXPIRY = 90 * 86_400;

/** The admin API's routes, in the order the OpenAPI document lists them. */
export function adminRoutes(service: AdminService, store: Store, maxLifetime: number | undefined): AdminRoute[] {
  return [
    // Users.
    defineRoute({
      method: 'GET',
      path: '/users',
      operationId: 'listUsers',
      tag: 'users',
      summary: 'List the users of the store',
      status: 200,
      response: z.object({ users: z.array(s.userView) }),
      handler: async () => ({ users: (await service.listUsers()).map(s.toUserView) }),
    }),
    defineRoute({
      method: 'POST',
      path: '/users',
      operationId: 'createUser',
      tag: 'users',
      summary: 'Create a user (a robot account when there is no password)',
      body: s.createUserBody,
      status: 201,
      response: s.userView,
      errors: [409],
      handler: async ({ body, caller }) =>
        s.toUserView(await service.addUser({ name: body.name, password: body.password ?? null, ...(body.labels ? { labels: body.labels } : {}) }, caller.actor)),
    }),
    defineRoute({
      method: 'GET',
      path: '/users/:name',
      operationId: 'getUser',
      tag: 'users',
      summary: 'Show a user',
      params: s.nameParams,
      status: 200,
      response: s.userView,
      errors: [404],
      handler: async ({ params }) => {
        const user = await service.getUser(params.name);
        if (!user) throw new StoreNotFoundError('user', params.name);
        return s.toUserView(user);
      },
    }),
    defineRoute({
      method: 'PATCH',
      path: '/users/:name',
      operationId: 'updateUser',
      tag: 'users',
      summary: 'Change a user’s password, disabled flag or labels',
      description: 'Only the fields given change. Labels are replaced as a whole.',
      params: s.nameParams,
      body: s.updateUserBody,
      status: 200,
      response: s.userView,
      errors: [404],
      handler: async ({ params, body, caller }) => {
        // Everything that can be refused is checked before the first change is made.
        if (body.password === '') throw new AdminInputError('the password is empty');
        let user;
        if (body.labels !== undefined) user = await service.setLabels(params.name, body.labels, caller.actor);
        if (body.password !== undefined) user = await service.setPassword(params.name, body.password, caller.actor);
        if (body.disabled !== undefined) user = await service.setDisabled(params.name, body.disabled, caller.actor);
        if (!user) throw new AdminInputError('nothing to change: give password, disabled or labels');
        return s.toUserView(user);
      },
    }),
    defineRoute({
      method: 'DELETE',
      path: '/users/:name',
      operationId: 'deleteUser',
      tag: 'users',
      summary: 'Delete a user with its memberships, access tokens and refresh tokens',
      params: s.nameParams,
      status: 204,
      errors: [404],
      handler: ({ params, caller }) => service.removeUser(params.name, caller.actor),
    }),

    // Groups.
    defineRoute({
      method: 'GET',
      path: '/groups',
      operationId: 'listGroups',
      tag: 'groups',
      summary: 'List the groups with their members',
      status: 200,
      response: z.object({ groups: z.array(s.groupView) }),
      handler: async () => ({ groups: (await service.listGroups()).map(s.toGroupView) }),
    }),
    defineRoute({
      method: 'POST',
      path: '/groups',
      operationId: 'createGroup',
      tag: 'groups',
      summary: 'Create a group',
      body: s.createGroupBody,
      status: 201,
      response: s.groupView,
      errors: [409],
      handler: async ({ body, caller }) => s.toGroupView(await service.addGroup(body.name, body.labels ?? {}, caller.actor)),
    }),
    defineRoute({
      method: 'DELETE',
      path: '/groups/:name',
      operationId: 'deleteGroup',
      tag: 'groups',
      summary: 'Delete a group (its members stay)',
      params: s.nameParams,
      status: 204,
      errors: [404],
      handler: ({ params, caller }) => service.removeGroup(params.name, caller.actor),
    }),
    defineRoute({
      method: 'PUT',
      path: '/groups/:name/members/:user',
      operationId: 'addGroupMember',
      tag: 'groups',
      summary: 'Add a user to a group',
      description: 'Idempotent, as a PUT is: adding a member again changes nothing and answers 204 too.',
      params: s.memberParams,
      status: 204,
      errors: [404],
      handler: async ({ params, caller }) => {
        try {
          await service.addMember(params.name, params.user, caller.actor);
        } catch (err) {
          if (!(err instanceof StoreConflictError && err.entity === 'member')) throw err;
        }
      },
    }),
    defineRoute({
      method: 'DELETE',
      path: '/groups/:name/members/:user',
      operationId: 'removeGroupMember',
      tag: 'groups',
      summary: 'Remove a user from a group',
      params: s.memberParams,
      status: 204,
      errors: [404],
      handler: ({ params, caller }) => service.removeMember(params.name, params.user, caller.actor),
    }),

    // ACL rules.
    defineRoute({
      method: 'GET',
      path: '/acl',
      operationId: 'listRules',
      tag: 'acl',
      summary: 'List the stored ACL rules in the order they apply',
      description: 'Stored rules apply after the config file’s own acl rules.',
      status: 200,
      response: z.object({ rules: z.array(s.ruleView) }),
      handler: async () => ({ rules: (await service.listRules()).map(s.toRuleView) }),
    }),
    defineRoute({
      method: 'POST',
      path: '/acl',
      operationId: 'addRule',
      tag: 'acl',
      summary: 'Add an ACL rule',
      description: 'The rule is validated exactly as the config file’s acl entries (patterns, IP ranges, placeholders).',
      body: s.addRuleBody,
      status: 201,
      response: s.ruleView,
      handler: async ({ body, caller }) => s.toRuleView(await service.addRule(body.rule, body.position, caller.actor)),
    }),
    defineRoute({
      method: 'DELETE',
      path: '/acl/:id',
      operationId: 'deleteRule',
      tag: 'acl',
      summary: 'Delete an ACL rule',
      params: s.idParams,
      status: 204,
      errors: [404],
      handler: ({ params, caller }) => service.removeRule(params.id, caller.actor),
    }),

    // Access tokens.
    defineRoute({
      method: 'GET',
      path: '/tokens',
      operationId: 'listTokens',
      tag: 'tokens',
      summary: 'List access tokens (revoked ones included)',
      query: s.userFilterQuery,
      status: 200,
      response: z.object({ tokens: z.array(s.tokenView) }),
      handler: async ({ query }) => ({ tokens: (await service.listTokens(query.user)).map(s.toTokenView) }),
    }),
    defineRoute({
      method: 'POST',
      path: '/tokens',
      operationId: 'createToken',
      tag: 'tokens',
      summary: 'Create an access token; the secret is in the answer and nowhere else',
      description:
        'The token is used as a password (docker login -u <user> -p <token>) and grants at most its scopes and what its owner’s rules allow; the scope admin lets it call this API.',
      body: s.createTokenBody,
      status: 201,
      response: s.createdTokenView,
      errors: [409],
      handler: async ({ body, caller }) => {
        const expiresIn = body.expires_in === undefined ? Math.min(DEFAULT_TOKEN_EXPIRY, maxLifetime ?? Infinity) : body.expires_in;
        return s.toCreatedTokenView(await service.createToken({ user: body.user, name: body.name, scopes: body.scopes, expiresIn }, caller.actor));
      },
    }),
    defineRoute({
      method: 'DELETE',
      path: '/tokens/:id',
      operationId: 'revokeToken',
      tag: 'tokens',
      summary: 'Revoke an access token',
      description: 'It stops working at once; the record stays, with revoked_at set. Revoking it again changes nothing.',
      params: s.idParams,
      status: 204,
      errors: [404],
      handler: ({ params, caller }) => service.revokeToken(params.id, caller.actor),
    }),

    // Refresh tokens.
    defineRoute({
      method: 'GET',
      path: '/refresh-tokens',
      operationId: 'listRefreshTokens',
      tag: 'refresh-tokens',
      summary: 'List refresh tokens (those of docker login and other OAuth2 clients)',
      query: s.userFilterQuery,
      status: 200,
      response: z.object({ refresh_tokens: z.array(s.refreshTokenView) }),
      handler: async ({ query }) => ({ refresh_tokens: (await service.listRefreshTokens(query.user)).map(s.toRefreshTokenView) }),
    }),
    defineRoute({
      method: 'DELETE',
      path: '/refresh-tokens/:id',
      operationId: 'revokeRefreshToken',
      tag: 'refresh-tokens',
      summary: 'Revoke a refresh token',
      params: s.idParams,
      status: 204,
      errors: [404],
      handler: async ({ params, caller }) => {
        await service.revokeRefreshTokens({ id: params.id }, caller.actor);
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/refresh-tokens/revoke',
      operationId: 'revokeRefreshTokens',
      tag: 'refresh-tokens',
      summary: 'Revoke the refresh tokens of a user, or all of them',
      body: s.revokeRefreshBody,
      status: 200,
      response: z.object({ revoked: z.int().min(0).describe('how many were revoked now') }),
      errors: [404],
      handler: async ({ body, caller }) => ({
        revoked: await service.revokeRefreshTokens(body.user !== undefined ? { user: body.user } : { all: true }, caller.actor),
      }),
    }),

    // The change log.
    defineRoute({
      method: 'GET',
      path: '/changes',
      operationId: 'listChanges',
      tag: 'changes',
      summary: 'The audit trail of changes to users, groups, rules and tokens, newest first',
      query: s.changesQuery,
      status: 200,
      response: z.object({ changes: z.array(s.changeView) }),
      handler: async ({ query }) => ({
        changes: (await store.changes.list({ limit: query.limit ?? 100, ...(query.target === undefined ? {} : { target: query.target }) })).map(s.toChangeView),
      }),
    }),
  ];
}
