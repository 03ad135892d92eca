import type { Transaction } from 'kysely';

import { parseLabels, recordChange } from './context.js';
import type { StoreContext } from './context.js';
import { newId } from './ids.js';
import type { Database, GroupsTable } from './schema.js';
import { StoreConflictError, StoreNotFoundError } from './types.js';
import type { Store, StoredGroup } from './types.js';

function toGroup(row: GroupsTable, members: string[]): StoredGroup {
  return { name: row.name, labels: parseLabels(row.labels), members, createdAt: row.created_at };
}

const GROUP_FIELDS = ['id', 'name', 'labels', 'created_at'] as const;

/** A membership is named `group/user` in conflicts and not-found errors. */
function memberKey(group: string, user: string): string {
  return `${group}/${user}`;
}

export function groupsApi(ctx: StoreContext): Store['groups'] {
  async function idOf(trx: Transaction<Database>, table: 'users' | 'groups', name: string): Promise<string> {
    const row = await trx.selectFrom(table).select('id').where('name', '=', name).executeTakeFirst();
    if (row === undefined) throw new StoreNotFoundError(table === 'users' ? 'user' : 'group', name);
    return row.id;
  }

  return {
    async create(input, actor) {
      const row: GroupsTable = { id: newId('g'), name: input.name, labels: JSON.stringify(input.labels ?? {}), created_at: ctx.now() };
      await ctx.tx(
        async (trx) => {
          await trx.insertInto('groups').values(row).execute();
          await recordChange(trx, ctx, { actor, action: 'group.create', target: input.name, details: { labels: input.labels ?? {} } });
        },
        { unique: () => new StoreConflictError('group', input.name) },
      );
      return toGroup(row, []);
    },

    get(name) {
      return ctx.run(async (db) => {
        const rows = await db
          .selectFrom('groups')
          .leftJoin('group_members', 'group_members.group_id', 'groups.id')
          .leftJoin('users', 'users.id', 'group_members.user_id')
          .select(['groups.id', 'groups.name', 'groups.labels', 'groups.created_at', 'users.name as member'])
          .where('groups.name', '=', name)
          .orderBy(ctx.byteOrder('users.name'))
          .execute();
        const first = rows[0];
        if (first === undefined) return undefined;
        return toGroup(first, rows.flatMap((r) => (r.member === null ? [] : [r.member])));
      });
    },

    list() {
      return ctx.run(async (db) => {
        const groups = await db.selectFrom('groups').select(GROUP_FIELDS).orderBy(ctx.byteOrder('name')).execute();
        const memberships = await db
          .selectFrom('group_members')
          .innerJoin('users', 'users.id', 'group_members.user_id')
          .select(['group_members.group_id', 'users.name'])
          .orderBy(ctx.byteOrder('users.name'))
          .execute();
        const members = new Map<string, string[]>();
        for (const m of memberships) {
          const list = members.get(m.group_id);
          if (list) list.push(m.name);
          else members.set(m.group_id, [m.name]);
        }
        return groups.map((g) => toGroup(g, members.get(g.id) ?? []));
      });
    },

    remove(name, actor) {
      return ctx.tx(async (trx) => {
        // Memberships go with it: ON DELETE CASCADE.
        const removed = await trx.deleteFrom('groups').where('name', '=', name).returning('id').executeTakeFirst();
        if (removed === undefined) throw new StoreNotFoundError('group', name);
        await recordChange(trx, ctx, { actor, action: 'group.remove', target: name });
      });
    },

    addMember(group, user, actor) {
      return ctx.tx(
        async (trx) => {
          const groupId = await idOf(trx, 'groups', group);
          const userId = await idOf(trx, 'users', user);
          await trx.insertInto('group_members').values({ group_id: groupId, user_id: userId, created_at: ctx.now() }).execute();
          await recordChange(trx, ctx, { actor, action: 'group.add_member', target: group, details: { user } });
        },
        {
          unique: () => new StoreConflictError('member', memberKey(group, user)),
          // The group or the user was removed by another writer between our read and insert.
          foreignKey: () => new StoreNotFoundError('member', memberKey(group, user)),
        },
      );
    },

    removeMember(group, user, actor) {
      return ctx.tx(async (trx) => {
        const groupId = await idOf(trx, 'groups', group);
        const userId = await idOf(trx, 'users', user);
        const result = await trx
          .deleteFrom('group_members')
          .where('group_id', '=', groupId)
          .where('user_id', '=', userId)
          .executeTakeFirst();
        if (result.numDeletedRows === 0n) throw new StoreNotFoundError('member', memberKey(group, user));
        await recordChange(trx, ctx, { actor, action: 'group.remove_member', target: group, details: { user } });
      });
    },
  };
}
