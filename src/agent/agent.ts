/**
 * The Warden agent: collects a host's metrics on an interval and pushes them to a Warden
 * server (`POST /api/v1/metrics`), riding out outages.
 *
 * Invariants:
 * - Samples leave in the order they were collected: the sender always takes the oldest
 *   buffered samples first, so after an outage the backlog arrives before newer data.
 * - The buffer is bounded (in samples). Beyond the bound the OLDEST samples are dropped and
 *   counted; samples in a request in flight are never dropped (they count toward the bound).
 * - A sample is removed from the buffer only when the server accepted it (202) or rejected
 *   its batch as invalid (400: retrying would fail the same way; counted and logged).
 *   Everything else — connection refused, timeouts, 5xx, 429, and also 401/403 (an
 *   operator may fix the key) — is retried with capped exponential backoff and full jitter.
 *   A retried batch the server had in fact stored counts there as duplicates: harmless.
 * - One log line when the server becomes unreachable and one when it is back, not one per
 *   retry; authorization failures are logged as errors every time.
 *
 * The clock, collector, fetch and sleep are injected so tests can drive it.
 */
import type { Logger } from '../logger.js';
import { MAX_SAMPLES_PER_REQUEST, type SampleInput } from '../domain/metrics/types.js';

/** Samples per request (the server takes up to 10,000). */
export const AGENT_BATCH_SAMPLES = 5000;
/** Default buffer: one hour of sweeps. */
export const DEFAULT_BUFFER_MS = 3_600_000;

export interface SweepSource {
  collect(): Promise<SampleInput[]>;
}

/** Waits `ms`, resolving early (never rejecting) when `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

export type FetchFunction = (url: string, init: RequestInit) => Promise<Response>;

export interface BackoffOptions {
  /** First retry waits up to this, ms (default 1000). */
  readonly initialMs: number;
  /** Retries wait up to this at most, ms (default 60000). */
  readonly maxMs: number;
}

export interface AgentOptions {
  /** Base URL of the Warden server, e.g. https://warden.example.com. */
  readonly serverUrl: string;
  /** API key with the `ingest` scope. */
  readonly apiKey: string;
  /** Collection interval, ms. */
  readonly intervalMs: number;
  readonly collector: SweepSource;
  readonly logger: Logger;
  /**
   * Buffer bound as a duration, ms (default 1 hour): the bound in samples is
   * ceil(bufferMs / intervalMs) sweeps of the largest sweep seen so far.
   */
  readonly bufferMs?: number;
  /** Buffer bound in samples, overriding bufferMs. */
  readonly bufferSamples?: number;
  /** Samples per request (default 5000, at most 10,000). */
  readonly batchSamples?: number;
  /** One request may take this long before it counts as failed, ms (default 10 s). */
  readonly requestTimeoutMs?: number;
  readonly backoff?: Partial<BackoffOptions>;
  readonly fetch?: FetchFunction;
  /** Milliseconds; paces collection and measures outages (default Date.now). */
  readonly now?: () => number;
  readonly sleep?: Sleep;
  /** Uniform in [0, 1) for the jitter (default Math.random). */
  readonly random?: () => number;
}

/** Counters since the agent started. */
export interface AgentStats {
  /** Sweeps collected. */
  readonly sweeps: number;
  /** Samples collected. */
  readonly collected: number;
  /** Samples the server accepted (inserted or duplicates). */
  readonly sent: number;
  /** Samples waiting to be sent, including a request in flight. */
  readonly buffered: number;
  /** Current bound of the buffer, in samples. */
  readonly bufferLimit: number;
  /** Oldest samples dropped because the buffer was full. */
  readonly dropped: number;
  /** Samples in batches the server rejected as invalid (400), dropped. */
  readonly rejected: number;
  /** Failed requests (any cause), retried. */
  readonly failedRequests: number;
  /** Whether the last request reached a server that accepted it. */
  readonly reachable: boolean;
}

