/**
 * Host metrics: the shared types.
 *
 * Glossary:
 * - host: a machine that reports metrics (Warden's own, an agent's, a scrape target's).
 * - series: one metric of one host with one set of labels, e.g. `disk.used_pct{mount="/"}`.
 * - sample: one value of a series at a time `ts`.
 * - rollup: count, sum, min, max and m2 of a series over a 1-minute or 1-hour bucket.
 * - watermark: 1-minute buckets before it have been rolled up.
 * - grace window: how late a sample may arrive and still be folded in by the next run
 *   without rewinding the watermark.
 */

/** Metric names: lower case, digits, `_` and `.`, starting with a letter. */
export const METRIC_NAME_PATTERN = /^[a-z][a-z0-9_.]*$/;
export const MAX_METRIC_NAME_LENGTH = 200;
export const MAX_HOST_NAME_LENGTH = 253;
/** Label names follow Prometheus: letters, digits and `_`, not starting with a digit. */
export const LABEL_NAME_PATTERN = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const MAX_LABELS = 16;
export const MAX_LABEL_VALUE_LENGTH = 500;
/** Largest ingest request, in samples (413 above). */
export const MAX_SAMPLES_PER_REQUEST = 10_000;
/** A sample may be at most this far in the future. */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;

export type Labels = Readonly<Record<string, string>>;

/** A sample as a sender gives it (ingest API, agent, scraper, collector, import). */
export interface SampleInput {
  readonly host: string;
  readonly metric: string;
  readonly value: number;
  /** Milliseconds since the epoch; the arrival time when omitted. */
  readonly ts?: number;
  readonly labels?: Labels;
}

/** What one ingest call did. */
export interface IngestResult {
  /** Samples given. */
  readonly received: number;
  /** Samples newly stored. */
  readonly inserted: number;
  /** Samples already stored with the same series and time (re-sent), skipped. */
  readonly duplicates: number;
  /** Series created by this call. */
  readonly seriesCreated: number;
}

/** One problem of a rejected batch: which sample, which field, what was expected. */
export interface SampleProblem {
  readonly index: number;
  readonly field: string;
  readonly message: string;
}

export type RollupSource = 'raw' | '1m' | '1h';

/** One point of a history: the samples of one step aggregated. */
export interface HistoryPoint {
  readonly ts: Date;
  readonly avg: number;
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

/** Statistical summary of a series over a window. */
export interface SeriesSummary {
  readonly count: number;
  readonly avg: number | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly stddev: number | null;
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly first: { readonly ts: Date; readonly value: number } | null;
  readonly last: { readonly ts: Date; readonly value: number } | null;
  /** Least-squares slope of value over time, per hour. */
  readonly trendPerHour: number | null;
  /** Where it was computed from; percentiles and trend are exact only from `raw`. */
  readonly source: RollupSource;
}

/** A series as listed and returned with histories. */
export interface SeriesInfo {
  readonly id: number;
  readonly hostId: number;
  readonly host: string;
  readonly metric: string;
  readonly labels: Labels;
  readonly unit: string | null;
}

/** Unit of a metric, inferred from its name's suffix. */
export function unitOf(metric: string): string | null {
  if (metric.endsWith('_pct')) {
    return 'percent';
  }
  if (metric.endsWith('_bytes_per_s')) {
    return 'bytes/s';
  }
  if (metric.endsWith('_bytes')) {
    return 'bytes';
  }
  if (metric.endsWith('_seconds') || metric.endsWith('_s')) {
    return 'seconds';
  }
  return null;
}

/** Canonical text of a label set: keys sorted, so equal sets give equal keys. */
export function canonicalLabels(labels: Labels | undefined): string {
  if (labels === undefined) {
    return '{}';
  }
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) {
    return '{}';
  }
  const sorted: Record<string, string> = {};
  for (const key of keys) {
    sorted[key] = labels[key] ?? '';
  }
  return JSON.stringify(sorted);
}

/** `name{a="1",b="2"}` for people and logs. */
export function formatSeries(metric: string, labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) {
    return metric;
  }
  return `${metric}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
}
