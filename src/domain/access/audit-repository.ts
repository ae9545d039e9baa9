/**
 * All SQL of the audit log (`audit_log`). The log is append-only: this repository can
 * insert and read, and deliberately has no update or delete.
 */
import { sql, type Kysely } from 'kysely';
import type { ActorType, DB, JsonValue } from '../../db/schema.js';

/** One audit row as services and edges see it. */
export interface AuditEntry {
  readonly id: number;
  readonly ts: Date;
  readonly actorType: ActorType;
  readonly actorId: number | null;
  readonly actorLabel: string;
  readonly action: string;
  readonly entityType: string;
  readonly entityId: string | null;
  readonly before: JsonValue | null;
  readonly after: JsonValue | null;
  readonly ip: string | null;
}

export type NewAuditEntry = Omit<AuditEntry, 'id'>;

/**
 * Where a page ends, in the sort order (ts desc, id desc). `ts` is the exact stored
 * timestamp with microseconds (`2026-06-01T12:00:00.123456Z`): a JS Date keeps only
 * milliseconds, and rows written by the database default `now()` carry microseconds, so
 * a millisecond cursor could skip or repeat rows.
 */
export interface AuditPosition {
  readonly ts: string;
  readonly id: number;
}

export interface AuditQuery {
  readonly entityType?: string;
  readonly entityId?: string;
  /** Matches the actor label case-insensitively, or the actor id when it is a number. */
  readonly actor?: string;
  /** Inclusive lower bound on `ts`. */
  readonly from?: Date;
  /** Exclusive upper bound on `ts`. */
  readonly to?: Date;
  /** Only rows after this position in the sort order (the previous page's last row). */
  readonly after?: AuditPosition;
  readonly limit: number;
}

export interface AuditRow {
  readonly entry: AuditEntry;
  readonly position: AuditPosition;
}

function jsonb(value: JsonValue | null) {
  // Serialized here: node-postgres would turn a top-level array into a PostgreSQL array.
  return value === null ? null : sql<JsonValue>`${JSON.stringify(value)}::jsonb`;
}

export class AuditRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /** Appends one row; returns its id. Pass a transaction as the repository's db to join it. */
  async insert(entry: NewAuditEntry): Promise<number> {
    const row = await this.db
      .insertInto('audit_log')
      .values({
        ts: entry.ts,
        actor_type: entry.actorType,
        actor_id: entry.actorId,
        actor_label: entry.actorLabel,
        action: entry.action,
        entity_type: entry.entityType,
        entity_id: entry.entityId,
        before: jsonb(entry.before),
        after: jsonb(entry.after),
        ip: entry.ip,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  /** Rows matching the query, newest first (ts desc, id desc), at most `limit`. */
  async list(query: AuditQuery): Promise<AuditRow[]> {
    let select = this.db
      .selectFrom('audit_log')
      .select([
        'id',
        'ts',
        'actor_type',
        'actor_id',
        'actor_label',
        'action',
        'entity_type',
        'entity_id',
        'before',
        'after',
        'ip',
      ])
      .select(sql<string>`to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('ts_exact'));
    if (query.entityType !== undefined) {
      select = select.where('entity_type', '=', query.entityType);
    }
    if (query.entityId !== undefined) {
      select = select.where('entity_id', '=', query.entityId);
    }
    if (query.actor !== undefined) {
      const actor = query.actor;
      const actorId = /^[1-9][0-9]{0,14}$/.test(actor) ? Number(actor) : undefined;
      select = select.where((eb) =>
        eb.or([
          eb(sql<string>`lower(actor_label)`, '=', sql<string>`lower(${actor})`),
          ...(actorId === undefined ? [] : [eb('actor_id', '=', actorId)]),
        ]),
      );
    }
    if (query.from !== undefined) {
      select = select.where('ts', '>=', query.from);
    }
    if (query.to !== undefined) {
      select = select.where('ts', '<', query.to);
    }
    if (query.after !== undefined) {
      const { ts, id } = query.after;
      select = select.where(sql<boolean>`(ts, id) < (${ts}::timestamptz, ${id}::int8)`);
    }
    const rows = await select.orderBy('ts', 'desc').orderBy('id', 'desc').limit(query.limit).execute();
    return rows.map((r) => ({
      entry: {
        id: r.id,
        ts: r.ts,
        actorType: r.actor_type,
        actorId: r.actor_id,
        actorLabel: r.actor_label,
        action: r.action,
        entityType: r.entity_type,
        entityId: r.entity_id,
        before: r.before,
        after: r.after,
        ip: r.ip,
      },
      position: { ts: r.ts_exact, id: r.id },
    }));
  }
}
