/**
 * Metric ingest: validates a batch (rejected whole when any sample is invalid), resolves
 * hosts and series through an in-memory cache (created on first sight), and stores the
 * samples in one statement. When `ingest` resolves, the samples are committed.
 */
import type { Kysely } from 'kysely';
import type { MetricsConfig } from '../../config/index.js';
import type { DB } from '../../db/schema.js';
import { BatchValidationError, PayloadTooLargeError, ValidationError, type BatchProblem } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import { MetricsRepository, type SeriesKey } from './repository.js';
import {
  LABEL_NAME_PATTERN,
  MAX_FUTURE_SKEW_MS,
  MAX_HOST_NAME_LENGTH,
  MAX_LABELS,
  MAX_LABEL_VALUE_LENGTH,
  MAX_METRIC_NAME_LENGTH,
  MAX_SAMPLES_PER_REQUEST,
  METRIC_NAME_PATTERN,
  canonicalLabels,
  unitOf,
  type IngestResult,
  type Labels,
  type SampleInput,
} from './types.js';

/** A batch lists at most this many problems. */
const MAX_PROBLEMS = 20;
/** A host's last-seen time is written at most this often per instance. */
const HOST_TOUCH_INTERVAL_MS = 5000;
/** Series ids cached per instance; the cache is cleared when it grows past this. */
const SERIES_CACHE_LIMIT = 500_000;
const SAMPLE_FIELDS = new Set(['host', 'metric', 'value', 'ts', 'labels']);
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export interface IngestOptions {
  /** The sender's collection interval in seconds; a host is stale after 3 of them. */
  readonly intervalS?: number;
  /**
   * Oldest accepted sample time, ms since the epoch. Defaults to the raw retention; the
   * legacy import passes the 1-hour rollup retention instead.
   */
  readonly oldestMs?: number;
  /** Arrival time; defaults to now. */
  readonly now?: Date;
  /**
   * What a host's first/last seen times become: the arrival time (live senders, the
   * default), or the times of its samples (imports of old data, so a decommissioned host
   * does not look live).
   */
  readonly seenAt?: 'arrival' | 'sample-time';
}

/** Normalized batch, column-wise. */
interface Batch {
  readonly hosts: string[];
  readonly metrics: string[];
  readonly labels: string[];
  readonly tsMs: number[];
  readonly values: number[];
  readonly minTsMs: number;
}

export class IngestService {
  private readonly repository: MetricsRepository;
  private readonly seriesIds = new Map<string, number>();
  private readonly hostIds = new Map<string, { id: number; touchedAt: number }>();

  constructor(
    db: Kysely<DB>,
    private readonly config: MetricsConfig,
    private readonly clock: () => Date = () => new Date(),
    private readonly metrics?: Metrics,
  ) {
    this.repository = new MetricsRepository(db);
  }

  /**
   * Stores a batch from an untrusted sender (the API). The value is parsed JSON: every
   * sample is checked and the batch is rejected whole, listing the first 20 problems, when
   * any sample is invalid. Resolves once the samples are committed.
   */
  async ingestUntrusted(samples: unknown, options: IngestOptions = {}): Promise<IngestResult> {
    if (!Array.isArray(samples)) {
      throw new ValidationError('samples', 'samples must be an array of { host, metric, value, ts?, labels? }');
    }
    if (samples.length > MAX_SAMPLES_PER_REQUEST) {
      this.metrics?.metricBatchesRejected.inc({ reason: 'too_large' });
      throw new PayloadTooLargeError(
        `A request may carry at most ${MAX_SAMPLES_PER_REQUEST} samples, got ${samples.length}; split it into smaller batches`,
        'samples',
      );
    }
    if (samples.length === 0) {
      throw new ValidationError('samples', 'samples is empty; send at least one sample');
    }
    const batch = this.validate(samples, options);
    return this.store(batch, options);
  }

  /** Stores samples from trusted code (collector, scraper, import); they are still validated. */
  async ingest(samples: readonly SampleInput[], options: IngestOptions = {}): Promise<IngestResult> {
    if (samples.length === 0) {
      return { received: 0, inserted: 0, duplicates: 0, seriesCreated: 0 };
    }
    return this.store(this.validate(samples, options), options);
  }

