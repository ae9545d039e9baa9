/**
 * All SQL of Prometheus scrape targets (`scrape_targets`) and their history (`scrape_runs`).
 *
 * Invariants:
 * - soft-deleted targets (`deleted_at` set) are invisible here except to `recordRun`, and
 *   their names are free again (the unique index covers live targets only);
 * - a target is claimed by moving its `next_scrape_at` one interval ahead in the statement
 *   that selects it (`for update skip locked`), so several Warden instances on one database
 *   never scrape the same target in the same round;
 * - `error` / `last_error` is set only for a failed scrape (why it failed), `notes` /
 *   `last_notes` only for a successful one (what it left out: samples over the cap, NaN
 *   values), so nobody reads notes as a failure.
 */
import { sql, type Kysely, type Selectable } from 'kysely';
import type { DB, ScrapeRunsTable, ScrapeStatus, ScrapeTargetsTable } from '../../db/schema.js';
import { sqlStateOf } from '../../db/instrumentation.js';

export type { ScrapeStatus } from '../../db/schema.js';

/** A target's configuration, as written by create and update. */
export interface ScrapeTargetValues {
  readonly name: string;
  readonly url: string;
  /** The host its samples are stored under. */
  readonly hostName: string;
  readonly intervalS: number;
  readonly timeoutMs: number;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly enabled: boolean;
}

/** A target as the rest of Warden sees it: its configuration plus its state. */
export interface ScrapeTarget extends ScrapeTargetValues {
  readonly id: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly deletedAt: Date | null;
  /** When it is due next (claimed scrapes move it one interval ahead). */
  readonly nextScrapeAt: Date;
  readonly lastScrapeAt: Date | null;
  readonly lastStatus: ScrapeStatus | null;
  /** Why the last scrape failed; null when it did not. */
  readonly lastError: string | null;
  /** What the last successful scrape left out; null when nothing. */
  readonly lastNotes: string | null;
  readonly lastDurationMs: number | null;
  readonly lastSamples: number | null;
  /** Failed scrapes in a row; 0 after a successful one. */
  readonly consecutiveFailures: number;
}

/** One scrape of one target. */
export interface ScrapeRun {
  readonly id: number;
  readonly targetId: number;
  /** When the scrape started (the time its samples are stored at). */
  readonly ts: Date;
  readonly status: ScrapeStatus;
  readonly durationMs: number;
  /** Samples stored. */
  readonly samples: number;
  readonly error: string | null;
  readonly notes: string | null;
}

/** The outcome of a scrape, to record. */
export interface ScrapeOutcome {
  readonly ts: Date;
  readonly status: ScrapeStatus;
  readonly durationMs: number;
  readonly samples: number;
  /** Why it failed; null when status is ok. */
  readonly error: string | null;
  /** What it left out; null when status is failed or nothing was left out. */
  readonly notes: string | null;
}

const TARGET_COLUMNS = [
  'id',
  'name',
  'url',
  'host_name',
  'interval_s',
  'timeout_ms',
  'include_patterns',
  'exclude_patterns',
  'enabled',
  'created_at',
  'updated_at',
  'deleted_at',
  'next_scrape_at',
  'last_scrape_at',
  'last_status',
  'last_error',
  'last_notes',
  'last_duration_ms',
  'last_samples',
  'consecutive_failures',
] as const;

type TargetRow = Pick<Selectable<ScrapeTargetsTable>, (typeof TARGET_COLUMNS)[number]>;
type RunRow = Selectable<ScrapeRunsTable>;

/** `returning` list of the raw statements that write a target. */
const RETURNING_TARGET = sql.join(TARGET_COLUMNS.map((c) => sql.ref(c)));

/** The configuration columns written by both insert and update. */
function configurationColumns(values: ScrapeTargetValues) {
  return {
    name: values.name,
    url: values.url,
    host_name: values.hostName,
    interval_s: values.intervalS,
    timeout_ms: values.timeoutMs,
    include_patterns: sql<string[]>`${[...values.include]}::text[]`,
    exclude_patterns: sql<string[]>`${[...values.exclude]}::text[]`,
    enabled: values.enabled,
  };
}

function toTarget(row: TargetRow): ScrapeTarget {
  return {
    id: Number(row.id),
    name: row.name,
    url: row.url,
    hostName: row.host_name,
    intervalS: row.interval_s,
    timeoutMs: row.timeout_ms,
    include: row.include_patterns,
    exclude: row.exclude_patterns,
    enabled: row.enabled,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deletedAt: row.deleted_at,
    nextScrapeAt: row.next_scrape_at,
    lastScrapeAt: row.last_scrape_at,
    lastStatus: row.last_status,
    lastError: row.last_error,
    lastNotes: row.last_notes,
    lastDurationMs: row.last_duration_ms,
    lastSamples: row.last_samples,
    consecutiveFailures: row.consecutive_failures,
  };
}

function toRun(row: RunRow): ScrapeRun {
  return {
    id: Number(row.id),
    targetId: Number(row.target_id),
    ts: row.ts,
    status: row.status,
    durationMs: row.duration_ms,
    samples: row.samples,
    error: row.error,
    notes: row.notes,
  };
}

/** The name is taken by another live target. */
export class ScrapeTargetNameTaken extends Error {}

