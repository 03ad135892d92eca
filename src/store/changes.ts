import { parseJson } from './context.js';
import type { StoreContext } from './context.js';
import type { Store } from './types.js';

export function changesApi(ctx: StoreContext): Store['changes'] {
  return {
    /** Newest first; `limit` keeps the newest ones. */
    list(options = {}) {
      const { limit, target } = options;
      if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
        return Promise.reject(new RangeError(`limit must be a positive integer, not ${limit}`));
      }
      return ctx.run(async (db) => {
        let query = db.selectFrom('changes').select(['id', 'at', 'actor', 'action', 'target', 'details']).orderBy('seq', 'desc');
        if (target !== undefined) query = query.where('target', '=', target);
        if (limit !== undefined) query = query.limit(limit);
        const rows = await query.execute();
        return rows.map((r) => ({
          id: r.id,
          at: r.at,
          actor: r.actor,
          action: r.action,
          target: r.target,
          details: parseJson<Record<string, unknown>>(r.details),
        }));
      });
    },
  };
}
