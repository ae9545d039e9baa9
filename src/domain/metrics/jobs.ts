/** Background jobs of host metrics: rollups every WARDEN_ROLLUP_INTERVAL, retention daily. */
import { IntervalJob } from '../../jobs/interval-job.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
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
      await rollups.run();
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
