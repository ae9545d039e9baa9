/**
 * Composition root: opens the database, migrates (or refuses to start with pending
 * migrations), wires repositories → services → HTTP app and jobs, and shuts all of it
 * down in the reverse order.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from './config/index.js';
import { openDatabase, type Database } from './db/engine.js';
import { MigrationError, Migrator, loadMigrations } from './db/migrator.js';
import { createHealthJob } from './domain/health/jobs.js';
import { HealthRepository } from './domain/health/repository.js';
import { HealthService } from './domain/health/service.js';
import { SystemRepository } from './domain/system/repository.js';
import { SystemService } from './domain/system/service.js';
import { ApiKeyService } from './domain/access/api-key-service.js';
import { ApiKeyUsageRecorder, createUsageFlushJob } from './domain/access/api-key-usage.js';
import { AuditService } from './domain/access/audit-service.js';
import { SessionService } from './domain/access/session-service.js';
import { UserService } from './domain/access/user-service.js';
import { IngestService } from './domain/metrics/ingest-service.js';
import { HostCollector, createCollectorJob } from './domain/metrics/collector.js';
import { createPartitionJob, createRetentionJob, createRollupJob } from './domain/metrics/jobs.js';
import { SamplePartitions } from './domain/metrics/partitions.js';
import { MetricsQueryService } from './domain/metrics/query-service.js';
import { RetentionService } from './domain/metrics/retention-service.js';
import { RollupService } from './domain/metrics/rollup-service.js';
import { ScrapeJob } from './domain/metrics/scrape-job.js';
import { ScrapeService } from './domain/metrics/scrape-service.js';
import { buildApp, type AppServices } from './http/app.js';
import type { RouteTable } from './http/auth.js';
import { IntervalJob, type Job } from './jobs/interval-job.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';

/** API key usage is aggregated in memory and written this often. */
const USAGE_FLUSH_INTERVAL_MS = 10_000;
const ACCESS_CLEANUP_INTERVAL_MS = 3_600_000;
/** Per-minute API key usage is kept this long. */
const USAGE_RETENTION_MS = 90 * 86_400_000;

/**
 * Prints the generated first-admin password once, to stdout, in a block that stands out —
 * never through the logger (log files are kept and shipped; this must not be).
 */
function announceGeneratedPassword(email: string, password: string): void {
  const line = '='.repeat(72);
  process.stdout.write(
    `\n${line}\n  Warden created the first admin account.\n\n    e-mail:   ${email}\n    password: ${password}\n\n` +
      `  This password is shown once and stored nowhere in clear. Log in and change it,\n` +
      `  or set WARDEN_ADMIN_PASSWORD before the first start next time.\n${line}\n\n`,
  );
}

export interface RunningServer {
  readonly app: FastifyInstance;
  /** Every route with its declared permission. */
  readonly routeTable: RouteTable;
  readonly database: Database;
  readonly metrics: Metrics;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly jobs: readonly Job[];
  readonly services: AppServices;
  /** Graceful shutdown: stop accepting, finish requests (bounded), stop jobs, close the database. */
  close(): Promise<void>;
}

export interface StartOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Open an in-memory embedded database instead of the data directory (tests). */
  readonly inMemory?: boolean;
  /** Skip listening on a port; the app is used through `inject` (tests). */
  readonly listen?: boolean;
}

