/**
 * All SQL of login sessions (`sessions`). A session is found by the SHA-256 hash of its
 * token; the token itself is never stored.
 */
import { sql, type Kysely } from 'kysely';
import type { DB, Role } from '../../db/schema.js';

export interface NewSession {
  readonly tokenHash: string;
  readonly userId: number;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly ip: string | null;
  readonly userAgent: string | null;
}

/** A session joined with the user it belongs to, as authentication needs it. */
export interface SessionWithUser {
  readonly sessionId: number;
  readonly userId: number;
  readonly expiresAt: Date;
  readonly lastSeenAt: Date;
  readonly email: string;
  readonly role: Role;
  readonly disabledAt: Date | null;
}

export class SessionsRepository {
  /** Pass a transaction as `db` to run the methods inside it. */
  constructor(private readonly db: Kysely<DB>) {}

  async insert(session: NewSession): Promise<number> {
    const row = await this.db
      .insertInto('sessions')
      .values({
        token_hash: session.tokenHash,
        user_id: session.userId,
        created_at: session.createdAt,
        last_seen_at: session.createdAt,
        expires_at: session.expiresAt,
        ip: session.ip,
        user_agent: session.userAgent,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  async findByTokenHash(tokenHash: string): Promise<SessionWithUser | undefined> {
    const row = await this.db
      .selectFrom('sessions as s')
      .innerJoin('users as u', 'u.id', 's.user_id')
      .select([
        's.id as session_id',
        's.user_id',
        's.expires_at',
        's.last_seen_at',
        'u.email',
        'u.role',
        'u.disabled_at',
      ])
      .where('s.token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (row === undefined) {
      return undefined;
    }
    return {
      sessionId: row.session_id,
      userId: row.user_id,
      expiresAt: row.expires_at,
      lastSeenAt: row.last_seen_at,
      email: row.email,
      role: row.role,
      disabledAt: row.disabled_at,
    };
  }

  /**
   * Slides the expiry, unless the session was written after `notWrittenSince`: concurrent
   * requests of one session then make one write, not one each.
   */
  async extend(sessionId: number, lastSeenAt: Date, expiresAt: Date, notWrittenSince: Date): Promise<boolean> {
    const result = await this.db
      .updateTable('sessions')
      .set({ last_seen_at: lastSeenAt, expires_at: expiresAt })
      .where('id', '=', sessionId)
      .where('last_seen_at', '<=', notWrittenSince)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Deletes the session with this token hash; returns its user, if there was one. */
  async deleteByTokenHash(tokenHash: string): Promise<{ userId: number; email: string } | undefined> {
    const result = await sql<{ user_id: number; email: string }>`
      delete from sessions s
      using users u
      where u.id = s.user_id and s.token_hash = ${tokenHash}
      returning s.user_id, u.email
    `.execute(this.db);
    const row = result.rows[0];
    return row === undefined ? undefined : { userId: row.user_id, email: row.email };
  }

  /** Deletes every session of the user (disable, password reset); returns how many. */
  async deleteByUserId(userId: number): Promise<number> {
    const result = await this.db.deleteFrom('sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Deletes sessions that expired at or before `now`; returns how many. */
  async deleteExpired(now: Date): Promise<number> {
    const result = await this.db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
