import type { HealthConfig } from '../../config/index.js';
import { IntervalJob } from '../../jobs/interval-job.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { HealthService } from './service.js';

/**
 * Every WARDEN_HEALTH_INTERVAL: runs the readiness checks, stores them in
 * `health_checks`, and removes rows past WARDEN_HEALTH_RETENTION_DAYS.
 * When the database is down the gauges still update; the failed insert is logged.
 */
export function createHealthJob(
  service: HealthService,
  config: HealthConfig,
  logger: Logger,
  metrics: Metrics,
): IntervalJob {
  return new IntervalJob(
    'health',
    config.intervalMs,
    async () => {
      const report = await service.recordChecks();
      if (!report.ready) {
        logger.warn({ failing: report.failing }, 'self-health check failing');
      }
      const removed = await service.enforceRetention();
      if (removed > 0) {
        logger.info({ removed }, 'old health checks removed');
      }
    },
    logger,
    metrics,
    { runAtStart: true },
  );
}
