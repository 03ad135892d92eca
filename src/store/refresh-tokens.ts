import { recordChange } from './context.js';
import type { StoreContext } from './context.js';
import { newId } from './ids.js';
import type { RefreshTokensTable } from './schema.js';
import { StoreConflictError, StoreNotFoundError } from './types.js';
import type { RefreshTokenRecord, Store } from './types.js';

function toRecord(row: RefreshTokensTable): RefreshTokenRecord {
  return {
    id: row.id,
    user: row.user,
    service: row.service,
    clientId: row.client_id,
    digest: row.digest,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

/**
 * Refresh tokens (docker's identity tokens). The owner is a name, not checked here: config-file
 * users log in too (see migrations.ts).
 */
export function refreshTokensApi(ctx: StoreContext): Store['refreshTokens'] {
  return {
    // Runs on every docker login: one INSERT, no transaction and no change row.
    async create(input) {
      const row: RefreshTokensTable = {
        id: newId('rt'),
        user: input.user,
        service: input.service,
        client_id: input.clientId,
        digest: input.digest,
        created_at: ctx.now(),
        last_used_at: null,
        expires_at: input.expiresAt,
        revoked_at: null,
      };
      await ctx.run((db) => db.insertInto('refresh_tokens').values(row).execute(), {
        unique: () => new StoreConflictError('refresh_token', '(same digest)'),
      });
      return toRecord(row);
    },

    findByDigest(digest) {
      return ctx.run(async (db) => {
        const row = await db.selectFrom('refresh_tokens').selectAll().where('digest', '=', digest).executeTakeFirst();
        return row === undefined ? undefined : toRecord(row);
      });
    },

    touch(id, at) {
      return ctx.run(async (db) => {
        await db.updateTable('refresh_tokens').set({ last_used_at: at }).where('id', '=', id).execute();
      });
    },

    list(user) {
      return ctx.run(async (db) => {
        let query = db.selectFrom('refresh_tokens').selectAll();
        if (user !== undefined) query = query.where('user', '=', user);
        const rows = await query.orderBy('created_at').orderBy(ctx.byteOrder('id')).execute();
        return rows.map(toRecord);
      });
    },

    revoke(id, actor) {
      return ctx.tx(async (trx) => {
        const revoked = await trx
          .updateTable('refresh_tokens')
          .set({ revoked_at: ctx.now() })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .returning(['user', 'service'])
          .executeTakeFirst();
        if (revoked === undefined) {
          // Already revoked: keep the first time, record nothing new.
          const exists = await trx.selectFrom('refresh_tokens').select('id').where('id', '=', id).executeTakeFirst();
          if (exists === undefined) throw new StoreNotFoundError('refresh_token', id);
          return;
        }
        await recordChange(trx, ctx, { actor, action: 'refresh.revoke', target: id, details: { user: revoked.user, service: revoked.service } });
      });
    },

    // The user may be a config-file user the store knows only by its tokens: a name that is
    // neither a stored user nor the owner of any refresh token is the one that does not exist.
    revokeForUser(user, actor) {
      return ctx.tx(async (trx) => {
        const result = await trx
          .updateTable('refresh_tokens')
          .set({ revoked_at: ctx.now() })
          .where('user', '=', user)
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        const count = Number(result.numUpdatedRows);
        if (count === 0) {
          const known =
            (await trx.selectFrom('users').select('id').where('name', '=', user).executeTakeFirst()) ??
            (await trx.selectFrom('refresh_tokens').select('id').where('user', '=', user).limit(1).executeTakeFirst());
          if (known === undefined) throw new StoreNotFoundError('user', user);
        }
        await recordChange(trx, ctx, { actor, action: 'refresh.revoke_user', target: user, details: { count } });
        return count;
      });
    },

    revokeAll(actor) {
      return ctx.tx(async (trx) => {
        const result = await trx.updateTable('refresh_tokens').set({ revoked_at: ctx.now() }).where('revoked_at', 'is', null).executeTakeFirst();
        const count = Number(result.numUpdatedRows);
        await recordChange(trx, ctx, { actor, action: 'refresh.revoke_all', target: '*', details: { count } });
        return count;
      });
    },
  };
}