  private validate(samples: readonly unknown[], options: IngestOptions): Batch {
    const nowMs = (options.now ?? this.clock()).getTime();
    const latestMs = nowMs + MAX_FUTURE_SKEW_MS;
    const oldestMs = options.oldestMs ?? nowMs - this.config.retentionRawDays * 86_400_000;
    const problems: BatchProblem[] = [];
    let invalid = 0;
    const batch: Batch = { hosts: [], metrics: [], labels: [], tsMs: [], values: [], minTsMs: Infinity };
    let minTsMs = Infinity;

    for (let index = 0; index < samples.length; index += 1) {
      const sample = samples[index];
      let bad = false;
      const problem = (field: string, message: string): void => {
        bad = true;
        if (problems.length < MAX_PROBLEMS) {
          problems.push({ index, field: `samples[${index}].${field}`, message });
        }
      };
      if (sample === null || typeof sample !== 'object' || Array.isArray(sample)) {
        bad = true;
        if (problems.length < MAX_PROBLEMS) {
          problems.push({ index, field: `samples[${index}]`, message: 'must be an object { host, metric, value }' });
        }
        invalid += 1;
        continue;
      }
      const s = sample as Record<string, unknown>;
      for (const key in s) {
        if (!SAMPLE_FIELDS.has(key)) {
          problem(key, `is not an accepted field (accepted: host, metric, value, ts, labels)`);
        }
      }
      const host = s.host;
      if (typeof host !== 'string' || host === '') {
        problem('host', 'is required: a non-empty string');
      } else if (host.length > MAX_HOST_NAME_LENGTH || CONTROL_CHARS.test(host)) {
        problem('host', `must be at most ${MAX_HOST_NAME_LENGTH} characters without control characters`);
      }
      const metric = s.metric;
      if (typeof metric !== 'string') {
        problem('metric', 'is required: a name like cpu.usage_pct');
      } else if (metric.length > MAX_METRIC_NAME_LENGTH || !METRIC_NAME_PATTERN.test(metric)) {
        problem(
          'metric',
          `must match [a-z][a-z0-9_.]* (at most ${MAX_METRIC_NAME_LENGTH} characters), got ${JSON.stringify(metric).slice(0, 80)}`,
        );
      }
      const value = s.value;
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        problem(
          'value',
          `must be a finite number, got ${typeof value === 'number' ? String(value) : JSON.stringify(value ?? null).slice(0, 40)}`,
        );
      }
      let tsMs = nowMs;
      if (s.ts !== undefined) {
        const parsed = parseTimestamp(s.ts);
        if (parsed === undefined) {
          problem('ts', 'must be epoch milliseconds or an ISO-8601 time with a zone');
        } else if (parsed > latestMs) {
          problem('ts', `is more than 5 minutes in the future (${new Date(parsed).toISOString()})`);
        } else if (parsed < oldestMs) {
          problem(
            'ts',
            `is older than the raw retention (${new Date(oldestMs).toISOString()})` +
              (typeof s.ts === 'number' && s.ts < 1e11 ? '; ts is epoch milliseconds, this looks like seconds' : ''),
          );
        } else {
          tsMs = parsed;
        }
      }
      let labelsJson = '{}';
      if (s.labels !== undefined && s.labels !== null) {
        const checked = checkLabels(s.labels);
        if (typeof checked === 'string') {
          problem('labels', checked);
        } else {
          labelsJson = canonicalLabels(checked);
        }
      }
      if (bad) {
        invalid += 1;
        continue;
      }
      batch.hosts.push(host as string);
      batch.metrics.push(metric as string);
      batch.labels.push(labelsJson);
      batch.tsMs.push(tsMs);
      batch.values.push(value as number);
      if (tsMs < minTsMs) {
        minTsMs = tsMs;
      }
    }
    if (invalid > 0) {
      this.metrics?.metricBatchesRejected.inc({ reason: 'invalid' });
      const first = problems[0];
      throw new BatchValidationError(
        first?.field ?? 'samples',
        `${invalid} of ${samples.length} samples are invalid; nothing was stored. First: ${first?.field ?? 'samples'} ${first?.message ?? ''}`.trim(),
        problems,
        invalid,
      );
    }
    return { ...batch, minTsMs };
  }

  private async store(batch: Batch, options: IngestOptions): Promise<IngestResult> {
    const now = options.now ?? this.clock();
    const hostIds =
      options.seenAt === 'sample-time'
        ? await this.resolveHostsBySampleTime(batch, options.intervalS ?? null)
        : await this.resolveHosts(batch.hosts, now, options.intervalS ?? null);
    const { ids, created } = await this.resolveSeriesIds(batch, hostIds);
    const inserted = await this.repository.insertSamples({ seriesIds: ids, tsMs: batch.tsMs, values: batch.values });
    if (batch.minTsMs < now.getTime() - this.config.rollupGraceMs) {
      // The watermark is never after now, so only samples older than now - grace can be
      // older than watermark - grace: the statement runs only for such batches.
      await this.repository.rewindRollups(new Date(batch.minTsMs), this.config.rollupGraceMs);
    }
    const received = batch.values.length;
    this.metrics?.metricSamples.inc({ outcome: 'inserted' }, inserted);
    if (received > inserted) {
      this.metrics?.metricSamples.inc({ outcome: 'duplicate' }, received - inserted);
    }
    return { received, inserted, duplicates: received - inserted, seriesCreated: created };
  }

  private async resolveHosts(
    hosts: readonly string[],
    now: Date,
    intervalS: number | null,
  ): Promise<Map<string, number>> {
    const nowMs = now.getTime();
    const ids = new Map<string, number>();
    const touch: string[] = [];
    for (const host of new Set(hosts)) {
      const cached = this.hostIds.get(host);
      if (cached === undefined || nowMs - cached.touchedAt >= HOST_TOUCH_INTERVAL_MS) {
        touch.push(host);
      } else {
        ids.set(host, cached.id);
      }
    }
    if (touch.length > 0) {
      const touched = await this.repository.upsertHosts(
        touch.map((name) => ({ name, firstSeenMs: nowMs, lastSeenMs: nowMs })),
        intervalS,
      );
      for (const [host, id] of touched) {
        this.hostIds.set(host, { id, touchedAt: nowMs });
        ids.set(host, id);
      }
    }
    return ids;
  }

  /** Hosts seen at the times of their samples (no cache: imports are not a hot path). */
  private async resolveHostsBySampleTime(batch: Batch, intervalS: number | null): Promise<Map<string, number>> {
    const spans = new Map<string, { name: string; firstSeenMs: number; lastSeenMs: number }>();
    batch.hosts.forEach((name, i) => {
      const ts = batch.tsMs[i] as number;
      const span = spans.get(name);
      if (span === undefined) {
        spans.set(name, { name, firstSeenMs: ts, lastSeenMs: ts });
      } else {
        span.firstSeenMs = Math.min(span.firstSeenMs, ts);
        span.lastSeenMs = Math.max(span.lastSeenMs, ts);
      }
    });
    const ids = await this.repository.upsertHosts([...spans.values()], intervalS);
    for (const [name, id] of ids) {
      // Cached for series resolution only: touchedAt 0 lets the next live report touch it.
      this.hostIds.set(name, { id, touchedAt: 0 });
    }
    return ids;
  }

  private async resolveSeriesIds(
    batch: Batch,
    hostIds: ReadonlyMap<string, number>,
  ): Promise<{ ids: number[]; created: number }> {
    const count = batch.values.length;
    const ids = new Array<number>(count);
    const missing = new Map<string, { key: SeriesKey; indexes: number[] }>();
    for (let i = 0; i < count; i += 1) {
      const host = batch.hosts[i] as string;
      const cacheKey = `${host}\u0000${batch.metrics[i]}\u0000${batch.labels[i]}`;
      const id = this.seriesIds.get(cacheKey);
      if (id !== undefined) {
        ids[i] = id;
        continue;
      }
      let entry = missing.get(cacheKey);
      if (entry === undefined) {
        const metric = batch.metrics[i] as string;
        entry = {
          key: {
            hostId: hostIds.get(host) as number,
            metric,
            labelsJson: batch.labels[i] as string,
            unit: unitOf(metric),
          },
          indexes: [],
        };
        missing.set(cacheKey, entry);
      }
      entry.indexes.push(i);
    }
    if (missing.size === 0) {
      return { ids, created: 0 };
    }
    const entries = [...missing];
    const resolved = await this.repository.resolveSeries(entries.map(([, entry]) => entry.key));
    if (this.seriesIds.size + entries.length > SERIES_CACHE_LIMIT) {
      this.seriesIds.clear();
    }
    entries.forEach(([cacheKey, entry], n) => {
      const id = resolved.ids[n];
      if (id === undefined) {
        throw new Error(`series ${cacheKey} was neither created nor found`);
      }
      this.seriesIds.set(cacheKey, id);
      for (const i of entry.indexes) {
        ids[i] = id;
      }
    });
    return { ids, created: resolved.created };
  }
}

/** Epoch milliseconds or an ISO-8601 string with a zone; undefined when neither. */
export function parseTimestamp(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? value : undefined;
  }
  if (
    typeof value === 'string' &&
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(value)
  ) {
    const parsed = Date.parse(value);
    return Number.isNaN(parsed) ? undefined : parsed;
  }
  return undefined;
}

/** Checks a label set; returns it, or a message saying what is wrong. */
function checkLabels(value: unknown): Labels | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'must be an object of string values, e.g. { "mount": "/" }';
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_LABELS) {
    return `may have at most ${MAX_LABELS} labels, got ${entries.length}`;
  }
  for (const [name, labelValue] of entries) {
    if (!LABEL_NAME_PATTERN.test(name) || name.length > 100) {
      return `label name ${JSON.stringify(name).slice(0, 60)} must match [a-zA-Z_][a-zA-Z0-9_]*`;
    }
    if (typeof labelValue !== 'string') {
      return `label ${name} must be a string, got ${typeof labelValue}`;
    }
    if (labelValue.length > MAX_LABEL_VALUE_LENGTH || labelValue.includes('\u0000')) {
      return `label ${name} must be at most ${MAX_LABEL_VALUE_LENGTH} characters without NUL`;
    }
  }
  return value as Labels;
}
