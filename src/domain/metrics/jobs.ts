/**
 * Background jobs of host metrics: day partitions of raw samples created ahead (hourly),
 * rollups every WARDEN_ROLLUP_INTERVAL, retention daily.
 */
import { IntervalJob } from '../../jobs/interval-job.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { SamplePartitions } from './partitions.js';
import type { RetentionService } from './retention-service.js';
import type { RollupService } from './rollup-service.js';

/** Retention is attempted this often; the lease makes it run once a day across instances. */
const RETENTION_CHECK_INTERVAL_MS = 3_600_000;

export function createRollupJob(
  rollups: RollupService,
  intervalMs: number,
  logger: Logger,
  metrics: Metrics,
): IntervalJob {
  return new IntervalJob(
    'metrics-rollup',
    intervalMs,
    async () => {
      const run = await rollups.run();
      if (run.ran) {
        metrics.metricRollupWatermark.set(Math.floor(run.to.getTime() / 60_000) * 60);
      }
    },
    logger,
    metrics,
    { runAtStart: true },
  );
}

export function createRetentionJob(retention: RetentionService, logger: Logger, metrics: Metrics): IntervalJob {
  return new IntervalJob(
    'metrics-retention',
    RETENTION_CHECK_INTERVAL_MS,
    async () => {
      const report = await retention.runDaily();
      if (report !== undefined) {
        logger.info(
          { removed: Object.fromEntries(report.tables.map((t) => [t.table, t.rows])), duration_ms: report.durationMs },
          'retention enforced',
        );
      }
    },
    logger,
    metrics,
    { runAtStart: true },
  );
}

/** Partitions are checked this often; they exist PARTITIONS_AHEAD days ahead, so a missed run is harmless. */
const PARTITION_CHECK_INTERVAL_MS = 3_600_000;

export function createPartitionJob(partitions: SamplePartitions, logger: Logger, metrics: Metrics): IntervalJob {
  return new IntervalJob(
    'metrics-partitions',
    PARTITION_CHECK_INTERVAL_MS,
    async () => {
      const created = await partitions.ensure(Date.now());
      if (created.length > 0) {
        logger.info({ created }, 'day partitions of metric samples created');
      }
    },
    logger,
    metrics,
  );
}
