/** Catalog queries about Warden's own database: sizes, row estimates, counts, cache hits. */
import { sql, type Kysely } from 'kysely';
import type { DB, JsonValue } from '../../db/schema.js';

export interface TableStats {
  readonly table: string;
  readonly rowEstimate: number;
  readonly totalBytes: number;
}

export interface MetricsUpkeep {
  readonly rollupWatermark: Date | null;
  readonly rollupRewindTo: Date | null;
  readonly rollupLastRunAt: Date | null;
  readonly rollupLastDurationMs: number | null;
  readonly dayPartitions: number;
  readonly oldestPartition: string | null;
  readonly newestPartition: string | null;
  readonly singletonJobs: {
    name: string;
    claimedBy: string | null;
    lastStartedAt: Date | null;
    lastFinishedAt: Date | null;
    lastResult: JsonValue | null;
    lastError: string | null;
  }[];
}

/** Tables below this estimate are counted exactly for `/status`; larger ones report the estimate. */
const EXACT_COUNT_LIMIT = 100_000;

export class SystemRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async databaseSizeBytes(): Promise<number> {
    const result = await sql<{ bytes: number }>`select pg_database_size(current_database())::int8 as bytes`.execute(
      this.db,
    );
    return result.rows[0]?.bytes ?? 0;
  }

  /**
   * Per-table row estimate and total size (table, indexes, TOAST). The estimate is
   * reltuples, which is -1 before the first ANALYZE; then the live-tuple counter is used.
   * A partitioned table is reported once, with the sums over its partitions.
   */
  async tableStats(): Promise<TableStats[]> {
    const result = await sql<{ table: string; estimate: number; live: number | null; bytes: number }>`
      with rel as (
        select c.oid, c.relname, c.relkind, c.relispartition,
               case when c.reltuples >= 0 then c.reltuples::int8 else coalesce(s.n_live_tup, 0)::int8 end as estimate,
               pg_total_relation_size(c.oid)::int8 as bytes
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_stat_user_tables s on s.relid = c.oid
        where n.nspname = 'public' and c.relkind in ('r', 'p')
      )
      select r.relname as table,
             case when r.relkind = 'p'
               then (select coalesce(sum(p.estimate), 0)::int8 from pg_inherits i join rel p on p.oid = i.inhrelid where i.inhparent = r.oid)
               else r.estimate end as estimate,
             null::int8 as live,
             case when r.relkind = 'p'
               then (select coalesce(sum(p.bytes), 0)::int8 from pg_inherits i join rel p on p.oid = i.inhrelid where i.inhparent = r.oid)
               else r.bytes end as bytes
      from rel r
      where not r.relispartition
      order by r.relname
    `.execute(this.db);
    return result.rows.map((r) => ({
      table: r.table,
      rowEstimate: r.estimate >= 0 ? r.estimate : (r.live ?? 0),
      totalBytes: r.bytes,
    }));
  }

  /** Row count per table: exact for small tables, the estimate for large ones. */
  async rowCounts(): Promise<{ table: string; rows: number; exact: boolean }[]> {
    const stats = await this.tableStats();
    const counts: { table: string; rows: number; exact: boolean }[] = [];
    for (const table of stats) {
      if (table.rowEstimate >= EXACT_COUNT_LIMIT) {
        counts.push({ table: table.table, rows: table.rowEstimate, exact: false });
        continue;
      }
      const result = await sql<{ n: number }>`select count(*)::int8 as n from ${sql.table(table.table)}`.execute(
        this.db,
      );
      counts.push({ table: table.table, rows: result.rows[0]?.n ?? 0, exact: true });
    }
    return counts;
  }

  /**
   * Upkeep of the metric tables: the rollup watermark and its last run, the day partitions
   * of raw samples, and the last runs of the jobs that run once across instances.
   */
  async metricsUpkeep(): Promise<MetricsUpkeep> {
    const [rollup, partitions, jobs] = await Promise.all([
      this.db.selectFrom('metric_rollup_state').selectAll().executeTakeFirst(),
      sql<{ name: string }>`
        select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = 'metric_samples'::regclass and c.relname like 'metric\_samples\_p%'
        order by c.relname
      `.execute(this.db),
      this.db
        .selectFrom('singleton_job_runs')
        .select(['name', 'claimed_by', 'last_started_at', 'last_finished_at', 'last_result', 'last_error'])
        .orderBy('name')
        .execute(),
    ]);
    const names = partitions.rows.map((r) => r.name);
    return {
      rollupWatermark: rollup?.watermark ?? null,
      rollupRewindTo: rollup?.rewind_to ?? null,
      rollupLastRunAt: rollup?.last_run_at ?? null,
      rollupLastDurationMs: rollup?.last_duration_ms ?? null,
      dayPartitions: names.length,
      oldestPartition: names[0] ?? null,
      newestPartition: names[names.length - 1] ?? null,
      singletonJobs: jobs.map((j) => ({
        name: j.name,
        claimedBy: j.claimed_by,
        lastStartedAt: j.last_started_at,
        lastFinishedAt: j.last_finished_at,
        lastResult: j.last_result,
        lastError: j.last_error,
      })),
    };
  }

  /** Buffer cache hit ratio of this database since the statistics were reset (null when unknown). */
  async cacheHitRatio(): Promise<number | null> {
    const result = await sql<{ hit: number | null; read: number | null }>`
      select blks_hit::int8 as hit, blks_read::int8 as read
      from pg_stat_database where datname = current_database()
    `.execute(this.db);
    const row = result.rows[0];
    if (row === undefined || row.hit === null || row.read === null || row.hit + row.read === 0) {
      return null;
    }
    return Math.round((row.hit / (row.hit + row.read)) * 10_000) / 10_000;
  }
}