/** What one send attempt did. */
export type SendOutcome =
  | { readonly kind: 'empty' }
  | { readonly kind: 'sent'; readonly samples: number }
  | { readonly kind: 'rejected'; readonly samples: number }
  /** The server refused the request as too large (413): batches were halved, nothing lost; send again now. */
  | { readonly kind: 'split'; readonly batchSamples: number }
  | { readonly kind: 'failed'; readonly reason: string; readonly retryAfterMs?: number };

/**
 * Delay before retry number `attempt` (0-based): full jitter over a cap that doubles from
 * `initialMs` up to `maxMs`, so many agents coming back at once spread out.
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

export const realSleep: Sleep = (ms, signal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

interface ErrorBody {
  error?: { code?: string; message?: string; field?: string; problems?: unknown[] };
}

export class Agent {
  private readonly endpoint: string;
  private readonly intervalS: number;
  private readonly batchLimit: number;
  private readonly requestTimeoutMs: number;
  private readonly backoff: BackoffOptions;
  private readonly fetchFn: FetchFunction;
  private readonly now: () => number;
  private readonly sleep: Sleep;
  private readonly random: () => number;
  private readonly sweepsPerBuffer: number;

  /** Oldest first. */
  private queue: SampleInput[] = [];
  private inFlight = 0;
  private largestSweep = 0;
  /** Shrinks after a 413 (a body over the server's byte limit), never below 1. */
  private batchSize: number;
  private attempt = 0;
  private outage: { since: number; droppedBefore: number; reason: string } | undefined;

  private counters = { sweeps: 0, collected: 0, sent: 0, dropped: 0, rejected: 0, failedRequests: 0 };

  private running = false;
  private loops: Promise<void> | undefined;
  /** Aborts sleeps and idle waits when stopping. */
  private stopSignal = new AbortController();
  /** Aborts requests still in flight when the final flush runs out of time. */
  private deadline = new AbortController();
  private wake: (() => void) | undefined;

  constructor(private readonly options: AgentOptions) {
    this.endpoint = `${options.serverUrl.replace(/\/+$/, '')}/api/v1/metrics`;
    this.intervalS = Math.min(86_400, Math.max(1, Math.ceil(options.intervalMs / 1000)));
    this.batchLimit = Math.min(options.batchSamples ?? AGENT_BATCH_SAMPLES, MAX_SAMPLES_PER_REQUEST);
    this.batchSize = this.batchLimit;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.backoff = { initialMs: options.backoff?.initialMs ?? 1000, maxMs: options.backoff?.maxMs ?? 60_000 };
    this.fetchFn = options.fetch ?? ((url, init) => fetch(url, init));
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.sweepsPerBuffer = Math.max(1, Math.ceil((options.bufferMs ?? DEFAULT_BUFFER_MS) / options.intervalMs));
  }

  /** The bound of the buffer in samples. */
  get bufferLimit(): number {
    return this.options.bufferSamples ?? this.sweepsPerBuffer * Math.max(1, this.largestSweep);
  }

  stats(): AgentStats {
    return {
      ...this.counters,
      buffered: this.queue.length + this.inFlight,
      bufferLimit: this.bufferLimit,
      reachable: this.outage === undefined,
    };
  }

  /** Starts collecting every interval (the first sweep at once) and sending. */
  start(): void {
    if (this.running) {
      return;
    }
    this.running = true;
    this.stopSignal = new AbortController();
    this.deadline = new AbortController();
    this.options.logger.info(
      {
        server: this.endpoint,
        interval_ms: this.options.intervalMs,
        buffer_limit_sweeps: this.sweepsPerBuffer,
        buffer_samples: this.options.bufferSamples,
      },
      'agent started',
    );
    this.loops = Promise.all([this.collectLoop(), this.sendLoop()]).then(() => undefined);
  }

  /**
   * Stops collecting, then tries once more to send what is buffered, for at most
   * `flushTimeoutMs`; what is still buffered after that is lost (and logged).
   */
  async stop(flushTimeoutMs = 5000): Promise<void> {
    if (!this.running) {
      return;
    }
    this.running = false;
    const flushDone = new AbortController();
    // The deadline also bounds a request the send loop has in flight right now.
    void this.sleep(flushTimeoutMs, flushDone.signal).then(() => {
      if (!flushDone.signal.aborted) {
        this.deadline.abort();
      }
    });
    this.stopSignal.abort();
    this.wake?.();
    await this.loops;
    let flushed = true;
    while (this.queue.length > 0 && !this.deadline.signal.aborted) {
      const outcome = await this.sendOnce();
      if (outcome.kind === 'failed') {
        flushed = false;
        break;
      }
    }
    flushDone.abort();
    const stats = this.stats();
    const summary = { sent: stats.sent, dropped: stats.dropped, rejected: stats.rejected, unsent: stats.buffered };
    if (flushed && stats.buffered === 0) {
      this.options.logger.info(summary, 'agent stopped; everything collected was sent or accounted for');
    } else {
      this.options.logger.warn(summary, 'agent stopped with samples unsent; they are lost');
    }
  }

  /** Collects one sweep into the buffer (dropping the oldest beyond the bound). */
  async collectSweep(): Promise<void> {
    let sweep: SampleInput[];
    try {
      sweep = await this.options.collector.collect();
    } catch (error) {
      this.options.logger.error({ err: error }, 'collecting metrics failed; this sweep is skipped');
      return;
    }
    const at = this.now();
    this.counters.sweeps += 1;
    this.counters.collected += sweep.length;
    this.largestSweep = Math.max(this.largestSweep, sweep.length);
    for (const sample of sweep) {
      // Stamped now, so a sample sent after an outage keeps its collection time.
      this.queue.push(sample.ts === undefined ? { ...sample, ts: at } : sample);
    }
    const excess = this.queue.length + this.inFlight - this.bufferLimit;
    if (excess > 0) {
      const drop = Math.min(excess, this.queue.length);
      this.queue.splice(0, drop);
      this.counters.dropped += drop;
    }
    this.wake?.();
  }

  /** Sends the oldest batch once. */
  async sendOnce(): Promise<SendOutcome> {
    if (this.queue.length === 0) {
      return { kind: 'empty' };
    }
    const batch = this.queue.splice(0, this.batchSize);
    this.inFlight = batch.length;
    let outcome: SendOutcome;
    try {
      outcome = await this.post(batch);
    } finally {
      this.inFlight = 0;
    }
    switch (outcome.kind) {
      case 'sent':
        this.counters.sent += batch.length;
        this.attempt = 0;
        this.recovered(batch.length);
        break;
      case 'rejected':
        this.counters.rejected += batch.length;
        this.attempt = 0;
        this.recovered(batch.length);
        break;
      case 'failed':
        // Back to the front: still the oldest, still first to go.
        this.queue.unshift(...batch);
        this.counters.failedRequests += 1;
        this.unreachable(outcome.reason);
        break;
      case 'split':
        this.queue.unshift(...batch);
        break;
      case 'empty':
        break;
    }
    return outcome;
  }

  /** Sends until the buffer is empty or a request fails (no waiting). Returns whether it emptied. */
  async flush(): Promise<boolean> {
    for (;;) {
      const outcome = await this.sendOnce();
      if (outcome.kind === 'empty') {
        return true;
      }
      if (outcome.kind === 'failed') {
        return false;
      }
    }
  }

  private async collectLoop(): Promise<void> {
    while (this.running) {
      const started = this.now();
      await this.collectSweep();
      const wait = Math.max(0, this.options.intervalMs - (this.now() - started));
      await this.sleep(wait, this.stopSignal.signal);
    }
  }

  private async sendLoop(): Promise<void> {
    while (this.running) {
      if (this.queue.length === 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      const outcome = await this.sendOnce();
      if (outcome.kind === 'failed' && this.running) {
        const delay = Math.max(
          backoffDelayMs(this.attempt, this.backoff, this.random),
          Math.min(outcome.retryAfterMs ?? 0, this.backoff.maxMs),
        );
        this.attempt += 1;
        await this.sleep(delay, this.stopSignal.signal);
      }
    }
  }

  private async post(batch: readonly SampleInput[]): Promise<SendOutcome> {
    let response: Response;
    try {
      response = await this.fetchFn(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.options.apiKey}` },
        body: JSON.stringify({ samples: batch, interval_s: this.intervalS }),
        signal: AbortSignal.any([AbortSignal.timeout(this.requestTimeoutMs), this.deadline.signal]),
      });
    } catch (error) {
      return { kind: 'failed', reason: describeFetchError(error) };
    }
    const text = await response.text().catch(() => '');
    const status = response.status;
    if (status >= 200 && status < 300) {
      return { kind: 'sent', samples: batch.length };
    }
    const body = parseErrorBody(text);
    const message = body?.error?.message ?? text.slice(0, 200);
    if (status === 400) {
      this.options.logger.error(
        {
          status,
          samples: batch.length,
          message,
          problems: (body?.error?.problems ?? []).slice(0, 5),
        },
        'server rejected a batch as invalid; it is dropped, not retried',
      );
      return { kind: 'rejected', samples: batch.length };
    }
    if (status === 413 && batch.length > 1) {
      // Over the server's body limit: send smaller batches from now on, nothing is lost.
      this.batchSize = Math.max(1, Math.floor(batch.length / 2));
      this.options.logger.warn({ batch_samples: this.batchSize }, 'request too large for the server; halving batches');
      return { kind: 'split', batchSamples: this.batchSize };
    }
    if (status === 413) {
      this.options.logger.error({ status, message }, 'server refused a single sample as too large; it is dropped');
      return { kind: 'rejected', samples: batch.length };
    }
    if (status === 429 || status === 408 || status >= 500) {
      return {
        kind: 'failed',
        reason: `HTTP ${status}`,
        retryAfterMs: retryAfterMs(response.headers.get('retry-after')),
      };
    }
    // 401/403 (bad, revoked or under-scoped key), 404 (wrong URL) and the like: an operator
    // has to act, so say so every time, and keep buffering in case they do.
    this.options.logger.error(
      { status, message, server: this.endpoint },
      status === 401 || status === 403
        ? 'server refused the API key (needs a valid key with the ingest scope); retrying with backoff'
        : 'server refused the request; retrying with backoff',
    );
    return { kind: 'failed', reason: `HTTP ${status}` };
  }

  private unreachable(reason: string): void {
    if (this.outage !== undefined) {
      return;
    }
    this.outage = { since: this.now(), droppedBefore: this.counters.dropped, reason };
    this.options.logger.warn(
      { server: this.endpoint, reason, buffered: this.queue.length },
      'cannot deliver samples to the Warden server; buffering and retrying with backoff',
    );
  }

  /** `delivered`: the batch that just went through, part of what was buffered. */
  private recovered(delivered: number): void {
    if (this.outage === undefined) {
      return;
    }
    const { since, droppedBefore, reason } = this.outage;
    this.outage = undefined;
    this.options.logger.info(
      {
        server: this.endpoint,
        outage_ms: this.now() - since,
        reason,
        buffered: delivered + this.queue.length,
        dropped: this.counters.dropped - droppedBefore,
      },
      'delivering samples to the Warden server again; sending the buffered ones first',
    );
  }
}

function parseErrorBody(text: string): ErrorBody | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Retry-After in seconds or as an HTTP date, as ms. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) {
    return undefined;
  }
  const seconds = Number(header);
  if (Number.isFinite(seconds)) {
    return Math.max(0, seconds * 1000);
  }
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** "connection refused", "timeout", … from what fetch threw (undici wraps the cause). */
function describeFetchError(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') {
      return 'timeout';
    }
    if (error.name === 'AbortError') {
      return 'aborted';
    }
    const cause = (error as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as Error & { code?: string }).code;
      return code === undefined ? cause.message : `${code}: ${cause.message}`;
    }
    return error.message;
  }
  return String(error);
}
