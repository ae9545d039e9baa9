/**
 * Reading host metrics: history of one or more series with a statistical summary, the
 * choice of source table (raw, 1m, 1h) by range and step, and the host list.
 *
 * Sources:
 * - points: a step that is a multiple of an hour reads 1-hour rollups, of a minute
 *   1-minute rollups, anything finer raw samples.
 * - summary: windows up to 25 hours are summarized from raw samples (exact percentiles
 *   and trend); up to 8 days from 1-minute rollups; longer from 1-hour rollups. From
 *   rollups, count/avg/min/max/stddev are exact, while percentiles and trend are computed
 *   over the bucket means (approximate) — the response names the source.
 */
import type { Kysely } from 'kysely';
import type { MetricsConfig } from '../../config/index.js';
import type { DB } from '../../db/schema.js';
import { NotFoundError, ValidationError } from '../../errors.js';
import type { AuditService } from '../access/audit-service.js';
import type { Actor } from '../access/permissions.js';
import { MetricsQueryRepository, type HostRow } from './query-repository.js';
import { parseTimestamp } from './ingest-service.js';
import {
  LABEL_NAME_PATTERN,
  METRIC_NAME_PATTERN,
  type HistoryPoint,
  type Labels,
  type RollupSource,
  type SeriesInfo,
  type SeriesSummary,
} from './types.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** Steps the automatic choice picks from, seconds. */
const NICE_STEPS_S = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
/** The automatic step aims at no more points than this per series. */
const TARGET_POINTS = 720;
/** A query may ask for at most this many points per series. */
export const MAX_POINTS = 11_000;
/** At most this many series per query. */
export const MAX_SERIES = 50;
/** Longest window of a query. */
const MAX_RANGE_MS = 3 * 366 * DAY_MS;
/** Windows up to this long are summarized from raw samples. */
const RAW_SUMMARY_MAX_MS = 25 * HOUR_MS;
/** Windows up to this long are summarized from 1-minute rollups. */
const MINUTE_SUMMARY_MAX_MS = 8 * DAY_MS;

/**
 * Key metrics shown for each host, with the key they appear under in `latest`; a `total`
 * sums the metric over all its label sets (network over interfaces).
 */
export const HOST_KEY_METRICS: readonly { name: string; labels: Labels; key: string; total?: boolean }[] = [
  { name: 'cpu.usage_pct', labels: {}, key: 'cpu.usage_pct' },
  { name: 'mem.used_pct', labels: {}, key: 'mem.used_pct' },
  { name: 'disk.used_pct', labels: { mount: '/' }, key: 'disk.used_pct{mount="/"}' },
  { name: 'load.1', labels: {}, key: 'load.1' },
  { name: 'net.rx_bytes_per_s', labels: {}, key: 'net.rx_bytes_per_s', total: true },
  { name: 'net.tx_bytes_per_s', labels: {}, key: 'net.tx_bytes_per_s', total: true },
];

export interface HistoryRequest {
  readonly seriesId?: number;
  readonly host?: string;
  /** A metric name, optionally with labels: `disk.used_pct{mount="/"}`. */
  readonly metric?: string;
  /** ISO-8601 or epoch ms; default: `to` − 1 hour. */
  readonly from?: string | number;
  /** ISO-8601 or epoch ms; default: now. */
  readonly to?: string | number;
  /** Seconds (or a duration like `5m`); default: chosen for ~720 points. */
  readonly step?: string | number;
}

export interface SeriesHistory {
  readonly series: SeriesInfo;
  readonly points: HistoryPoint[];
  readonly summary: SeriesSummary;
}

export interface History {
  readonly from: Date;
  readonly to: Date;
  readonly stepS: number;
  /** Table the points were read from. */
  readonly source: RollupSource;
  /** Table the summary was computed from. */
  readonly summarySource: RollupSource;
  readonly series: SeriesHistory[];
  /** More series matched than MAX_SERIES; only the first are returned. */
  readonly truncated: boolean;
}

export type HostStatus = 'reporting' | 'stale';

export interface HostOverview extends HostRow {
  readonly status: HostStatus;
  /** Seconds since the host last reported. */
  readonly lastSeenAgoS: number;
}