export async function startServer(options: StartOptions): Promise<RunningServer> {
  const { config, logger } = options;
  const metrics = createMetrics();
  const database = await openDatabase({ config: config.database, logger, metrics, inMemory: options.inMemory });

  try {
    const migrator = new Migrator(database.db, await loadMigrations());
    if (config.database.autoMigrate) {
      const applied = await migrator.migrate((name, durationMs) => {
        logger.info({ migration: name, duration_ms: durationMs }, 'migration applied');
      });
      if (applied.length > 0) {
        logger.info({ count: applied.length }, 'database migrated');
      }
    } else {
      const state = await migrator.status();
      if (state.pending.length > 0 || state.checksumMismatches.length > 0) {
        throw new MigrationError(
          `WARDEN_AUTO_MIGRATE=false and the database is not up to date: ` +
            `${state.pending.length} pending (${state.pending.join(', ') || 'none'}), ` +
            `${state.checksumMismatches.length} edited (${state.checksumMismatches.join(', ') || 'none'}). ` +
            'Run `warden db migrate` first.',
        );
      }
    }

    const healthService = new HealthService(
      database,
      new HealthRepository(database.db),
      () => migrator.status(),
      config.health,
      metrics,
    );
    const systemService = new SystemService(database, new SystemRepository(database.db), () => migrator.status());
    const audit = new AuditService(database.db);
    const users = new UserService(database.db, audit);
    const sessions = new SessionService(database.db, users, audit, { ttlMs: config.auth.sessionTtlMs });
    const apiKeys = new ApiKeyService(database.db, audit);
    // A disabled or demoted user's keys stop working at once on this instance (within the
    // 1 s cache lifetime on others).
    users.onAccessChanged((userId) => apiKeys.forgetUser(userId));
    const apiKeyUsage = new ApiKeyUsageRecorder(database.db);
    const ingest = new IngestService(database.db, config.metrics, () => new Date(), metrics);
    const metricsQuery = new MetricsQueryService(database.db, config.metrics, audit);
    const rollups = new RollupService(database.db, config.metrics, logger);
    const retention = new RetentionService(database.db, config.metrics, config.health);
    // Before any sample arrives: today's partition must exist, or today's samples would land
    // in the default partition and keep today's partition from ever being created.
    const partitions = new SamplePartitions(database.db, logger);
    await partitions.ensure(Date.now());
    const scrapes = new ScrapeService(database.db, ingest, audit, metrics);

    const firstAdmin = await users.ensureFirstAdmin({
      email: config.auth.adminEmail,
      password: config.auth.adminPassword,
    });
    if (firstAdmin.created) {
      logger.info({ email: firstAdmin.email }, 'first admin created');
      if (firstAdmin.generatedPassword !== undefined) {
        announceGeneratedPassword(firstAdmin.email, firstAdmin.generatedPassword);
      }
    }

    const services: AppServices = {
      health: healthService,
      system: systemService,
      users,
      sessions,
      audit,
      apiKeys,
      apiKeyUsage,
      ingest,
      metricsQuery,
      scrapes,
    };
    const { app, routeTable } = await buildApp({
      config: config.http,
      auth: config.auth,
      logger,
      metrics,
      services,
    });
    const jobs: Job[] = [
      createHealthJob(healthService, config.health, logger, metrics),
      createUsageFlushJob(apiKeyUsage, USAGE_FLUSH_INTERVAL_MS, logger, metrics),
      createPartitionJob(partitions, logger, metrics),
      createRollupJob(rollups, config.metrics.rollupIntervalMs, logger, metrics),
      createRetentionJob(retention, logger, metrics),
      new ScrapeJob(scrapes, config.metrics, logger, metrics),
      new IntervalJob(
        'access-cleanup',
        ACCESS_CLEANUP_INTERVAL_MS,
        async () => {
          const sessionsRemoved = await sessions.deleteExpired();
          const usageRemoved = await apiKeyUsage.deleteOlderThan(new Date(Date.now() - USAGE_RETENTION_MS));
          if (sessionsRemoved + usageRemoved > 0) {
            logger.info({ sessionsRemoved, usageRemoved }, 'expired sessions and old key usage removed');
          }
        },
        logger,
        metrics,
        { runAtStart: true },
      ),
    ];

    if (config.metrics.selfCollect) {
      // Warden's own host, recorded like any agent's (WARDEN_SELF_COLLECT, WARDEN_HOST_NAME).
      const collector = new HostCollector({ hostName: config.metrics.hostName, logger });
      jobs.push(createCollectorJob(collector, ingest, config.metrics.collectIntervalMs, logger, metrics));
    }

    let url = '';
    if (options.listen ?? true) {
      url = await app.listen({ host: config.http.host, port: config.http.port });
    } else {
      await app.ready();
    }
    for (const job of jobs) {
      job.start();
    }
    logger.info({ url, engine: database.engine }, 'Warden is serving');

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        await closeWithin(app, config.http.shutdownTimeoutMs, logger);
        await Promise.all(jobs.map((job) => job.stop()));
        await apiKeyUsage.flush().catch((error: unknown) => {
          logger.warn({ err: error }, 'could not write the last API key usage at shutdown');
        });
        healthService.dispose();
        await database.close();
        logger.info('Warden stopped');
      })();
      return closing;
    };
    return {
      app,
      routeTable,
      database,
      metrics,
      url,
      jobs,
      services,
      close,
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/** Closes the HTTP server, waiting at most `timeoutMs` for requests in flight. */
async function closeWithin(app: FastifyInstance, timeoutMs: number, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  // Keep-alive connections that served a request in flight become idle only after it
  // finished; close them as they do, so shutdown does not wait for the client to hang up.
  const sweeper = setInterval(() => app.server.closeIdleConnections(), 50);
  const outcome = await Promise.race([app.close().then(() => 'closed' as const), deadline]);
  clearTimeout(timer);
  clearInterval(sweeper);
  if (outcome === 'timeout') {
    logger.warn({ timeout_ms: timeoutMs }, 'requests still in flight at shutdown deadline; closing their connections');
    app.server.closeAllConnections();
  }
}
