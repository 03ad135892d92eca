import { parseLabels, recordChange } from './context.js';
import type { StoreContext } from './context.js';
import { newId } from './ids.js';
import type { UsersTable } from './schema.js';
import { StoreConflictError, StoreNotFoundError } from './types.js';
import type { Store, StoredUser } from './types.js';

function toUser(row: UsersTable, groups: string[]): StoredUser {
  return {
    name: row.name,
    passwordHash: row.password_hash,
    disabled: row.disabled !== 0,
    labels: parseLabels(row.labels),
    groups,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

// For the join with memberships and groups, which have columns of the same names.
const USER_COLUMNS = [
  'users.id',
  'users.name',
  'users.password_hash',
  'users.disabled',
  'users.labels',
  'users.created_at',
  'users.updated_at',
] as const;

// For statements on the users table alone (RETURNING included), where no join makes a name ambiguous.
const USER_FIELDS = ['id', 'name', 'password_hash', 'disabled', 'labels', 'created_at', 'updated_at'] as const;

export function usersApi(ctx: StoreContext): Store['users'] {
  async function groupsOf(userId: string, db = ctx.db): Promise<string[]> {
    const rows = await db
      .selectFrom('group_members')
      .innerJoin('groups', 'groups.id', 'group_members.group_id')
      .select('groups.name')
      .where('group_members.user_id', '=', userId)
      .orderBy(ctx.byteOrder('groups.name'))
      .execute();
    return rows.map((r) => r.name);
  }

  return {
    async create(input, actor) {
      const now = ctx.now();
      const row: UsersTable = {
        id: newId('u'),
        name: input.name,
        password_hash: input.passwordHash,
        disabled: 0,
        labels: JSON.stringify(input.labels ?? {}),
        created_at: now,
        updated_at: now,
      };
      await ctx.tx(
        async (trx) => {
          await trx.insertInto('users').values(row).execute();
          await recordChange(trx, ctx, {
            actor,
            action: 'user.create',
            target: input.name,
            details: { robot: input.passwordHash === null, labels: input.labels ?? {} },
          });
        },
        { unique: () => new StoreConflictError('user', input.name) },
      );
      return toUser(row, []);
    },

    // On the sign-in path: one round trip for the user and its groups.
    get(name) {
      return ctx.run(async (db) => {
        const rows = await db
          .selectFrom('users')
          .leftJoin('group_members', 'group_members.user_id', 'users.id')
          .leftJoin('groups', 'groups.id', 'group_members.group_id')
          .select([...USER_COLUMNS, 'groups.name as group_name'])
          .where('users.name', '=', name)
          .orderBy(ctx.byteOrder('groups.name'))
          .execute();
        const first = rows[0];
        if (first === undefined) return undefined;
        const groups = rows.flatMap((r) => (r.group_name === null ? [] : [r.group_name]));
        return toUser(first, groups);
      });
    },

    list() {
      return ctx.run(async (db) => {
        const users = await db.selectFrom('users').select(USER_FIELDS).orderBy(ctx.byteOrder('name')).execute();
        const memberships = await db
          .selectFrom('group_members')
          .innerJoin('groups', 'groups.id', 'group_members.group_id')
          .select(['group_members.user_id', 'groups.name'])
          .orderBy(ctx.byteOrder('groups.name'))
          .execute();
        const groups = new Map<string, string[]>();
        for (const m of memberships) {
          const list = groups.get(m.user_id);
          if (list) list.push(m.name);
          else groups.set(m.user_id, [m.name]);
        }
        return users.map((u) => toUser(u, groups.get(u.id) ?? []));
      });
    },

    update(name, patch, actor) {
      const now = ctx.now();
      const details: Record<string, unknown> = {};
      if (patch.passwordHash !== undefined) details.password = patch.passwordHash === null ? 'removed' : 'changed';
      if (patch.disabled !== undefined) details.disabled = patch.disabled;
      if (patch.labels !== undefined) details.labels = patch.labels;
      return ctx.tx(async (trx) => {
        const row = await trx
          .updateTable('users')
          .set((eb) => ({
            ...(patch.passwordHash === undefined ? {} : { password_hash: patch.passwordHash }),
            ...(patch.disabled === undefined ? {} : { disabled: patch.disabled ? 1 : 0 }),
            ...(patch.labels === undefined ? {} : { labels: JSON.stringify(patch.labels) }),
            // Strictly later than before, even for two updates in one millisecond, so that
            // anything comparing updatedAt sees every update.
            updated_at: eb
              .case()
              .when('updated_at', '>=', now)
              .then(eb('updated_at', '+', 1))
              .else(now)
              .end(),
          }))
          .where('name', '=', name)
          .returning(USER_FIELDS)
          .executeTakeFirst();
        if (row === undefined) throw new StoreNotFoundError('user', name);
        await recordChange(trx, ctx, { actor, action: 'user.update', target: name, details });
        return toUser(row, await groupsOf(row.id, trx));
      });
    },

    remove(name, actor) {
      return ctx.tx(async (trx) => {
        // Memberships go with it by ON DELETE CASCADE; tokens name their owner (who may be a
        // config user) instead of referencing the row, so they are deleted here.
        const removed = await trx.deleteFrom('users').where('name', '=', name).returning('id').executeTakeFirst();
        if (removed === undefined) throw new StoreNotFoundError('user', name);
        const access = await trx.deleteFrom('access_tokens').where('user', '=', name).executeTakeFirst();
        const refresh = await trx.deleteFrom('refresh_tokens').where('user', '=', name).executeTakeFirst();
        await recordChange(trx, ctx, {
          actor,
          action: 'user.remove',
          target: name,
          details: { accessTokens: Number(access.numDeletedRows), refreshTokens: Number(refresh.numDeletedRows) },
        });
      });
    },
  };
}
