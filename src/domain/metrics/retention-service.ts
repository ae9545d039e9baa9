/**
 * Retention: raw samples, 1-minute and 1-hour rollups (and the other time-series tables:
 * scrape runs, self-health checks, API key usage, expired sessions) are removed past their
 * retention. Raw samples go by whole UTC days: the cutoff is rounded down to midnight, day
 * partitions that end by then are dropped, and only the default partition (old imports)
 * sees a row-by-row delete — so raw samples are kept at least their retention, at most a
 * day longer. The daily job runs once across instances (a lease with a minimum interval);
 * `warden db cleanup` runs the same on demand, optionally as a dry run that only counts.
 */
import { sql, type Kysely } from 'kysely';
import type { HealthConfig, MetricsConfig } from '../../config/index.js';
import type { DB } from '../../db/schema.js';
import { ValidationError } from '../../errors.js';
import { SingletonJobs } from '../../jobs/singleton.js';
import { SamplePartitions, dayStart } from './partitions.js';

const DAY_MS = 86_400_000;
/** API key usage is kept 90 days (see the access area). */
const API_KEY_USAGE_RETENTION_DAYS = 90;

export interface CleanupOptions {
  /** Remove raw data (samples, scrape runs, health checks, key usage) older than this many days instead of its retention. */
  readonly daysOld?: number;
  /** Count what would be removed; remove nothing. */
  readonly dryRun?: boolean;
}

export interface CleanupTable {
  readonly table: string;
  /**
   * Rows older than this are removed. For raw samples: midnight of the cutoff day, held
   * back to what the rollups have covered (the epoch when they have never run).
   */
  readonly cutoff: Date;
  /** Rows removed (or, in a dry run, that would be). */
  readonly rows: number;
}

export interface CleanupReport {
  readonly dryRun: boolean;
  readonly tables: CleanupTable[];
  readonly totalRows: number;
  readonly durationMs: number;
}

interface Rule {
  readonly table: keyof DB;
  readonly column: string;
  readonly days: number;
  /** Extra condition, e.g. only expired sessions. */
  readonly cutoffColumnIsExpiry?: boolean;
}

export class RetentionService {
  private readonly singleton: SingletonJobs;
  private readonly partitions: SamplePartitions;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly config: MetricsConfig,
    private readonly health: Pick<HealthConfig, 'retentionDays'>,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.singleton = new SingletonJobs(db);
    this.partitions = new SamplePartitions(db);
  }

  private rules(daysOld: number | undefined): Rule[] {
    return [
      { table: 'metric_samples', column: 'ts', days: daysOld ?? this.config.retentionRawDays },
      { table: 'metric_rollups_1m', column: 'bucket', days: this.config.retention1mDays },
      { table: 'metric_rollups_1h', column: 'bucket', days: this.config.retention1hDays },
      { table: 'scrape_runs', column: 'ts', days: daysOld ?? this.config.retentionRawDays },
      { table: 'health_checks', column: 'ts', days: daysOld ?? this.health.retentionDays },
      { table: 'api_key_usage', column: 'bucket', days: daysOld ?? API_KEY_USAGE_RETENTION_DAYS },
      { table: 'sessions', column: 'expires_at', days: 0, cutoffColumnIsExpiry: true },
    ];
  }

  /** Removes (or counts) rows past their retention, table by table. */
  async cleanup(options: CleanupOptions = {}): Promise<CleanupReport> {
    const daysOld = options.daysOld;
    if (daysOld !== undefined && (!Number.isInteger(daysOld) || daysOld < 1 || daysOld > 36500)) {
      throw new ValidationError(
        'days-old',
        `days-old must be a whole number of days between 1 and 36500, got ${daysOld}`,
      );
    }
    const started = performance.now();
    const nowMs = this.clock().getTime();
    const dryRun = options.dryRun === true;
    const tables: CleanupTable[] = [];
    for (const rule of this.rules(daysOld)) {
      if (rule.table === 'metric_samples') {
        tables.push({ table: rule.table, ...(await this.removeSamples(new Date(nowMs - rule.days * DAY_MS), dryRun)) });
        continue;
      }
      const cutoff = new Date(nowMs - rule.days * DAY_MS);
      tables.push({ table: rule.table, cutoff, rows: await this.removeRows(rule, cutoff, dryRun) });
    }
    return {
      dryRun,
      tables,
      totalRows: tables.reduce((sum, t) => sum + t.rows, 0),
      durationMs: Math.round(performance.now() - started),
    };
  }

  private async removeRows(rule: Rule, cutoff: Date, dryRun: boolean): Promise<number> {
    const table = sql.table(rule.table);
    const column = sql.ref(rule.column);
    if (dryRun) {
      const counted = await sql<{
        n: number;
      }>`select count(*)::int8 as n from ${table} where ${column} < ${cutoff}`.execute(this.db);
      return counted.rows[0]?.n ?? 0;
    }
    const deleted = await sql`delete from ${table} where ${column} < ${cutoff}`.execute(this.db);
    return Number(deleted.numAffectedRows ?? 0n);
  }

  /**
   * Drops the day partitions that end by `cutoff`, then deletes older rows left in the
   * default partition. Raw samples the rollups have not covered yet are kept: the cutoff
   * never passes the rollup watermark (minus the grace window) nor a pending rewind, and
   * before the first rollup run no raw sample is removed.
   */
  private async removeSamples(cutoff: Date, dryRun: boolean): Promise<{ cutoff: Date; rows: number }> {
    const state = await this.db.selectFrom('metric_rollup_state').select(['watermark', 'rewind_to']).executeTakeFirst();
    if (state?.watermark === null || state?.watermark === undefined) {
      return { cutoff: new Date(0), rows: 0 };
    }
    let limitMs = Math.min(cutoff.getTime(), state.watermark.getTime() - this.config.rollupGraceMs);
    if (state.rewind_to !== null) {
      limitMs = Math.min(limitMs, state.rewind_to.getTime());
    }
    const effective = new Date(dayStart(limitMs));
    if (dryRun) {
      const counted = await sql<{
        n: number;
      }>`select count(*)::int8 as n from metric_samples where ts < ${effective}`.execute(this.db);
      return { cutoff: effective, rows: counted.rows[0]?.n ?? 0 };
    }
    let rows = 0;
    for (const partition of await this.partitions.expired(effective)) {
      rows += await this.partitions.rowCount(partition);
      await this.partitions.drop(partition);
    }
    const deleted = await sql`delete from metric_samples where ts < ${effective}`.execute(this.db);
    return { cutoff: effective, rows: rows + Number(deleted.numAffectedRows ?? 0n) };
  }

  /**
   * The daily run: at most once per ~day across every instance sharing the database.
   * Returns the report, or undefined when another instance ran it recently or holds it.
   */
  async runDaily(): Promise<CleanupReport | undefined> {
    let report: CleanupReport | undefined;
    await this.singleton.runExclusive(
      'metrics-retention',
      { leaseMs: 3_600_000, minIntervalMs: 23 * 3_600_000 },
      async () => {
        report = await this.cleanup();
        return {
          total_rows: report.totalRows,
          tables: Object.fromEntries(report.tables.map((t) => [t.table, t.rows])),
        };
      },
    );
    return report;
  }
}
