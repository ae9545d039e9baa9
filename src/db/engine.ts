/**
 * Engine selection: one Kysely<DB> whatever the engine.
 * - `pglite`: embedded PostgreSQL in a data directory (or in memory for tests).
 * - `postgresql`: a node-postgres pool against DATABASE_URL.
 */
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { redactUrl, type DatabaseConfig } from '../config/index.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { QueryInstrumentation } from './instrumentation.js';
import { lockDataDir } from './lock.js';
import { PGliteDialect } from './pglite-dialect.js';
import type { DB } from './schema.js';
import { pgliteParsers, pgTypes } from './types.js';

export type EngineName = 'pglite' | 'postgresql';

export interface PoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
  readonly max: number;
}

/** An open database: the instrumented Kysely instance plus what operating it needs. */
export interface Database {
  readonly engine: EngineName;
  /** Instrumented: every query is timed, counted and checked for slowness. */
  readonly db: Kysely<DB>;
  /** The same connections without instrumentation (benchmarks compare the two). */
  readonly rawDb: Kysely<DB>;
  readonly instrumentation: QueryInstrumentation;
  /** Data directory of the embedded engine; undefined for PostgreSQL or in-memory PGlite. */
  readonly dataDir: string | undefined;
  /** Pool state on PostgreSQL; undefined on PGlite (one connection). */
  poolStats(): PoolStats | undefined;
  close(): Promise<void>;
}

export class DatabaseUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DatabaseUnavailableError';
  }
}

export interface OpenOptions {
  readonly config: DatabaseConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Embedded only: keep the database in memory (tests). */
  readonly inMemory?: boolean;
  /** Embedded only: start from a data-directory tarball made by `dumpDataDir` (test templates). */
  readonly loadDataDir?: Blob;
}

export async function openDatabase(options: OpenOptions): Promise<Database> {
  return options.config.engine === 'postgresql' ? openPostgres(options) : openPGlite(options);
}

/**
 * PGlite starts PostgreSQL with `-F` (fsync off) by default. Warden drops that flag: with
 * fsync on, a commit reported to the caller has been written and flushed through the
 * file system, so it survives `kill -9` of the process (and, as far as the file system
 * honours fsync, a crash of the machine). The test `pglite-durability` proves the first.
 */
export function durableStartParams(): string[] {
  return PGlite.defaultStartParams.filter((param) => param !== '-F');
}

