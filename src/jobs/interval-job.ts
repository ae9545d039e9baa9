/**
 * A background loop with symmetric start()/stop(). Runs never overlap: the next run is
 * scheduled when the previous one finished. Errors are logged and counted, never thrown
 * into a timer. stop() clears the timer and awaits the run in flight.
 */
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';

export interface Job {
  readonly name: string;
  start(): void;
  stop(): Promise<void>;
}

export class IntervalJob implements Job {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private running = false;

  constructor(
    readonly name: string,
    private readonly intervalMs: number,
    private readonly work: () => Promise<void>,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly options: { runAtStart?: boolean } = {},
  ) {}

  start(): void {
    if (this.running) {
      return;
    }
    this.running = true;
    this.schedule(this.options.runAtStart === true ? 0 : this.intervalMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.inFlight;
  }

  /** Runs the work once now (also used by tests); errors are logged and counted. */
  async runOnce(): Promise<void> {
    try {
      await this.work();
    } catch (error) {
      this.metrics.jobErrors.inc({ job: this.name });
      this.logger.error({ job: this.name, err: error }, 'background job failed');
    }
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.runOnce().finally(() => {
        this.inFlight = undefined;
        if (this.running) {
          this.schedule(this.intervalMs);
        }
      });
    }, delayMs);
    this.timer.unref();
  }
}