export class ScrapeRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /** Inserts a target, due at once; undefined when a live target has this name (any letter case). */
  async insert(values: ScrapeTargetValues, at: Date): Promise<ScrapeTarget | undefined> {
    const row = await this.db
      .insertInto('scrape_targets')
      .values({ ...configurationColumns(values), created_at: at, updated_at: at, next_scrape_at: at })
      // The only unique keys are the identity and lower(name) of live targets.
      .onConflict((oc) => oc.doNothing())
      .returning(TARGET_COLUMNS)
      .executeTakeFirst();
    return row === undefined ? undefined : toTarget(row);
  }

  /** Live targets by name (letter case ignored). */
  async list(): Promise<ScrapeTarget[]> {
    const rows = await this.db
      .selectFrom('scrape_targets')
      .select(TARGET_COLUMNS)
      .where('deleted_at', 'is', null)
      .orderBy(sql`lower(name)`)
      .orderBy('id')
      .execute();
    return rows.map(toTarget);
  }

  /** A live target; `forUpdate` locks it until the transaction ends. */
  async findById(id: number, options: { forUpdate?: boolean } = {}): Promise<ScrapeTarget | undefined> {
    let query = this.db
      .selectFrom('scrape_targets')
      .select(TARGET_COLUMNS)
      .where('id', '=', id)
      .where('deleted_at', 'is', null);
    if (options.forUpdate === true) {
      query = query.forUpdate();
    }
    const row = await query.executeTakeFirst();
    return row === undefined ? undefined : toTarget(row);
  }

  /**
   * Writes a live target's configuration and makes it due at once, so a change shows in
   * the next scrape. Throws ScrapeTargetNameTaken when another live target has the name.
   */
  async update(id: number, values: ScrapeTargetValues, at: Date): Promise<ScrapeTarget | undefined> {
    try {
      const row = await this.db
        .updateTable('scrape_targets')
        .set({ ...configurationColumns(values), updated_at: at, next_scrape_at: at })
        .where('id', '=', id)
        .where('deleted_at', 'is', null)
        .returning(TARGET_COLUMNS)
        .executeTakeFirst();
      return row === undefined ? undefined : toTarget(row);
    } catch (error) {
      if (sqlStateOf(error) === '23505') {
        throw new ScrapeTargetNameTaken(values.name, { cause: error });
      }
      throw error;
    }
  }

  /** Soft-deletes a live target; undefined when there is none with this id. */
  async softDelete(id: number, at: Date): Promise<ScrapeTarget | undefined> {
    const row = await this.db
      .updateTable('scrape_targets')
      .set({ deleted_at: at, updated_at: at })
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .returning(TARGET_COLUMNS)
      .executeTakeFirst();
    return row === undefined ? undefined : toTarget(row);
  }

  /**
   * Claims up to `limit` due targets (enabled, live, `next_scrape_at` passed), oldest due
   * first, by moving each one interval ahead. Rows another instance is claiming right now
   * are skipped, not waited for; a row it has just claimed is no longer due.
   */
  async claimDue(limit: number): Promise<ScrapeTarget[]> {
    const result = await sql<TargetRow>`
      update scrape_targets
      set next_scrape_at = now() + interval_s * interval '1 second'
      where id in (
        select id from scrape_targets
        where enabled and deleted_at is null and next_scrape_at <= now()
        order by next_scrape_at
        limit ${limit}
        for update skip locked
      )
      returning ${RETURNING_TARGET}
    `.execute(this.db);
    return result.rows.map(toTarget).sort((a, b) => a.nextScrapeAt.getTime() - b.nextScrapeAt.getTime());
  }

  /** Claims one live target now, due or not, enabled or not (scrape on request). */
  async claim(id: number): Promise<ScrapeTarget | undefined> {
    const result = await sql<TargetRow>`
      update scrape_targets
      set next_scrape_at = now() + interval_s * interval '1 second'
      where id = ${id} and deleted_at is null
      returning ${RETURNING_TARGET}
    `.execute(this.db);
    const row = result.rows[0];
    return row === undefined ? undefined : toTarget(row);
  }

  /**
   * Records a scrape in one statement: a `scrape_runs` row, and the target's last-scrape
   * columns with its failure streak (reset by success, counted up by failure).
   */
  async recordRun(targetId: number, outcome: ScrapeOutcome): Promise<ScrapeRun> {
    const result = await sql<RunRow>`
      with run as (
        insert into scrape_runs (target_id, ts, status, duration_ms, samples, error, notes)
        values (${targetId}, ${outcome.ts}, ${outcome.status}, ${outcome.durationMs}, ${outcome.samples}, ${outcome.error}, ${outcome.notes})
        returning id, target_id, ts, status, duration_ms, samples, error, notes
      ), target as (
        update scrape_targets
        set last_scrape_at = ${outcome.ts},
            last_status = ${outcome.status},
            last_error = ${outcome.error},
            last_notes = ${outcome.notes},
            last_duration_ms = ${outcome.durationMs},
            last_samples = ${outcome.samples},
            consecutive_failures = case when ${outcome.status}::text = 'ok' then 0 else consecutive_failures + 1 end
        where id = ${targetId}
      )
      select id, target_id, ts, status, duration_ms, samples, error, notes from run
    `.execute(this.db);
    const row = result.rows[0];
    if (row === undefined) {
      throw new Error(`recording a scrape of target ${targetId} returned no row`);
    }
    return toRun(row);
  }

  /** The latest runs of a target, newest first. */
  async listRuns(targetId: number, limit: number): Promise<ScrapeRun[]> {
    const rows = await this.db
      .selectFrom('scrape_runs')
      .selectAll()
      .where('target_id', '=', targetId)
      .orderBy('ts', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toRun);
  }
}
