/**
 * All SQL of host metrics writes: hosts, series, samples. Batches are one statement each
 * (`unnest` over arrays); the arrays are sent as array literals built here, which is much
 * cheaper than letting the driver escape thousands of parameters one by one.
 */
import { sql, type Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';

/** A series to resolve: host id, metric name, canonical label JSON. */
export interface SeriesKey {
  readonly hostId: number;
  readonly metric: string;
  readonly labelsJson: string;
  readonly unit: string | null;
}

/** Columns of a batch of samples, index-aligned. */
export interface SampleColumns {
  readonly seriesIds: readonly number[];
  /** Milliseconds since the epoch. */
  readonly tsMs: readonly number[];
  readonly values: readonly number[];
}

/** `{1,2,3}`: an array literal of finite numbers (validated by the caller). */
export function numberArrayLiteral(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

/** `{"a","b"}`: an array literal of text, each element quoted and escaped. */
export function textArrayLiteral(values: readonly (string | null)[]): string {
  return `{${values.map((v) => (v === null ? 'NULL' : `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`)).join(',')}}`;
}

export class MetricsRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /**
   * Creates hosts seen for the first time and moves the seen times of the given ones (a
   * soft-deleted host that reports again is restored). First/last seen only ever widen.
   * Returns name → id.
   */
  async upsertHosts(
    hosts: readonly { name: string; firstSeenMs: number; lastSeenMs: number }[],
    intervalS: number | null,
    db: Kysely<DB> = this.db,
  ): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    if (hosts.length === 0) {
      return ids;
    }
    const result = await sql<{ id: number; name: string }>`
      insert into hosts (name, interval_s, first_seen_at, last_seen_at)
      select name, ${intervalS}::int4, to_timestamp(first_ms / 1000.0), to_timestamp(last_ms / 1000.0)
      from unnest(
        ${textArrayLiteral(hosts.map((h) => h.name))}::text[],
        ${numberArrayLiteral(hosts.map((h) => h.firstSeenMs))}::float8[],
        ${numberArrayLiteral(hosts.map((h) => h.lastSeenMs))}::float8[]
      ) as t(name, first_ms, last_ms)
      on conflict (name) do update
        set first_seen_at = least(hosts.first_seen_at, excluded.first_seen_at),
            last_seen_at = greatest(hosts.last_seen_at, excluded.last_seen_at),
            interval_s = coalesce(excluded.interval_s, hosts.interval_s),
            deleted_at = null
      returning id, name
    `.execute(db);
    for (const row of result.rows) {
      ids.set(row.name, row.id);
    }
    return ids;
  }

  /**
   * Resolves series ids, creating the missing series. Returns ids aligned with `keys`.
   * Two statements: an insert that skips existing series, then a lookup that also sees
   * series another instance created concurrently.
   */
  async resolveSeries(
    keys: readonly SeriesKey[],
    db: Kysely<DB> = this.db,
  ): Promise<{ ids: number[]; created: number }> {
    if (keys.length === 0) {
      return { ids: [], created: 0 };
    }
    const hostIds = numberArrayLiteral(keys.map((k) => k.hostId));
    const names = textArrayLiteral(keys.map((k) => k.metric));
    const labels = textArrayLiteral(keys.map((k) => k.labelsJson));
    const units = textArrayLiteral(keys.map((k) => k.unit));
    const inserted = await sql`
      insert into metric_series (host_id, name, labels, unit)
      select host_id, name, labels, unit
      from unnest(${hostIds}::int8[], ${names}::text[], ${labels}::jsonb[], ${units}::text[]) as t(host_id, name, labels, unit)
      on conflict (host_id, name, labels) do nothing
    `.execute(db);
    const found = await sql<{ ord: number; id: number }>`
      select t.ord, s.id
      from unnest(${hostIds}::int8[], ${names}::text[], ${labels}::jsonb[]) with ordinality as t(host_id, name, labels, ord)
      join metric_series s on s.host_id = t.host_id and s.name = t.name and s.labels = t.labels
    `.execute(db);
    const ids = new Array<number>(keys.length);
    for (const row of found.rows) {
      ids[row.ord - 1] = row.id;
    }
    return { ids, created: Number(inserted.numAffectedRows ?? 0n) };
  }

  /** Inserts a batch in one statement; samples already stored (same series and ts) are skipped. Returns rows inserted. */
  async insertSamples(columns: SampleColumns, db: Kysely<DB> = this.db): Promise<number> {
    if (columns.seriesIds.length === 0) {
      return 0;
    }
    const result = await sql`
      insert into metric_samples (series_id, ts, value)
      select series_id, to_timestamp(ts_ms / 1000.0), value
      from unnest(
        ${numberArrayLiteral(columns.seriesIds)}::int8[],
        ${numberArrayLiteral(columns.tsMs)}::float8[],
        ${numberArrayLiteral(columns.values)}::float8[]
      ) as t(series_id, ts_ms, value)
      on conflict (series_id, ts) do nothing
    `.execute(db);
    return Number(result.numAffectedRows ?? 0n);
  }

  /**
   * Late samples: when `oldest` is before the rollup watermark minus the grace window,
   * the next rollup run must start from it. One single-row update, only for such batches.
   */
  async rewindRollups(oldest: Date, graceMs: number, db: Kysely<DB> = this.db): Promise<void> {
    await sql`
      update metric_rollup_state
      set rewind_to = least(coalesce(rewind_to, ${oldest}::timestamptz), ${oldest}::timestamptz)
      where watermark is not null and ${oldest}::timestamptz < watermark - ${graceMs} * interval '1 millisecond'
    `.execute(db);
  }
}
