/**
 * ACL rules at 0-based, dense positions: adding at a position moves that rule and the later ones
 * down by one; removing moves the later ones up. Every add and remove starts by incrementing the
 * `rules_version` counter, which also serializes rule writers on PostgreSQL (the UPDATE locks the
 * row until commit, and under READ COMMITTED the statements after it see what the previous writer
 * committed), so two replicas never compute the same position.
 */
import type { Transaction } from 'kysely';

import { parseJson, recordChange } from './context.js';
import type { StoreContext } from './context.js';
import { newId } from './ids.js';
import { RULES_VERSION_KEY } from './schema.js';
import type { AclRulesTable, Database } from './schema.js';
import { StoreNotFoundError } from './types.js';
import type { RuleBody, Store, StoredRule } from './types.js';

function toRule(row: AclRulesTable): StoredRule {
  return { id: row.id, position: row.position, rule: parseJson<RuleBody>(row.rule), createdAt: row.created_at };
}

async function bumpVersion(trx: Transaction<Database>): Promise<void> {
  await trx
    .updateTable('store_meta')
    .set((eb) => ({ value: eb('value', '+', 1) }))
    .where('key', '=', RULES_VERSION_KEY)
    .execute();
}

export function rulesApi(ctx: StoreContext): Store['rules'] {
  return {
    add(rule, options, actor) {
      const { position } = options;
      if (position !== undefined && (!Number.isSafeInteger(position) || position < 0)) {
        return Promise.reject(new RangeError(`rule position must be an integer of 0 or more, not ${position}`));
      }
      return ctx.tx(async (trx) => {
        await bumpVersion(trx);
        const { count } = await trx
          .selectFrom('acl_rules')
          .select((eb) => eb.fn.countAll<number>().as('count'))
          .executeTakeFirstOrThrow();
        const at = position === undefined ? Number(count) : Math.min(position, Number(count));
        if (at < Number(count)) {
          await trx
            .updateTable('acl_rules')
            .set((eb) => ({ position: eb('position', '+', 1) }))
            .where('position', '>=', at)
            .execute();
        }
        const row: AclRulesTable = { id: newId('r'), position: at, rule: JSON.stringify(rule), created_at: ctx.now() };
        await trx.insertInto('acl_rules').values(row).execute();
        await recordChange(trx, ctx, { actor, action: 'rule.add', target: row.id, details: { position: at, rule } });
        return toRule(row);
      });
    },

    list() {
      return ctx.run(async (db) => {
        const rows = await db.selectFrom('acl_rules').selectAll().orderBy('position').execute();
        return rows.map(toRule);
      });
    },

    remove(id, actor) {
      return ctx.tx(async (trx) => {
        await bumpVersion(trx);
        const removed = await trx.deleteFrom('acl_rules').where('id', '=', id).returningAll().executeTakeFirst();
        // Throwing rolls the version bump back with the rest.
        if (removed === undefined) throw new StoreNotFoundError('rule', id);
        await trx
          .updateTable('acl_rules')
          .set((eb) => ({ position: eb('position', '-', 1) }))
          .where('position', '>', removed.position)
          .execute();
        await recordChange(trx, ctx, {
          actor,
          action: 'rule.remove',
          target: id,
          details: { position: removed.position, rule: parseJson<RuleBody>(removed.rule) },
        });
      });
    },

    version() {
      return ctx.run(async (db) => {
        const row = await db.selectFrom('store_meta').select('value').where('key', '=', RULES_VERSION_KEY).executeTakeFirstOrThrow();
        return row.value;
      });
    },
  };
}
