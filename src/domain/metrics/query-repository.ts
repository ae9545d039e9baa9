/**
 * All SQL of reading host metrics: series lookup, history points, summaries (from raw
 * samples or from rollups), and the host list with latest key values.
 */
import { sql, type Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import { numberArrayLiteral } from './repository.js';
import type { HistoryPoint, Labels, RollupSource, SeriesInfo, SeriesSummary } from './types.js';

const ROLLUP_TABLE = { '1m': 'metric_rollups_1m', '1h': 'metric_rollups_1h' } as const;

export interface SeriesFilter {
  readonly seriesId?: number;
  readonly host?: string;
  readonly metric?: string;
  /** Every given label must match exactly; other labels of the series are free. */
  readonly labels?: Labels;
}

export interface HostRow {
  readonly id: number;
  readonly name: string;
  readonly labels: Labels;
  readonly intervalS: number | null;
  readonly firstSeenAt: Date;
  readonly lastSeenAt: Date;
  readonly seriesCount: number;
  /** Latest value of each key metric (keyed by its display name). */
  readonly latest: Record<string, { value: number; ts: string }>;
}

type SummaryRow = {
  series_id: number;
  n: number;
  avg: number | null;
  min: number | null;
  max: number | null;
  sd: number | null;
  pct: number[] | null;
  slope: number | null;
};

export class MetricsQueryRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /** Series matching the filter (live hosts only), ordered by host, metric and labels. */
  async findSeries(filter: SeriesFilter, limit: number): Promise<SeriesInfo[]> {
    let query = this.db
      .selectFrom('metric_series as s')
      .innerJoin('hosts as h', 'h.id', 's.host_id')
      .select(['s.id', 's.host_id', 'h.name as host', 's.name as metric', 's.labels', 's.unit'])
      .where('h.deleted_at', 'is', null);
    if (filter.seriesId !== undefined) {
      query = query.where('s.id', '=', filter.seriesId);
    }
    if (filter.host !== undefined) {
      query = query.where('h.name', '=', filter.host);
    }
    if (filter.metric !== undefined) {
      query = query.where('s.name', '=', filter.metric);
    }
    if (filter.labels !== undefined && Object.keys(filter.labels).length > 0) {
      query = query.where(sql<boolean>`s.labels @> ${JSON.stringify(filter.labels)}::jsonb`);
    }
    const rows = await query.orderBy('h.name').orderBy('s.name').orderBy('s.labels').limit(limit).execute();
    return rows.map((r) => ({
      id: r.id,
      hostId: r.host_id,
      host: r.host,
      metric: r.metric,
      labels: r.labels,
      unit: r.unit,
    }));
  }

  /** Points of each series in [from, to), aggregated per `stepS`, from the given source. */
  async points(
    seriesIds: readonly number[],
    from: Date,
    to: Date,
    stepS: number,
    source: RollupSource,
  ): Promise<Map<number, HistoryPoint[]>> {
    const ids = numberArrayLiteral(seriesIds);
    const result =
      source === 'raw'
        ? await sql<{ series_id: number; t: number; avg: number; min: number; max: number; n: number }>`
            select series_id, floor(date_part('epoch', ts) / ${stepS}) * ${stepS} as t,
                   avg(value) as avg, min(value) as min, max(value) as max, count(*)::int8 as n
            from metric_samples
            where series_id = any(${ids}::int8[]) and ts >= ${from} and ts < ${to}
            group by series_id, t
            order by series_id, t
          `.execute(this.db)
        : await sql<{ series_id: number; t: number; avg: number; min: number; max: number; n: number }>`
            select series_id, floor(date_part('epoch', bucket) / ${stepS}) * ${stepS} as t,
                   sum(sum) / sum(count) as avg, min(min) as min, max(max) as max, sum(count)::int8 as n
            from ${sql.table(ROLLUP_TABLE[source])}
            where series_id = any(${ids}::int8[]) and bucket >= ${from} and bucket < ${to}
            group by series_id, t
            order by series_id, t
          `.execute(this.db);
    const bySeries = new Map<number, HistoryPoint[]>(seriesIds.map((id) => [id, []]));
    for (const row of result.rows) {
      bySeries.get(row.series_id)?.push({
        ts: new Date(Number(row.t) * 1000),
        avg: row.avg,
        min: row.min,
        max: row.max,
        count: row.n,
      });
    }
    return bySeries;
  }

  /** Summary of each series in [from, to): exact from raw samples, combined from rollups otherwise. */
  async summaries(
    seriesIds: readonly number[],
    from: Date,
    to: Date,
    source: RollupSource,
  ): Promise<Map<number, SeriesSummary>> {
    const ids = numberArrayLiteral(seriesIds);
    const rows =
      source === 'raw'
        ? await sql<SummaryRow>`
            select series_id, count(*)::int8 as n, avg(value) as avg, min(value) as min, max(value) as max,
                   stddev_samp(value) as sd,
                   percentile_cont(array[0.5, 0.95, 0.99]) within group (order by value) as pct,
                   regr_slope(value, date_part('epoch', ts)) * 3600 as slope
            from metric_samples
            where series_id = any(${ids}::int8[]) and ts >= ${from} and ts < ${to}
            group by series_id
          `.execute(this.db)
        : await sql<SummaryRow>`
            with b as (
              select series_id, bucket, count, sum, min, max, m2, sum / count as mean
              from ${sql.table(ROLLUP_TABLE[source])}
              where series_id = any(${ids}::int8[]) and bucket >= ${from} and bucket < ${to}
            ), t as (
              select series_id, sum(count) as n, sum(sum) / sum(count) as mean from b group by series_id
            )
            select b.series_id, t.n::int8 as n, t.mean as avg, min(b.min) as min, max(b.max) as max,
                   case when t.n > 1
                     then sqrt(greatest((sum(b.m2) + sum(b.count * power(b.mean - t.mean, 2))) / (t.n - 1), 0))
                   end as sd,
                   percentile_cont(array[0.5, 0.95, 0.99]) within group (order by b.mean) as pct,
                   regr_slope(b.mean, date_part('epoch', b.bucket)) * 3600 as slope
            from b join t on t.series_id = b.series_id
            group by b.series_id, t.n, t.mean
          `.execute(this.db);
    const edges = await sql<{
      id: number;
      first_ts: Date | null;
      first_value: number | null;
      last_ts: Date | null;
      last_value: number | null;
    }>`
      select s.id, f.ts as first_ts, f.value as first_value, l.ts as last_ts, l.value as last_value
      from unnest(${ids}::int8[]) as s(id)
      left join lateral (
        select ts, value from metric_samples where series_id = s.id and ts >= ${from} and ts < ${to} order by ts limit 1
      ) f on true
      left join lateral (
        select ts, value from metric_samples where series_id = s.id and ts >= ${from} and ts < ${to} order by ts desc limit 1
      ) l on true
    `.execute(this.db);
    const edgeById = new Map(edges.rows.map((e) => [e.id, e]));
    const summaries = new Map<number, SeriesSummary>();
    const byId = new Map(rows.rows.map((r) => [r.series_id, r]));
    for (const id of seriesIds) {
      const row = byId.get(id);
      const edge = edgeById.get(id);
      summaries.set(id, {
        count: row?.n ?? 0,
        avg: row?.avg ?? null,
        min: row?.min ?? null,
        max: row?.max ?? null,
        stddev: row?.sd ?? null,
        p50: row?.pct?.[0] ?? null,
        p95: row?.pct?.[1] ?? null,
        p99: row?.pct?.[2] ?? null,
        first:
          edge?.first_ts === null || edge?.first_ts === undefined
            ? null
            : { ts: edge.first_ts, value: edge.first_value as number },
        last:
          edge?.last_ts === null || edge?.last_ts === undefined
            ? null
            : { ts: edge.last_ts, value: edge.last_value as number },
        trendPerHour: row?.slope ?? null,
        source,
      });
    }
    return summaries;
  }

  /**
   * Live hosts with their series count and the latest value of each key metric, in one
   * statement (each latest value is one descending index lookup).
   */
  async listHosts(
    keyMetrics: readonly { name: string; labels: Labels; key: string; total?: boolean }[],
  ): Promise<HostRow[]> {
    const names = keyMetrics.map((k) => k.name);
    const labels = keyMetrics.map((k) => JSON.stringify(k.labels));
    const keys = keyMetrics.map((k) => k.key);
    const totals = keyMetrics.map((k) => k.total === true);
    // A `total` key sums the latest values of every label set of the metric (e.g. network
    // over all interfaces), counting only series that reported within 10 minutes of the
    // host's last report, so a removed interface does not linger in the sum.
    const result = await sql<{
      id: number;
      name: string;
      labels: Labels;
      interval_s: number | null;
      first_seen_at: Date;
      last_seen_at: Date;
      series_count: number;
      latest: Record<string, { value: number; ts: string }> | null;
    }>`
      select h.id, h.name, h.labels, h.interval_s, h.first_seen_at, h.last_seen_at,
             (select count(*) from metric_series c where c.host_id = h.id)::int8 as series_count,
             k.latest
      from hosts h
      left join lateral (
        select jsonb_object_agg(x.key, jsonb_build_object('value', x.value, 'ts', x.ts)) as latest
        from (
          select km.key, sum(l.value) as value, max(l.ts) as ts
          from unnest(${names}::text[], ${labels}::jsonb[], ${keys}::text[], ${totals}::bool[])
               as km(name, labels, key, total)
          join metric_series s on s.host_id = h.id and s.name = km.name and (km.total or s.labels = km.labels)
          cross join lateral (
            select m.value, m.ts from metric_samples m where m.series_id = s.id order by m.ts desc limit 1
          ) l
          where not km.total or l.ts >= h.last_seen_at - interval '10 minutes'
          group by km.key
        ) x
      ) k on true
      where h.deleted_at is null
      order by h.name
    `.execute(this.db);
    return result.rows.map((r) => ({
      id: r.id,
      name: r.name,
      labels: r.labels,
      intervalS: r.interval_s,
      firstSeenAt: r.first_seen_at,
      lastSeenAt: r.last_seen_at,
      seriesCount: r.series_count,
      latest: r.latest ?? {},
    }));
  }

  /** Soft-deletes a live host; returns its name, or undefined when there is none. */
  async softDeleteHost(id: number, db: Kysely<DB> = this.db): Promise<string | undefined> {
    const row = await db
      .updateTable('hosts')
      .set({ deleted_at: new Date() })
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .returning('name')
      .executeTakeFirst();
    return row?.name;
  }
}
