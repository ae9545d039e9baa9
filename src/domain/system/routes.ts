import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../../metrics.js';
import type { SystemService } from './service.js';

const anyObject = { type: 'object', additionalProperties: true } as const;

export function registerSystemRoutes(app: FastifyInstance, system: SystemService, metrics: Metrics): void {
  app.get(
    '/status',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['system'],
        summary: 'Version, engine, uptime, process memory and row counts of the tables',
        response: {
          200: {
            type: 'object',
            properties: {
              version: { type: 'string' },
              engine: { type: 'string', enum: ['pglite', 'postgresql'] },
              server_version: { type: 'string' },
              uptime_s: { type: 'integer' },
              memory: anyObject,
              tables: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { table: { type: 'string' }, rows: { type: 'integer' }, exact: { type: 'boolean' } },
                },
              },
            },
          },
        },
      },
    },
    async () => {
      const status = await system.status();
      return {
        version: status.version,
        engine: status.engine,
        server_version: status.serverVersion,
        uptime_s: status.uptimeS,
        memory: {
          rss_bytes: status.memory.rssBytes,
          heap_used_bytes: status.memory.heapUsedBytes,
          heap_total_bytes: status.memory.heapTotalBytes,
          external_bytes: status.memory.externalBytes,
        },
        tables: status.tables,
      };
    },
  );

  app.get(
    '/database/status',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['system'],
        summary:
          'Engine, size, tables, pool, migrations, query statistics, backups, and the upkeep of the metric tables (rollup watermark, day partitions, once-across-instances jobs)',
        response: {
          200: {
            type: 'object',
            properties: {
              engine: { type: 'string' },
              server_version: { type: 'string' },
              size_bytes: { type: 'integer' },
              cache_hit_ratio: { type: ['number', 'null'] },
              tables: { type: 'array', items: anyObject },
              pool: { type: ['object', 'null'], additionalProperties: true },
              migrations: anyObject,
              queries: anyObject,
              backups: anyObject,
              metrics: anyObject,
            },
          },
        },
      },
    },
    async () => {
      const status = await system.databaseStatus();
      return {
        engine: status.engine,
        server_version: status.serverVersion,
        size_bytes: status.sizeBytes,
        cache_hit_ratio: status.cacheHitRatio,
        tables: status.tables.map((t) => ({ table: t.table, row_estimate: t.rowEstimate, total_bytes: t.totalBytes })),
        pool: status.pool,
        migrations: {
          applied: status.migrations.applied,
          pending: status.migrations.pending,
          checksum_mismatches: status.migrations.checksumMismatches,
          missing_files: status.migrations.missingFiles,
        },
        queries: {
          count: status.queries.count,
          errors: status.queries.errors,
          error_rate: status.queries.errorRate,
          slow_count: status.queries.slowCount,
          p50_ms: status.queries.p50Ms,
          p95_ms: status.queries.p95Ms,
          p99_ms: status.queries.p99Ms,
          slowest: status.queries.slowest.map((s) => ({
            statement: s.statement,
            count: s.count,
            avg_ms: s.avgMs,
            max_ms: s.maxMs,
          })),
        },
        backups: status.backups,
        metrics: {
          rollup: {
            watermark: status.metrics.rollupWatermark?.toISOString() ?? null,
            lag_s:
              status.metrics.rollupWatermark === null
                ? null
                : Math.round((Date.now() - status.metrics.rollupWatermark.getTime()) / 1000),
            rewind_to: status.metrics.rollupRewindTo?.toISOString() ?? null,
            last_run_at: status.metrics.rollupLastRunAt?.toISOString() ?? null,
            last_duration_ms: status.metrics.rollupLastDurationMs,
          },
          raw_partitions: {
            count: status.metrics.dayPartitions,
            oldest: status.metrics.oldestPartition,
            newest: status.metrics.newestPartition,
          },
          singleton_jobs: status.metrics.singletonJobs.map((j) => ({
            name: j.name,
            claimed_by: j.claimedBy,
            last_started_at: j.lastStartedAt?.toISOString() ?? null,
            last_finished_at: j.lastFinishedAt?.toISOString() ?? null,
            last_result: j.lastResult,
            last_error: j.lastError,
          })),
        },
      };
    },
  );

  app.get(
    '/metrics',
    {
      // WARDEN_METRICS_PUBLIC=true also serves loopback scrapers without credentials (http/auth.ts).
      config: { permission: 'read' },
      schema: {
        tags: ['system'],
        summary: 'Prometheus text exposition: process, HTTP, database, pool and health metrics',
        produces: ['text/plain'],
      },
    },
    async (_request, reply) => {
      system.refreshPoolGauges(metrics);
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );
}
