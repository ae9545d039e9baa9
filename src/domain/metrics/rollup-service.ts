/**
 * Rollups: 1-minute buckets from raw samples and 1-hour buckets from 1-minute ones,
 * maintained incrementally behind a watermark.
 *
 * A run recomputes every bucket from `watermark - grace` (or from the oldest late sample
 * that ingest recorded in `rewind_to`, if earlier) up to now, the current partial buckets
 * included, then moves the watermark to the start of the current minute. Recomputing
 * (upsert with the new aggregate) rather than adding makes a run idempotent: samples that
 * arrived late are folded in, nothing is counted twice. Hours are recomputed from the
 * start of the hour of `from`; hours older than the 1-minute retention (imports of old
 * data) are computed straight from raw samples instead of through 1-minute buckets. Work is cut into chunks of CHUNK_MS so one statement never
 * spans an unbounded range (a large import rewinds far).
 *
 * One instance runs it at a time (a lease in singleton_job_runs).
 */
import { sql, type Kysely } from 'kysely';
import type { MetricsConfig } from '../../config/index.js';
import type { DB } from '../../db/schema.js';
import { SingletonJobs } from '../../jobs/singleton.js';
import type { Logger } from '../../logger.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Each statement covers at most this much time. */
const CHUNK_MS = 6 * HOUR_MS;
/** The lease of a run; a run taking longer lets another instance start one (harmless: upserts). */
const LEASE_MS = 15 * MINUTE_MS;

export interface RollupRun {
  /** Whether this instance ran it (false: another instance holds the lease). */
  readonly ran: boolean;
  readonly buckets1m: number;
  readonly buckets1h: number;
  /** Start of the recomputed range; null when there was nothing to roll up. */
  readonly from: Date | null;
  readonly to: Date;
}

function floorTo(ms: number, unit: number): number {
  return Math.floor(ms / unit) * unit;
}

