import { parseJson, recordChange } from './context.js';
import type { StoreContext } from './context.js';
import { newId } from './ids.js';
import type { AccessTokensTable } from './schema.js';
import { StoreConflictError, StoreNotFoundError } from './types.js';
import type { AccessTokenRecord, Store } from './types.js';

function toRecord(row: AccessTokensTable): AccessTokenRecord {
  return {
    id: row.id,
    user: row.user,
    name: row.name,
    digest: row.digest,
    scopes: parseJson<string[]>(row.scopes),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    lastUsedIp: row.last_used_ip,
    revokedAt: row.revoked_at,
  };
}

/**
 * Access tokens. The owner is a name, not checked here: it may be a user of the config file,
 * which only the caller knows (see migrations.ts).
 */
export function accessTokensApi(ctx: StoreContext): Store['accessTokens'] {
  return {
    async create(input, actor) {
      const row: AccessTokensTable = {
        id: newId('at'),
        user: input.user,
        name: input.name,
        digest: input.digest,
        scopes: JSON.stringify(input.scopes),
        created_at: ctx.now(),
        expires_at: input.expiresAt,
        last_used_at: null,
        last_used_ip: null,
        revoked_at: null,
      };
      await ctx.tx(
        async (trx) => {
          await trx.insertInto('access_tokens').values(row).execute();
          await recordChange(trx, ctx, {
            actor,
            action: 'token.create',
            target: row.id,
            details: { user: input.user, name: input.name, scopes: input.scopes, expiresAt: input.expiresAt },
          });
        },
        // The digest never goes into an error: a message may end up in a log.
        { unique: (where) => new StoreConflictError('access_token', where.includes('digest') ? '(same digest)' : input.name) },
      );
      return toRecord(row);
    },

    findByDigest(digest) {
      return ctx.run(async (db) => {
        const row = await db.selectFrom('access_tokens').selectAll().where('digest', '=', digest).executeTakeFirst();
        return row === undefined ? undefined : toRecord(row);
      });
    },

    get(id) {
      return ctx.run(async (db) => {
        const row = await db.selectFrom('access_tokens').selectAll().where('id', '=', id).executeTakeFirst();
        return row === undefined ? undefined : toRecord(row);
      });
    },

    // One UPDATE by primary key and no change row: this runs on every use of a token.
    touch(id, at, ip) {
      return ctx.run(async (db) => {
        await db.updateTable('access_tokens').set({ last_used_at: at, last_used_ip: ip }).where('id', '=', id).execute();
      });
    },

    list(user) {
      return ctx.run(async (db) => {
        let query = db.selectFrom('access_tokens').selectAll();
        if (user !== undefined) query = query.where('user', '=', user);
        const rows = await query.orderBy('created_at').orderBy(ctx.byteOrder('id')).execute();
        return rows.map(toRecord);
      });
    },

    revoke(id, actor) {
      return ctx.tx(async (trx) => {
        // The condition on revoked_at makes a second (or concurrent) revocation keep the first
        // time and record nothing new.
        const revoked = await trx
          .updateTable('access_tokens')
          .set({ revoked_at: ctx.now() })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .returning(['user', 'name'])
          .executeTakeFirst();
        if (revoked === undefined) {
          const exists = await trx.selectFrom('access_tokens').select('id').where('id', '=', id).executeTakeFirst();
          if (exists === undefined) throw new StoreNotFoundError('access_token', id);
          return;
        }
        await recordChange(trx, ctx, { actor, action: 'token.revoke', target: id, details: { user: revoked.user, name: revoked.name } });
      });
    },
  };
}