async function openPGlite(options: OpenOptions): Promise<Database> {
  const { config, logger } = options;
  const inMemory = options.inMemory ?? false;
  const releaseLock = inMemory ? () => {} : lockDataDir(config.dataDir);
  let pglite: PGlite | undefined;
  try {
    pglite = await PGlite.create({
      dataDir: inMemory ? undefined : path.join(config.dataDir, 'pgdata'),
      startParams: durableStartParams(),
      parsers: pgliteParsers,
      loadDataDir: options.loadDataDir,
    });
    await pglite.exec(`SET TimeZone = 'UTC'`);
  } catch (error) {
    await pglite?.close().catch(() => {});
    releaseLock();
    throw error;
  }
  logger.debug({ engine: 'pglite', dataDir: inMemory ? ':memory:' : config.dataDir }, 'embedded database open');

  const instrumentation = new QueryInstrumentation('pglite', options.metrics, logger, config.slowQueryMs);
  const dialect = new PGliteDialect(pglite);
  const db = new Kysely<DB>({ dialect, log: instrumentation.onLog });
  const rawDb = new Kysely<DB>({ dialect });
  let closed = false;
  return {
    engine: 'pglite',
    db,
    rawDb,
    instrumentation,
    dataDir: inMemory ? undefined : config.dataDir,
    poolStats: () => undefined,
    async close() {
      if (closed) {
        return;
      }
      closed = true;
      await db.destroy();
      await pglite.close();
      releaseLock();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function openPostgres(options: OpenOptions): Promise<Database> {
  const { config, logger, metrics } = options;
  const url = config.url;
  if (url === undefined) {
    throw new Error('DATABASE_URL is required for the postgresql engine');
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: config.pool.max,
    connectionTimeoutMillis: config.pool.connectionTimeoutMs,
    idleTimeoutMillis: config.pool.idleTimeoutMs,
    maxLifetimeSeconds: config.pool.maxLifetimeS,
    statement_timeout: config.pool.statementTimeoutMs,
    lock_timeout: config.pool.lockTimeoutMs,
    idle_in_transaction_session_timeout: config.pool.idleInTransactionTimeoutMs,
    application_name: config.pool.applicationName,
    options: '-c TimeZone=UTC',
    types: pgTypes,
  });
  // An idle client losing its server must not crash the process: log it, the pool replaces it.
  pool.on('error', (error) => {
    logger.warn(
      { err: { message: error.message, code: (error as { code?: string }).code } },
      'idle database connection failed',
    );
  });
  // pg-pool listens for client errors only while a client is idle. A checked-out client whose
  // server goes away between two messages (e.g. `57P01 terminating connection` on a restart)
  // emits 'error' with no listener, which Node turns into an uncaught exception that ends the
  // process. A listener for the client's whole life keeps it contained: the client is marked
  // unusable, the next query on it fails (503 through the error handler) and release() drops it.
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      logger.debug(
        { err: { message: error.message, code: (error as { code?: string }).code } },
        'database connection failed',
      );
    });
  });

  await connectWithRetry(pool, url, config.connectTimeoutMs, logger);

  const instrumentation = new QueryInstrumentation('postgresql', metrics, logger, config.slowQueryMs);
  const dialect = new PostgresDialect({ pool });
  const db = new Kysely<DB>({ dialect, log: instrumentation.onLog });
  const rawDb = new Kysely<DB>({ dialect });
  const stats = (): PoolStats => ({
    total: pool.totalCount,
    idle: pool.idleCount,
    waiting: pool.waitingCount,
    max: config.pool.max,
  });
  let closed = false;
  return {
    engine: 'postgresql',
    db,
    rawDb,
    instrumentation,
    dataDir: undefined,
    poolStats: stats,
    async close() {
      if (closed) {
        return;
      }
      closed = true;
      await db.destroy(); // ends the pool
    },
  };
}

/**
 * Retries the first connection with exponential backoff (250 ms doubling, capped at 5 s)
 * until `timeoutMs` has passed, logging every failed attempt.
 */
async function connectWithRetry(pool: pg.Pool, url: string, timeoutMs: number, logger: Logger): Promise<void> {
  const started = Date.now();
  const target = redactUrl(url);
  let delay = 250;
  for (let attempt = 1; ; attempt += 1) {
    try {
      await pool.query('select 1');
      if (attempt > 1) {
        logger.info({ attempt, target }, 'connected to PostgreSQL');
      }
      return;
    } catch (error) {
      const elapsed = Date.now() - started;
      const reason = error instanceof Error ? error.message : String(error);
      if (elapsed + delay > timeoutMs) {
        await pool.end().catch(() => {});
        throw new DatabaseUnavailableError(
          `Could not connect to PostgreSQL at ${target} after ${attempt} attempts in ${Math.round(elapsed / 1000)}s: ${reason}. ` +
            'Check DATABASE_URL and that the server is running; WARDEN_DB_CONNECT_TIMEOUT sets how long to retry.',
          { cause: error },
        );
      }
      logger.warn({ attempt, target, reason, retry_in_ms: delay }, 'PostgreSQL not reachable yet, retrying');
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/** Server version string, e.g. "PostgreSQL 18.6 (PGlite 0.5.16)". */
export async function serverVersion(db: Kysely<DB>): Promise<string> {
  const result = await sql<{ version: string }>`select version() as version`.execute(db);
  return result.rows[0]?.version ?? 'unknown';
}