export class RollupService {
  private readonly singleton: SingletonJobs;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly config: MetricsConfig,
    private readonly logger?: Logger,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.singleton = new SingletonJobs(db);
  }

  /** One incremental run (see the file comment). */
  async run(): Promise<RollupRun> {
    const now = this.clock();
    const outcome = await this.singleton.runExclusive(
      'metrics-rollup',
      { leaseMs: LEASE_MS, minIntervalMs: 0 },
      async () => {
        const run = await this.runClaimed(now);
        return {
          buckets_1m: run.buckets1m,
          buckets_1h: run.buckets1h,
          from: run.from?.toISOString() ?? null,
          to: run.to.toISOString(),
        };
      },
    );
    if (outcome === undefined) {
      return { ran: false, buckets1m: 0, buckets1h: 0, from: null, to: now };
    }
    return {
      ran: true,
      buckets1m: outcome.buckets_1m,
      buckets1h: outcome.buckets_1h,
      from: outcome.from === null ? null : new Date(outcome.from),
      to: new Date(outcome.to),
    };
  }

  private async runClaimed(now: Date): Promise<{ buckets1m: number; buckets1h: number; from: Date | null; to: Date }> {
    const started = performance.now();
    const state = await this.db.selectFrom('metric_rollup_state').selectAll().executeTakeFirstOrThrow();
    const nowMs = now.getTime();
    // Nothing older than the longest retention is worth rolling up.
    const floorMs = floorTo(nowMs - this.config.retention1hDays * DAY_MS, HOUR_MS);
    let fromMs: number | null;
    if (state.watermark === null) {
      const oldest = await sql<{ ts: Date | null }>`select min(ts) as ts from metric_samples`.execute(this.db);
      const oldestTs = oldest.rows[0]?.ts ?? null;
      fromMs = oldestTs === null ? null : oldestTs.getTime();
    } else {
      fromMs = state.watermark.getTime() - this.config.rollupGraceMs;
    }
    const rewindTo = state.rewind_to;
    if (rewindTo !== null && (fromMs === null || rewindTo.getTime() < fromMs)) {
      fromMs = rewindTo.getTime();
    }
    const watermark = new Date(floorTo(nowMs, MINUTE_MS));
    if (fromMs === null) {
      await this.saveState(watermark, rewindTo, started, 0);
      return { buckets1m: 0, buckets1h: 0, from: null, to: now };
    }
    fromMs = Math.max(fromMs, floorMs);
    const minutesFrom = floorTo(fromMs, MINUTE_MS);
    // Hours are recomputed from 1-minute buckets (60 rows per series and hour): cheap, so
    // the whole hour of `from` is redone.
    const hoursFrom = floorTo(fromMs, HOUR_MS);
    const toMs = nowMs + 1; // the current partial minute and hour included
    // 1-minute buckets older than their retention would be removed at once: hours before
    // that line are computed straight from raw samples (an import of old data).
    const minuteLineMs = floorTo(nowMs - this.config.retention1mDays * DAY_MS, HOUR_MS);
    // A far rewind (an import) is covered in at most ~24 statements per kind.
    const chunkMs = Math.max(CHUNK_MS, Math.ceil((toMs - hoursFrom) / 24 / HOUR_MS) * HOUR_MS);

    let buckets1m = 0;
    let buckets1h = 0;
    for (let chunkFrom = hoursFrom; chunkFrom < Math.min(minuteLineMs, toMs); chunkFrom += chunkMs) {
      const chunkTo = Math.min(chunkFrom + chunkMs, minuteLineMs, toMs);
      buckets1h += await this.rollupHoursFromRaw(new Date(chunkFrom), new Date(chunkTo));
    }
    for (let chunkFrom = Math.max(minutesFrom, minuteLineMs); chunkFrom < toMs; chunkFrom += chunkMs) {
      buckets1m += await this.rollupMinutes(new Date(chunkFrom), new Date(Math.min(chunkFrom + chunkMs, toMs)));
    }
    for (let chunkFrom = Math.max(hoursFrom, minuteLineMs); chunkFrom < toMs; chunkFrom += chunkMs) {
      buckets1h += await this.rollupHours(new Date(chunkFrom), new Date(Math.min(chunkFrom + chunkMs, toMs)));
    }
    await this.saveState(watermark, rewindTo, started, buckets1m + buckets1h);
    this.logger?.debug({ from: new Date(minutesFrom), buckets1m, buckets1h }, 'metric rollups updated');
    return { buckets1m, buckets1h, from: new Date(minutesFrom), to: now };
  }

  /**
   * Moves the watermark and clears the rewind mark — but only the mark this run read: a
   * late batch that rewound it meanwhile keeps its (earlier or different) value.
   */
  private async saveState(watermark: Date, rewindRead: Date | null, started: number, buckets: number): Promise<void> {
    await sql`
      update metric_rollup_state
      set watermark = ${watermark},
          rewind_to = case when rewind_to is not distinct from ${rewindRead}::timestamptz then null else rewind_to end,
          last_run_at = now(),
          last_duration_ms = ${performance.now() - started},
          last_buckets = ${buckets}
      where id
    `.execute(this.db);
  }

  /** Recomputes the 1-minute buckets in [from, to) from raw samples; returns buckets written. */
  async rollupMinutes(from: Date, to: Date): Promise<number> {
    return this.rollupFromRaw('metric_rollups_1m', 'minute', from, to);
  }

  /** Recomputes the 1-hour buckets in [from, to) straight from raw samples; `from` on an hour boundary. */
  async rollupHoursFromRaw(from: Date, to: Date): Promise<number> {
    return this.rollupFromRaw('metric_rollups_1h', 'hour', from, to);
  }

  private async rollupFromRaw(
    table: 'metric_rollups_1m' | 'metric_rollups_1h',
    unit: 'minute' | 'hour',
    from: Date,
    to: Date,
  ): Promise<number> {
    const result = await sql`
      insert into ${sql.table(table)} (series_id, bucket, count, sum, min, max, m2)
      select series_id, date_trunc(${sql.lit(unit)}, ts), count(*), sum(value), min(value), max(value),
             coalesce(var_pop(value), 0) * count(*)
      from metric_samples
      where ts >= ${from} and ts < ${to}
      group by series_id, date_trunc(${sql.lit(unit)}, ts)
      on conflict (series_id, bucket) do update
        set count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max, m2 = excluded.m2
    `.execute(this.db);
    return Number(result.numAffectedRows ?? 0n);
  }

  /**
   * Recomputes the 1-hour buckets in [from, to) from 1-minute buckets; `from` must be on
   * an hour boundary. m2 combines exactly: Σ m2ᵢ + Σ nᵢ (meanᵢ − mean)².
   */
  async rollupHours(from: Date, to: Date): Promise<number> {
    const result = await sql`
      insert into metric_rollups_1h (series_id, bucket, count, sum, min, max, m2)
      select series_id, hour, sum(count), sum(sum), min(min), max(max),
             sum(m2 + count * power(sum / count - hour_mean, 2))
      from (
        select series_id, date_trunc('hour', bucket) as hour, count, sum, min, max, m2,
               sum(sum) over w / sum(count) over w as hour_mean
        from metric_rollups_1m
        where bucket >= ${from} and bucket < ${to}
        window w as (partition by series_id, date_trunc('hour', bucket))
      ) minutes
      group by series_id, hour
      on conflict (series_id, bucket) do update
        set count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max, m2 = excluded.m2
    `.execute(this.db);
    return Number(result.numAffectedRows ?? 0n);
  }

  /** The rollup state for /database/status and tests. */
  async state(): Promise<{ watermark: Date | null; rewindTo: Date | null; lastRunAt: Date | null }> {
    const row = await this.db.selectFrom('metric_rollup_state').selectAll().executeTakeFirstOrThrow();
    return { watermark: row.watermark, rewindTo: row.rewind_to, lastRunAt: row.last_run_at };
  }
}
