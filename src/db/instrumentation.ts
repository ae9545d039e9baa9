/**
 * Query instrumentation shared by both engines: Kysely's `log` hook feeds every query's
 * duration into a Prometheus histogram labelled by its statement shape, counts errors by
 * SQLSTATE, logs slow queries, and keeps the figures `/database/status` reports.
 */
import type { LogEvent } from 'kysely';
import type { Logger } from '../logger.js';
import type { HistogramSeries } from '../labelled-histogram.js';
import type { Metrics } from '../metrics.js';

/** Distinct statement shapes kept as label values; later ones are counted as "other". */
const MAX_SHAPES = 500;
const MAX_SHAPE_LENGTH = 240;
/** Durations kept for percentiles (a ring buffer of the most recent queries). */
const RESERVOIR_SIZE = 10_000;

/**
 * Reduces a SQL text to its shape: literals become `?`, lists of placeholders collapse,
 * whitespace is normalized. Parameter values never appear in a shape.
 */
export function normalizeStatement(sqlText: string): string {
  let shape = sqlText
    .replace(/--[^\n]*/g, ' ')
    .replace(/'(?:[^']|'')*'/g, '?')
    .replace(/\$\d+(?:\s*,\s*\$\d+)*/g, '$n')
    .replace(/(?<![\w$."])-?\d+(?:\.\d+)?(?![\w"])/g, '?')
    .replace(/\(\s*\?(?:\s*,\s*\?)*\s*\)/g, '(?)')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();
  if (shape.length > MAX_SHAPE_LENGTH) {
    shape = `${shape.slice(0, MAX_SHAPE_LENGTH)}…`;
  }
  return shape;
}

export interface QueryStats {
  readonly count: number;
  readonly errors: number;
  readonly errorRate: number;
  readonly slowCount: number;
  readonly p50Ms: number | null;
  readonly p95Ms: number | null;
  readonly p99Ms: number | null;
  /** The slowest shapes by their maximum duration since start. */
  readonly slowest: { statement: string; count: number; avgMs: number; maxMs: number }[];
}

interface ShapeStats {
  /** This shape's histogram series, resolved once so each query only counts. */
  readonly series: HistogramSeries;
  count: number;
  totalMs: number;
  maxMs: number;
}

export class QueryInstrumentation {
  private readonly shapeCache = new Map<string, string>();
  private readonly perShape = new Map<string, ShapeStats>();
  private readonly reservoir = new Float64Array(RESERVOIR_SIZE);
  private reservoirNext = 0;
  private reservoirFilled = 0;
  private count = 0;
  private errors = 0;
  private slowCount = 0;

  constructor(
    private readonly engine: string,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly slowQueryMs: number,
  ) {}

  /** Kysely `log` option. */
  readonly onLog = (event: LogEvent): void => {
    const durationMs = event.queryDurationMillis;
    const shape = this.shapeOf(event.query.sql);
    this.count += 1;
    this.reservoir[this.reservoirNext] = durationMs;
    this.reservoirNext = (this.reservoirNext + 1) % RESERVOIR_SIZE;
    this.reservoirFilled = Math.min(this.reservoirFilled + 1, RESERVOIR_SIZE);
    let stats = this.perShape.get(shape);
    if (stats === undefined) {
      stats = {
        series: this.metrics.dbQueryDuration.series({ statement: shape, engine: this.engine }),
        count: 0,
        totalMs: 0,
        maxMs: 0,
      };
      this.perShape.set(shape, stats);
    }
    stats.series.observe(durationMs / 1000);
    stats.count += 1;
    stats.totalMs += durationMs;
    stats.maxMs = Math.max(stats.maxMs, durationMs);

    if (event.level === 'error') {
      this.errors += 1;
      this.metrics.dbQueryErrors.inc({ sqlstate: sqlStateOf(event.error), engine: this.engine });
    }
    if (durationMs >= this.slowQueryMs) {
      this.slowCount += 1;
      this.metrics.dbSlowQueries.inc({ engine: this.engine });
      this.logger.warn({ statement: shape, duration_ms: Math.round(durationMs) }, 'slow query');
    }
  };

  private shapeOf(sqlText: string): string {
    const cached = this.shapeCache.get(sqlText);
    if (cached !== undefined) {
      return cached;
    }
    let shape = normalizeStatement(sqlText);
    if (!this.perShape.has(shape) && this.perShape.size >= MAX_SHAPES) {
      shape = 'other';
    }
    // The cache is bounded too: SQL texts with inlined values would otherwise grow it forever.
    if (this.shapeCache.size < MAX_SHAPES * 4) {
      this.shapeCache.set(sqlText, shape);
    }
    return shape;
  }

  /** Query figures since the process started. */
  stats(): QueryStats {
    const sorted = Array.from(this.reservoir.subarray(0, this.reservoirFilled)).sort((a, b) => a - b);
    const slowest = [...this.perShape.entries()]
      .sort((a, b) => b[1].maxMs - a[1].maxMs)
      .slice(0, 10)
      .map(([statement, s]) => ({
        statement,
        count: s.count,
        avgMs: round(s.totalMs / s.count),
        maxMs: round(s.maxMs),
      }));
    return {
      count: this.count,
      errors: this.errors,
      errorRate: this.count === 0 ? 0 : this.errors / this.count,
      slowCount: this.slowCount,
      p50Ms: quantile(sorted, 0.5),
      p95Ms: quantile(sorted, 0.95),
      p99Ms: quantile(sorted, 0.99),
      slowest,
    };
  }
}

function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) {
    return null;
  }
  const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return round(sorted[Math.max(0, index)] ?? 0);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}

/** The SQLSTATE of a database error, or "connection" for errors without one (socket, timeout). */
export function sqlStateOf(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error) {
    const code = error.code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
      return code;
    }
  }
  return 'connection';
}
