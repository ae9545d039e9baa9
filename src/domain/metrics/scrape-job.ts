/**
 * The scraper: every `scrapePollIntervalMs` it claims as many due targets as it has free
 * slots (at most `concurrency` scrapes at once per instance) and starts scraping them; a
 * slow target holds one slot, not the whole round. Several instances on one PostgreSQL
 * share the work: a claim moves the target one interval ahead in the statement that
 * selects it, so no other instance takes it in the same round. Old scrape runs are
 * removed by the retention service, not here.
 *
 * start()/stop() are symmetric: stop() ends polling, abandons the scrapes in flight (their
 * fetches are aborted; nothing is recorded for them, the targets are due again next
 * interval) and resolves once they have settled, so the database can be closed after it.
 */
import type { MetricsConfig } from '../../config/index.js';
import { IntervalJob, type Job } from '../../jobs/interval-job.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { ScrapeAbortedError } from './scrape-client.js';
import type { ScrapeService, ScrapeTarget } from './scrape-service.js';

/** Scrapes at once per instance, by default. */
export const SCRAPE_CONCURRENCY = 8;

export interface ScrapeJobOptions {
  /** Scrapes at once on this instance (default 8). */
  readonly concurrency?: number;
}

export class ScrapeJob implements Job {
  readonly name = 'scrape';
  private readonly poller: IntervalJob;
  private readonly concurrency: number;
  private readonly inFlight = new Set<Promise<void>>();
  private abort = new AbortController();

  constructor(
    private readonly service: ScrapeService,
    config: Pick<MetricsConfig, 'scrapePollIntervalMs'>,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    options: ScrapeJobOptions = {},
  ) {
    this.concurrency = options.concurrency ?? SCRAPE_CONCURRENCY;
    this.poller = new IntervalJob(
      this.name,
      config.scrapePollIntervalMs,
      async () => {
        await this.poll();
      },
      logger,
      metrics,
      { runAtStart: true },
    );
  }

  start(): void {
    if (this.abort.signal.aborted) {
      this.abort = new AbortController();
    }
    this.poller.start();
  }

  async stop(): Promise<void> {
    await this.poller.stop();
    this.abort.abort();
    await Promise.all(this.inFlight);
  }

  /** One poll: starts scrapes of the due targets it could claim (not waiting for them) and returns them. */
  async poll(): Promise<ScrapeTarget[]> {
    const free = this.concurrency - this.inFlight.size;
    const claimed = free > 0 && !this.abort.signal.aborted ? await this.service.claimDue(free) : [];
    for (const target of claimed) {
      const scrape = this.scrapeOne(target);
      this.inFlight.add(scrape);
      void scrape.finally(() => this.inFlight.delete(scrape));
    }
    return claimed;
  }

  /** One poll, then waits for every scrape in flight (tests). */
  async runOnce(): Promise<ScrapeTarget[]> {
    const claimed = await this.poll();
    await Promise.all(this.inFlight);
    return claimed;
  }

  /** Scrapes one target; never rejects (failures are recorded, errors logged and counted). */
  private async scrapeOne(target: ScrapeTarget): Promise<void> {
    try {
      const run = await this.service.scrape(target, this.abort.signal);
      if (run.status === 'failed' && target.consecutiveFailures === 0) {
        this.logger.warn({ target: target.name, url: target.url, error: run.error }, 'scrape target failing');
      } else if (run.status === 'ok' && target.consecutiveFailures > 0) {
        this.logger.info({ target: target.name, failures: target.consecutiveFailures }, 'scrape target recovered');
      }
    } catch (error) {
      if (error instanceof ScrapeAbortedError) {
        return;
      }
      this.metrics.jobErrors.inc({ job: this.name });
      this.logger.error({ job: this.name, target: target.name, err: error }, 'could not record a scrape');
    }
  }
}