/** Parses `name` or `name{key="value",…}`. */
export function parseSelector(selector: string): { metric: string; labels: Labels } {
  const match = /^([^{}\s]+)\s*(?:\{(.*)\})?$/.exec(selector.trim());
  if (match === null || !METRIC_NAME_PATTERN.test(match[1] ?? '')) {
    throw new ValidationError(
      'metric',
      `metric must be a name like cpu.usage_pct, optionally with labels like disk.used_pct{mount="/"}, got ${JSON.stringify(selector)}`,
    );
  }
  const labels: Record<string, string> = {};
  const body = match[2]?.trim() ?? '';
  if (body !== '') {
    const pair = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;
    let index = 0;
    while (index < body.length) {
      pair.lastIndex = index;
      const found = pair.exec(body);
      if (found === null || !LABEL_NAME_PATTERN.test(found[1] ?? '')) {
        throw new ValidationError('metric', `metric labels must look like {key="value",other="v"}, got {${body}}`);
      }
      labels[found[1] as string] = (found[2] as string).replace(/\\(.)/g, '$1');
      index = pair.lastIndex;
    }
  }
  return { metric: match[1] as string, labels };
}

/** Parses a step: seconds as a number, or a duration like `30s`, `5m`, `1h`, `1d`. */
export function parseStep(step: string | number): number {
  if (typeof step === 'number') {
    if (Number.isInteger(step) && step >= 1) {
      return step;
    }
  } else {
    const match = /^(\d+)(s|m|h|d)?$/.exec(step.trim());
    if (match !== null) {
      const factor = { s: 1, m: 60, h: 3600, d: 86400 }[match[2] ?? 's'] ?? 1;
      const value = Number(match[1]) * factor;
      if (value >= 1) {
        return value;
      }
    }
  }
  throw new ValidationError(
    'step',
    `step must be a whole number of seconds ≥ 1 or a duration like 5m, got ${JSON.stringify(step)}`,
  );
}

/** The step chosen when none is given: the smallest nice step giving at most ~720 points. */
export function autoStep(rangeMs: number): number {
  const wanted = rangeMs / 1000 / TARGET_POINTS;
  return NICE_STEPS_S.find((s) => s >= wanted) ?? Math.ceil(wanted / 86400) * 86400;
}

/** Which table the points and the summary come from (see the file comment). */
export function chooseSources(
  fromMs: number,
  toMs: number,
  stepS: number,
  nowMs: number,
  config: Pick<MetricsConfig, 'retentionRawDays' | 'retention1mDays'>,
): { points: RollupSource; summary: RollupSource } {
  const rawFromMs = nowMs - config.retentionRawDays * DAY_MS;
  const minuteFromMs = nowMs - config.retention1mDays * DAY_MS;
  const points: RollupSource = stepS % 3600 === 0 ? '1h' : stepS % 60 === 0 ? '1m' : 'raw';
  const rangeMs = toMs - fromMs;
  let summary: RollupSource = rangeMs <= RAW_SUMMARY_MAX_MS ? 'raw' : rangeMs <= MINUTE_SUMMARY_MAX_MS ? '1m' : '1h';
  if (summary === 'raw' && fromMs < rawFromMs) {
    summary = '1m';
  }
  if (summary === '1m' && fromMs < minuteFromMs) {
    summary = '1h';
  }
  return { points, summary };
}

function parseTime(value: string | number, field: string): number {
  const parsed = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : parseTimestamp(value);
  if (parsed === undefined) {
    throw new ValidationError(
      field,
      `${field} must be an ISO-8601 time with a zone or epoch milliseconds, got ${JSON.stringify(value)}`,
    );
  }
  return parsed;
}

