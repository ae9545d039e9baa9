/**
 * The Prometheus registry of one Warden process. Each server (and each test) gets its
 * own registry, so nothing is registered twice in one process.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LabelledHistogram } from './labelled-histogram.js';

export interface Metrics {
  readonly registry: Registry;
  /** Hot path: one observation per query (see LabelledHistogram). */
  readonly dbQueryDuration: LabelledHistogram;
  readonly dbQueryErrors: Counter<'sqlstate' | 'engine'>;
  readonly dbSlowQueries: Counter<'engine'>;
  readonly dbPoolConnections: Gauge<'state'>;
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly healthStatus: Gauge<'component'>;
  readonly healthLatency: Gauge<'component'>;
  readonly jobErrors: Counter<'job'>;
  /** Metric samples stored or skipped as re-sent, by outcome (inserted, duplicate). */
  readonly metricSamples: Counter<'outcome'>;
  /** Ingest batches refused whole, by reason (invalid, too_large). */
  readonly metricBatchesRejected: Counter<'reason'>;
  /** Start of the first minute not yet rolled up (unix seconds); lag = time() - this. */
  readonly metricRollupWatermark: Gauge;
  /** Failed Prometheus scrapes by target name. */
  readonly scrapeFailures: Counter<'target'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry });
  }
  return {
    registry,
    dbQueryDuration: new LabelledHistogram(
      'warden_db_query_duration_seconds',
      'Database query duration by normalized statement shape',
      ['statement', 'engine'],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registry,
    ),
    dbQueryErrors: new Counter({
      name: 'warden_db_query_errors_total',
      help: 'Database query errors by SQLSTATE (or "connection" when no SQLSTATE was given)',
      labelNames: ['sqlstate', 'engine'],
      registers: [registry],
    }),
    dbSlowQueries: new Counter({
      name: 'warden_db_slow_queries_total',
      help: 'Queries slower than WARDEN_SLOW_QUERY_MS',
      labelNames: ['engine'],
      registers: [registry],
    }),
    dbPoolConnections: new Gauge({
      name: 'warden_db_pool_connections',
      help: 'PostgreSQL pool connections by state (total, idle, waiting clients)',
      labelNames: ['state'],
      registers: [registry],
    }),
    httpRequestDuration: new Histogram({
      name: 'warden_http_request_duration_seconds',
      help: 'HTTP request duration by route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    healthStatus: new Gauge({
      name: 'warden_health_status',
      help: 'Last readiness result per component (1 pass, 0 fail)',
      labelNames: ['component'],
      registers: [registry],
    }),
    healthLatency: new Gauge({
      name: 'warden_health_check_latency_seconds',
      help: 'Latency of the last readiness check per component',
      labelNames: ['component'],
      registers: [registry],
    }),
    jobErrors: new Counter({
      name: 'warden_job_errors_total',
      help: 'Errors in background jobs',
      labelNames: ['job'],
      registers: [registry],
    }),
    metricSamples: new Counter({
      name: 'warden_metric_samples_total',
      help: 'Metric samples ingested: inserted, or skipped as duplicates of stored ones',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    metricBatchesRejected: new Counter({
      name: 'warden_metric_batches_rejected_total',
      help: 'Metric ingest batches refused whole (invalid samples, too many samples)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    metricRollupWatermark: new Gauge({
      name: 'warden_metric_rollup_watermark_seconds',
      help: 'Start of the first minute not yet rolled up, unix seconds (rollup lag = time() - this)',
      registers: [registry],
    }),
    scrapeFailures: new Counter({
      name: 'warden_scrape_failures_total',
      help: 'Failed scrapes of Prometheus scrape targets, by target name',
      labelNames: ['target'],
      registers: [registry],
    }),
  };
}
