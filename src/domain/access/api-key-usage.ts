/**
 * Per-key request usage, aggregated in memory and written in batches.
 *
 * `record` runs on every API-key request, so it only updates an in-memory aggregate per
 * (key, minute, route, status class). `flush` writes all pending aggregates in one
 * statement that adds them to the stored rows; a busy key costs one row per route and
 * status class per minute, however many requests it makes.
 *
 * Invariants:
 * - a failed flush loses nothing: its aggregates are merged back into the pending ones;
 * - pending memory is bounded: beyond `maxPendingAggregates`, the oldest aggregates are
 *   dropped and counted in `dropped` (a database down for hours must not exhaust memory);
 * - flushes never overlap, so an aggregate is never written twice.
 */
import type { Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import { ValidationError } from '../../errors.js';
import { IntervalJob } from '../../jobs/interval-job.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { ApiKeysRepository, type UsageAggregate } from './api-keys-repository.js';

export interface ApiKeyUsageOptions {
  /** Most aggregates held in memory between flushes (default 100 000). */
  readonly maxPendingAggregates?: number;
}

/** Usage of one key over a window, as `usage` reports it. */
export interface ApiKeyUsageReport {
  readonly buckets: { bucket: Date; route: string; status_class: string; requests: number }[];
  readonly total_requests: number;
  /**
   * Approximate 95th percentile of request duration: the request-weighted percentile of
   * the per-aggregate *average* durations (each minute/route/status row counts as
   * `requests` requests of its mean duration). It understates the tail when fast and slow
   * requests share a minute and route; `max_latency_ms` is the exact worst case.
   * Null without requests.
   */
  readonly p95_latency_ms: number | null;
  /** Exact maximum request duration in the window; null without requests. */
  readonly max_latency_ms: number | null;
  /** Requests per route. */
  readonly by_route: Record<string, number>;
  /** Requests per status class (`2xx`, `4xx`, …). */
  readonly by_status_class: Record<string, number>;
}

/** Counts of data given up because memory was full; they only grow. */
export interface DroppedUsage {
  readonly aggregates: number;
  readonly requests: number;
}

export const USAGE_MAX_HOURS = 24 * 31;
const BUCKET_MS = 60_000;
/** Routes are route patterns (`/api/v1/monitors/:id`); anything longer is cut. */
const ROUTE_MAX_LENGTH = 200;

interface MutableAggregate {
  apiKeyId: number;
  bucketMs: number;
  route: string;
  statusClass: string;
  requests: number;
  totalDurationMs: number;
  maxDurationMs: number;
}

/** `2xx` for 200–299 and so on; `other` for anything outside 100–599. */
export function statusClassOf(statusCode: number): string {
  return Number.isInteger(statusCode) && statusCode >= 100 && statusCode <= 599
    ? `${Math.floor(statusCode / 100)}xx`
    : 'other';
}

/** Cut to ROUTE_MAX_LENGTH; U+0000 (which text columns reject) replaced, so no route can fail a flush. */
function storableRoute(route: string): string {
  const cut = route.length > ROUTE_MAX_LENGTH ? route.slice(0, ROUTE_MAX_LENGTH) : route;
  return cut.includes('\u0000') ? cut.replaceAll('\u0000', '\uFFFD') : cut;
}

function aggregateKey(a: { apiKeyId: number; bucketMs: number; route: string; statusClass: string }): string {
  return `${a.apiKeyId}\u0000${a.bucketMs}\u0000${a.statusClass}\u0000${a.route}`;
}

export class ApiKeyUsageRecorder {
  private readonly maxPending: number;
  /** Pending aggregates; Map order is insertion order, so the first is the oldest. */
  private pending = new Map<string, MutableAggregate>();
  private inFlight: Promise<number> | undefined;
  private droppedAggregates = 0;
  private droppedRequests = 0;

  constructor(
    private readonly db: Kysely<DB>,
    options: ApiKeyUsageOptions = {},
    private readonly now: () => Date = () => new Date(),
  ) {
    this.maxPending = options.maxPendingAggregates ?? 100_000;
    if (!Number.isInteger(this.maxPending) || this.maxPending < 1) {
      throw new RangeError(`maxPendingAggregates must be a positive integer, got ${this.maxPending}`);
    }
  }

  /**
   * Counts one request of `keyId` on `route` (a route pattern) with `statusCode`, taking
   * `durationMs`. In memory only; `flush` writes it. Never throws, never does I/O.
   */
  record(keyId: number, route: string, statusCode: number, durationMs: number): void {
    const duration = Number.isFinite(durationMs) && durationMs > 0 ? durationMs : 0;
    this.add({
      apiKeyId: keyId,
      bucketMs: Math.floor(this.now().getTime() / BUCKET_MS) * BUCKET_MS,
      route: storableRoute(route),
      statusClass: statusClassOf(statusCode),
      requests: 1,
      totalDurationMs: duration,
      maxDurationMs: duration,
    });
  }

  /** Aggregates waiting for the next flush. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** What was given up because too much was pending (the database was unreachable). */
  get dropped(): DroppedUsage {
    return { aggregates: this.droppedAggregates, requests: this.droppedRequests };
  }

  /**
   * Writes every pending aggregate in one statement and returns how many were pending;
   * with nothing pending it does nothing. On failure the aggregates are kept for the next
   * flush and the error is thrown. Concurrent calls run one after the other.
   */
  async flush(): Promise<number> {
    while (this.inFlight !== undefined) {
      await this.inFlight.catch(() => {});
    }
    if (this.pending.size === 0) {
      return 0;
    }
    const batch = this.pending;
    this.pending = new Map();
    const write = this.write(batch);
    this.inFlight = write;
    try {
      return await write;
    } finally {
      this.inFlight = undefined;
    }
  }

  /**
   * Usage of `keyId` over the last `hours` (1–744), from flushed data: requests of the
   * current flush interval are not included yet.
   */
  async usage(keyId: number, hours: number): Promise<ApiKeyUsageReport> {
    if (!Number.isInteger(hours) || hours < 1 || hours > USAGE_MAX_HOURS) {
      throw new ValidationError('hours', `hours must be a whole number between 1 and ${USAGE_MAX_HOURS}, got ${hours}`);
    }
    const since = new Date(this.now().getTime() - hours * 3_600_000);
    const rows = await new ApiKeysRepository(this.db).usageSince(keyId, since);
    const byRoute = new Map<string, number>();
    const byStatusClass = new Map<string, number>();
    let total = 0;
    let max: number | null = null;
    for (const row of rows) {
      total += row.requests;
      byRoute.set(row.route, (byRoute.get(row.route) ?? 0) + row.requests);
      byStatusClass.set(row.statusClass, (byStatusClass.get(row.statusClass) ?? 0) + row.requests);
      max = max === null ? row.maxDurationMs : Math.max(max, row.maxDurationMs);
    }
    return {
      buckets: rows.map((r) => ({
        bucket: r.bucket,
        route: r.route,
        status_class: r.statusClass,
        requests: r.requests,
      })),
      total_requests: total,
      p95_latency_ms: weightedP95OfAverages(rows, total),
      max_latency_ms: max,
      by_route: Object.fromEntries(byRoute),
      by_status_class: Object.fromEntries(byStatusClass),
    };
  }

  /** Removes stored usage older than `cutoff` (retention); returns how many rows. */
  async deleteOlderThan(cutoff: Date): Promise<number> {
    return new ApiKeysRepository(this.db).deleteUsageOlderThan(cutoff);
  }

  private async write(batch: Map<string, MutableAggregate>): Promise<number> {
    const aggregates: UsageAggregate[] = [...batch.values()].map((a) => ({
      apiKeyId: a.apiKeyId,
      bucket: new Date(a.bucketMs),
      route: a.route,
      statusClass: a.statusClass,
      requests: a.requests,
      totalDurationMs: a.totalDurationMs,
      maxDurationMs: a.maxDurationMs,
    }));
    try {
      await new ApiKeysRepository(this.db).upsertUsage(aggregates);
      return aggregates.length;
    } catch (error) {
      // Put the failed batch back in front of what arrived meanwhile: it is older.
      const arrived = this.pending;
      this.pending = new Map();
      for (const aggregate of batch.values()) {
        this.add(aggregate);
      }
      for (const aggregate of arrived.values()) {
        this.add(aggregate);
      }
      throw error;
    }
  }

  private add(aggregate: MutableAggregate): void {
    const key = aggregateKey(aggregate);
    const existing = this.pending.get(key);
    if (existing !== undefined) {
      existing.requests += aggregate.requests;
      existing.totalDurationMs += aggregate.totalDurationMs;
      existing.maxDurationMs = Math.max(existing.maxDurationMs, aggregate.maxDurationMs);
      return;
    }
    this.pending.set(key, { ...aggregate });
    while (this.pending.size > this.maxPending) {
      const [oldestKey, oldest] = this.pending.entries().next().value as [string, MutableAggregate];
      this.pending.delete(oldestKey);
      this.droppedAggregates += 1;
      this.droppedRequests += oldest.requests;
    }
  }
}

/** See `ApiKeyUsageReport.p95_latency_ms`. */
function weightedP95OfAverages(rows: readonly UsageAggregate[], total: number): number | null {
  if (total === 0) {
    return null;
  }
  const averages = rows
    .filter((r) => r.requests > 0)
    .map((r) => ({ avg: r.totalDurationMs / r.requests, weight: r.requests }))
    .sort((a, b) => a.avg - b.avg);
  const rank = Math.ceil(total * 0.95);
  let seen = 0;
  for (const { avg, weight } of averages) {
    seen += weight;
    if (seen >= rank) {
      return Math.round(avg * 1000) / 1000;
    }
  }
  return null;
}

/**
 * A background job flushing `recorder` every `intervalMs`. Its `stop()` does not flush:
 * call `recorder.flush()` after it on shutdown so the last interval is kept.
 */
export function createUsageFlushJob(
  recorder: ApiKeyUsageRecorder,
  intervalMs: number,
  logger: Logger,
  metrics: Metrics,
): IntervalJob {
  return new IntervalJob(
    'api_key_usage_flush',
    intervalMs,
    async () => {
      await recorder.flush();
    },
    logger,
    metrics,
  );
}