export class MetricsQueryService {
  private readonly repository: MetricsQueryRepository;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly config: MetricsConfig,
    private readonly audit?: AuditService,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.repository = new MetricsQueryRepository(db);
  }

  /** History with points and a summary for each matching series. */
  async history(request: HistoryRequest): Promise<History> {
    const nowMs = this.clock().getTime();
    const toMs = request.to === undefined ? nowMs : parseTime(request.to, 'to');
    const fromMs = request.from === undefined ? toMs - HOUR_MS : parseTime(request.from, 'from');
    if (fromMs >= toMs) {
      throw new ValidationError(
        'from',
        `from must be before to, got from=${new Date(fromMs).toISOString()} to=${new Date(toMs).toISOString()}`,
      );
    }
    if (toMs - fromMs > MAX_RANGE_MS) {
      throw new ValidationError('from', 'the window from..to may span at most 3 years');
    }
    const stepS = request.step === undefined ? autoStep(toMs - fromMs) : parseStep(request.step);
    if ((toMs - fromMs) / 1000 / stepS > MAX_POINTS) {
      throw new ValidationError(
        'step',
        `step ${stepS}s gives more than ${MAX_POINTS} points for this window; use a step of at least ${Math.ceil((toMs - fromMs) / 1000 / MAX_POINTS)}s`,
      );
    }
    if (request.seriesId === undefined && (request.host === undefined || request.metric === undefined)) {
      throw new ValidationError(request.host === undefined ? 'host' : 'metric', 'give series, or host and metric');
    }
    const selector = request.metric === undefined ? undefined : parseSelector(request.metric);
    const found = await this.repository.findSeries(
      { seriesId: request.seriesId, host: request.host, metric: selector?.metric, labels: selector?.labels },
      MAX_SERIES + 1,
    );
    if (found.length === 0) {
      throw new NotFoundError(
        request.seriesId !== undefined
          ? `No series with id ${request.seriesId}`
          : `No series ${request.metric ?? ''} on host ${request.host ?? ''}`,
      );
    }
    const series = found.slice(0, MAX_SERIES);
    const sources = chooseSources(fromMs, toMs, stepS, nowMs, this.config);
    const from = new Date(fromMs);
    const to = new Date(toMs);
    const ids = series.map((s) => s.id);
    // Rollup buckets are read from the start of the bucket holding `from`.
    const alignedFrom = (source: RollupSource): Date =>
      source === 'raw'
        ? from
        : new Date(Math.floor(fromMs / (source === '1h' ? HOUR_MS : 60_000)) * (source === '1h' ? HOUR_MS : 60_000));
    const [points, summaries] = await Promise.all([
      this.repository.points(ids, alignedFrom(sources.points), to, stepS, sources.points),
      this.repository.summaries(ids, alignedFrom(sources.summary), to, sources.summary),
    ]);
    return {
      from,
      to,
      stepS,
      source: sources.points,
      summarySource: sources.summary,
      truncated: found.length > MAX_SERIES,
      series: series.map((s) => ({
        series: s,
        points: points.get(s.id) ?? [],
        summary: summaries.get(s.id) as SeriesSummary,
      })),
    };
  }

  /** Series of a host (or of a metric across hosts). */
  async listSeries(filter: { host?: string; metric?: string }, limit = 1000): Promise<SeriesInfo[]> {
    const selector = filter.metric === undefined ? undefined : parseSelector(filter.metric);
    return this.repository.findSeries({ host: filter.host, metric: selector?.metric, labels: selector?.labels }, limit);
  }

  /** Live hosts with status and latest key values. */
  async hosts(): Promise<HostOverview[]> {
    const nowMs = this.clock().getTime();
    const rows = await this.repository.listHosts(HOST_KEY_METRICS);
    return rows.map((row) => {
      const intervalS = row.intervalS ?? this.config.collectIntervalMs / 1000;
      const agoMs = Math.max(0, nowMs - row.lastSeenAt.getTime());
      return {
        ...row,
        status: agoMs > 3 * intervalS * 1000 ? 'stale' : 'reporting',
        lastSeenAgoS: Math.round(agoMs / 1000),
      };
    });
  }

  /** Soft-deletes a host: it leaves the lists, its history stays; reporting again restores it. */
  async deleteHost(actor: Actor, id: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const name = await new MetricsQueryRepository(trx).softDeleteHost(id, trx);
      if (name === undefined) {
        throw new NotFoundError(`No host with id ${id}`);
      }
      await this.audit?.record(
        actor,
        { action: 'host.delete', entityType: 'host', entityId: id, before: { name } },
        trx,
      );
    });
  }
}
