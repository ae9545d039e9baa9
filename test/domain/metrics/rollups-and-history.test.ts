import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IngestService } from '../../../src/domain/metrics/ingest-service.js';
import { MetricsQueryService } from '../../../src/domain/metrics/query-service.js';
import { RetentionService } from '../../../src/domain/metrics/retention-service.js';
import { RollupService } from '../../../src/domain/metrics/rollup-service.js';
import { SingletonJobs } from '../../../src/jobs/singleton.js';
import type { SampleInput } from '../../../src/domain/metrics/types.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

function stats(values: readonly number[]): { count: number; avg: number; min: number; max: number; stddev: number } {
  const count = values.length;
  const avg = values.reduce((a, b) => a + b, 0) / count;
  const variance = values.reduce((a, b) => a + (b - avg) ** 2, 0) / (count - 1);
  return { count, avg, min: Math.min(...values), max: Math.max(...values), stddev: Math.sqrt(variance) };
}

/** A deterministic wavy signal with a slow upward trend of 6 per hour. */
function signal(tsMs: number, startMs: number): number {
  const minutes = (tsMs - startMs) / MINUTE;
  return 1e9 + 50 + 10 * Math.sin(minutes / 7) + (minutes / 60) * 6;
}

describe.each(ENGINES)('rollups, history and retention on %s', (engine) => {
  let t: TestDatabase;
  let ingest: IngestService;
  let rollups: RollupService;
  let query: MetricsQueryService;
  const nowMs = Math.floor(Date.now() / MINUTE) * MINUTE;
  const startMs = Math.floor(nowMs / HOUR) * HOUR - 3 * HOUR;
  const values: number[] = [];

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    ingest = new IngestService(t.database.db, t.config.metrics);
    rollups = new RollupService(t.database.db, t.config.metrics);
    query = new MetricsQueryService(t.database.db, t.config.metrics);
    const samples: SampleInput[] = [];
    for (let ts = startMs; ts < nowMs - 2 * MINUTE; ts += 10_000) {
      const value = signal(ts, startMs);
      values.push(value);
      samples.push({ host: 'web-1', metric: 'net.rx_bytes_per_s', value, ts });
    }
    await ingest.ingest(samples);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('rolls raw samples up into 1-minute and 1-hour buckets whose combined figures equal the raw ones', async () => {
    const run = await rollups.run();
    expect(run.ran).toBe(true);
    const minutes = await t.database.db.selectFrom('metric_rollups_1m').selectAll().orderBy('bucket').execute();
    expect(minutes.length).toBe(Math.ceil((nowMs - 2 * MINUTE - startMs) / MINUTE));
    expect(minutes[0]).toMatchObject({ bucket: new Date(startMs), count: 6 });
    expect(minutes.reduce((n, m) => n + m.count, 0)).toBe(values.length);
    const hours = await t.database.db.selectFrom('metric_rollups_1h').selectAll().orderBy('bucket').execute();
    // Three whole hours, plus the current one when the last sample (2 minutes ago) falls into it.
    const lastSampleMs = startMs + (values.length - 1) * 10_000;
    const expectedHours: number[] = [];
    for (let h = startMs; h <= lastSampleMs; h += HOUR) {
      expectedHours.push(h);
    }
    expect(hours.map((h) => h.bucket.getTime())).toEqual(expectedHours);
    expect(hours[0]?.count).toBe(360);

    // The whole range summarized from 1-hour buckets gives the raw count, mean, extremes and stddev.
    const expected = stats(values);
    const fromHours = await query.history({
      host: 'web-1',
      metric: 'net.rx_bytes_per_s',
      from: startMs - 40 * DAY,
      to: nowMs,
    });
    const summary = fromHours.series[0]?.summary;
    expect(fromHours.summarySource).toBe('1h');
    expect(summary?.count).toBe(expected.count);
    expect(summary?.avg).toBeCloseTo(expected.avg, 4);
    expect(summary?.min).toBe(expected.min);
    expect(summary?.max).toBe(expected.max);
    // Values near 1e9 with a spread of ~10: a sum of squares would lose this completely.
    expect(summary?.stddev).toBeCloseTo(expected.stddev, 4);
    expect(summary?.first).toEqual({ ts: new Date(startMs), value: values[0] });
  });

  it('summarizes a day from raw samples with exact percentiles and the least-squares trend', async () => {
    const history = await query.history({ host: 'web-1', metric: 'net.rx_bytes_per_s', from: nowMs - DAY, to: nowMs });
    expect(history.summarySource).toBe('raw');
    expect(history.stepS).toBe(120);
    expect(history.source).toBe('1m');
    const summary = history.series[0]?.summary;
    const sorted = [...values].sort((a, b) => a - b);
    const p95Index = 0.95 * (sorted.length - 1);
    const lower = sorted[Math.floor(p95Index)] as number;
    const upper = sorted[Math.ceil(p95Index)] as number;
    expect(summary?.p95).toBeCloseTo(lower + (upper - lower) * (p95Index - Math.floor(p95Index)), 6);
    expect(summary?.stddev).toBeCloseTo(stats(values).stddev, 4);
    // The signal rises 6 per hour plus a sine: the fitted slope is close to 6.
    expect(summary?.trendPerHour).toBeGreaterThan(4);
    expect(summary?.trendPerHour).toBeLessThan(8);
    // Points every 2 minutes, each the mean of its 12 samples.
    const points = history.series[0]?.points ?? [];
    expect(points[0]?.count).toBe(12);
    expect(points.reduce((n, p) => n + p.count, 0)).toBe(values.length);
  });

  it('reads raw samples for a fine step and names the source', async () => {
    const history = await query.history({
      host: 'web-1',
      metric: 'net.rx_bytes_per_s',
      from: startMs,
      to: startMs + 10 * MINUTE,
      step: '10s',
    });
    expect(history.source).toBe('raw');
    expect(history.series[0]?.points.map((p) => p.avg)).toEqual(values.slice(0, 60));
  });

  it('folds late samples in: within the grace window on the next run, older ones by rewinding', async () => {
    await rollups.run();
    const lateTs = nowMs - 90 * MINUTE + 5000; // older than watermark − grace (5 min)
    const inGraceTs = nowMs - 3 * MINUTE + 5000;
    await ingest.ingest([
      { host: 'web-1', metric: 'net.rx_bytes_per_s', value: 2e9, ts: lateTs },
      { host: 'web-1', metric: 'net.rx_bytes_per_s', value: 3e9, ts: inGraceTs },
    ]);
    const state = await rollups.state();
    expect(state.rewindTo?.getTime()).toBe(lateTs);
    await rollups.run();
    const late = await t.database.db
      .selectFrom('metric_rollups_1m')
      .selectAll()
      .where('bucket', '=', new Date(Math.floor(lateTs / MINUTE) * MINUTE))
      .executeTakeFirstOrThrow();
    expect(late.max).toBe(2e9);
    expect(late.count).toBe(7);
    const inGrace = await t.database.db
      .selectFrom('metric_rollups_1m')
      .selectAll()
      .where('bucket', '=', new Date(Math.floor(inGraceTs / MINUTE) * MINUTE))
      .executeTakeFirstOrThrow();
    expect(inGrace.max).toBe(3e9);
    const hour = await t.database.db
      .selectFrom('metric_rollups_1h')
      .select(['max', 'count'])
      .where('bucket', '=', new Date(Math.floor(lateTs / HOUR) * HOUR))
      .executeTakeFirstOrThrow();
    expect(hour.max).toBe(2e9);
    expect((await rollups.state()).rewindTo).toBeNull();
    // Running again changes nothing: buckets are recomputed, not added to.
    await rollups.run();
    const again = await t.database.db
      .selectFrom('metric_rollups_1m')
      .select('count')
      .where('bucket', '=', late.bucket)
      .executeTakeFirstOrThrow();
    expect(again.count).toBe(7);
  });

  it('rolls samples older than the 1-minute retention straight into hours, without 1-minute buckets', async () => {
    const oldHour = Math.floor((Date.now() - 100 * DAY) / HOUR) * HOUR;
    await ingest.ingest(
      [
        { host: 'legacy', metric: 'cpu.usage_pct', value: 10, ts: oldHour + 60_000 },
        { host: 'legacy', metric: 'cpu.usage_pct', value: 30, ts: oldHour + 30 * 60_000 },
      ],
      { oldestMs: oldHour - DAY },
    );
    await rollups.run();
    const hour = await sql<{ count: number; sum: number; min: number; max: number; m2: number }>`
      select r.count, r.sum, r.min, r.max, r.m2 from metric_rollups_1h r
      join metric_series s on s.id = r.series_id join hosts h on h.id = s.host_id
      where h.name = 'legacy'`.execute(t.database.db);
    expect(hour.rows).toEqual([{ count: 2, sum: 40, min: 10, max: 30, m2: 200 }]);
    const minutes = await sql<{ n: number }>`
      select count(*)::int8 as n from metric_rollups_1m where bucket < ${new Date(Date.now() - 90 * DAY)}`.execute(
      t.database.db,
    );
    expect(minutes.rows[0]?.n).toBe(0);
  });

  it('runs the rollup on one instance at a time', async () => {
    const other = new SingletonJobs(t.database.db, 'other-instance');
    expect(await other.claim('metrics-rollup', { leaseMs: 60_000, minIntervalMs: 0 })).toBe(true);
    const skipped = await rollups.run();
    expect(skipped.ran).toBe(false);
    await other.release('metrics-rollup', {});
    expect((await rollups.run()).ran).toBe(true);
  });

  it('rejects bad queries naming the field, and answers 404 for an unknown series', async () => {
    await expect(query.history({ host: 'web-1', metric: 'Bad Name' })).rejects.toMatchObject({ field: 'metric' });
    await expect(
      query.history({ host: 'web-1', metric: 'cpu.usage_pct', from: nowMs, to: nowMs - 1 }),
    ).rejects.toMatchObject({
      field: 'from',
    });
    await expect(
      query.history({ host: 'web-1', metric: 'net.rx_bytes_per_s', step: '1s', from: nowMs - 30 * DAY }),
    ).rejects.toMatchObject({
      field: 'step',
    });
    await expect(query.history({ host: 'web-1', metric: 'net.rx_bytes_per_s', step: 'soon' })).rejects.toMatchObject({
      field: 'step',
    });
    await expect(query.history({ host: 'nope', metric: 'cpu.usage_pct' })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('selects series by labels and lists hosts with status and latest key values', async () => {
    const ts = Date.now();
    await ingest.ingest(
      [
        { host: 'db-1', metric: 'disk.used_pct', value: 71, labels: { mount: '/' }, ts },
        { host: 'db-1', metric: 'disk.used_pct', value: 12, labels: { mount: '/data' }, ts },
        { host: 'db-1', metric: 'cpu.usage_pct', value: 33, ts },
        { host: 'db-1', metric: 'net.rx_bytes_per_s', value: 1000, labels: { interface: 'eth0' }, ts },
        { host: 'db-1', metric: 'net.rx_bytes_per_s', value: 500, labels: { interface: 'eth1' }, ts },
        { host: 'db-1', metric: 'net.rx_bytes_per_s', value: 7777, labels: { interface: 'gone0' }, ts: ts - 3_600_000 },
      ],
      { intervalS: 10 },
    );
    const both = await query.history({ host: 'db-1', metric: 'disk.used_pct' });
    expect(both.series.map((s) => s.series.labels)).toEqual([{ mount: '/' }, { mount: '/data' }]);
    const root = await query.history({ host: 'db-1', metric: 'disk.used_pct{mount="/"}' });
    expect(root.series).toHaveLength(1);
    expect(root.series[0]?.summary.last?.value).toBe(71);

    const hosts = await query.hosts();
    const db1 = hosts.find((h) => h.name === 'db-1');
    expect(db1?.status).toBe('reporting');
    expect(db1?.latest['disk.used_pct{mount="/"}']?.value).toBe(71);
    expect(db1?.latest['cpu.usage_pct']?.value).toBe(33);
    // Network is the sum over interfaces that reported lately; an interface silent for an hour is left out.
    expect(db1?.latest['net.rx_bytes_per_s']?.value).toBe(1500);
    expect(db1?.seriesCount).toBe(6);
    // web-1 declared no interval: the default collect interval (10 s) applies; it last reported now too.
    await t.database.db
      .updateTable('hosts')
      .set({ last_seen_at: new Date(Date.now() - 31_000) })
      .where('name', '=', 'db-1')
      .execute();
    expect((await query.hosts()).find((h) => h.name === 'db-1')?.status).toBe('stale');
  });

  it('removes data past retention per table, and a dry run only counts', async () => {
    const retention = new RetentionService(t.database.db, t.config.metrics, t.config.health);
    const old = Date.now() - 20 * DAY;
    await ingest.ingest([{ host: 'old', metric: 'load.1', value: 1, ts: old }]);
    // Not rolled up yet: raw retention holds back rather than lose the sample (the two
    // 100-day-old legacy samples, already rolled up, would go).
    const pending = await retention.cleanup({ daysOld: 10, dryRun: true });
    expect(pending.tables.find((r) => r.table === 'metric_samples')?.rows).toBe(2);
    await rollups.run();
    await sql`insert into metric_rollups_1m (series_id, bucket, count, sum, min, max, m2)
              values (1, ${new Date(Date.now() - 100 * DAY)}, 1, 1, 1, 1, 0)`.execute(t.database.db);
    const scrapeTarget = await t.database.db
      .insertInto('scrape_targets')
      .values({ name: 'retention', url: 'http://127.0.0.1:9100/metrics', host_name: 'retention' })
      .returning('id')
      .executeTakeFirstOrThrow();
    await sql`insert into scrape_runs (target_id, ts, status, duration_ms)
              values (${scrapeTarget.id}, ${new Date(Date.now() - 11 * DAY)}, 'ok', 1),
                     (${scrapeTarget.id}, ${new Date(Date.now() - 9 * DAY)}, 'ok', 1)`.execute(t.database.db);
    const dry = await retention.cleanup({ daysOld: 10, dryRun: true });
    const rowsOf = (report: typeof dry, table: string): number | undefined =>
      report.tables.find((r) => r.table === table)?.rows;
    expect(dry.dryRun).toBe(true);
    expect(rowsOf(dry, 'metric_samples')).toBe(3);
    expect(rowsOf(dry, 'metric_rollups_1m')).toBe(1);
    expect(rowsOf(dry, 'scrape_runs')).toBe(1);
    const real = await retention.cleanup({ daysOld: 10 });
    expect(rowsOf(real, 'metric_samples')).toBe(3);
    expect(rowsOf(real, 'metric_rollups_1m')).toBe(1);
    expect(rowsOf(real, 'metric_rollups_1h')).toBe(0);
    expect(rowsOf(real, 'scrape_runs')).toBe(1);
    const runsLeft = await t.database.db.selectFrom('scrape_runs').select('ts').execute();
    expect(runsLeft.map((r) => Math.round((Date.now() - r.ts.getTime()) / DAY))).toEqual([9]);
    expect((await retention.cleanup({ daysOld: 10 })).totalRows).toBe(0);
    // Within the default 30-day raw retention nothing recent is touched.
    const left = await sql<{ n: number }>`select count(*)::int8 as n from metric_samples`.execute(t.database.db);
    expect(left.rows[0]?.n).toBe(values.length + 2 + 6);
    await expect(retention.cleanup({ daysOld: 0 })).rejects.toMatchObject({ field: 'days-old' });
  });

  it('runs the daily retention once across instances', async () => {
    const a = new RetentionService(t.database.db, t.config.metrics, t.config.health);
    const b = new RetentionService(t.database.db, t.config.metrics, t.config.health);
    const first = await a.runDaily();
    expect(first).toBeDefined();
    expect(await b.runDaily()).toBeUndefined();
    expect(await a.runDaily()).toBeUndefined();
  });
});
