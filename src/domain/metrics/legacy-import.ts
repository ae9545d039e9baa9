/**
 * Legacy JSON import, the pure part: which fields of an old tool's records become which
 * Warden series, how their timestamps are read, and whether a record is usable. No I/O;
 * `ImportService` streams files through it.
 *
 * A legacy record is a flat JSON object such as
 * `{ "timestamp": "2024-03-01T12:00:00Z", "host": "web-1", "cpu_percent": 12.5, "memory": 40 }`:
 * - the timestamp is the first of `timestamp`, `ts`, `time`, `created_at` present (see
 *   `parseLegacyTimestamp` for the accepted forms);
 * - `host` names the host, else the import's default host (`--host`), else the record is
 *   rejected;
 * - every field in the field map gives one sample; `null` means "not measured" and gives
 *   none; any other non-number rejects the record;
 * - other fields are ignored and reported, so the user can map them with `--map`.
 */
import { ValidationError } from '../../errors.js';
import {
  LABEL_NAME_PATTERN,
  MAX_HOST_NAME_LENGTH,
  MAX_LABELS,
  MAX_LABEL_VALUE_LENGTH,
  MAX_METRIC_NAME_LENGTH,
  METRIC_NAME_PATTERN,
  canonicalLabels,
  formatSeries,
  type Labels,
  type SampleInput,
} from './types.js';

/**
 * The built-in field table: legacy field → Warden series (`name` or `name{label="value"}`).
 * README's "Legacy JSON import" section shows the same table.
 */
export const LEGACY_FIELD_TABLE: readonly { readonly field: string; readonly series: string }[] = [
  { field: 'cpu_percent', series: 'cpu.usage_pct' },
  { field: 'cpu', series: 'cpu.usage_pct' },
  { field: 'memory_percent', series: 'mem.used_pct' },
  { field: 'memory', series: 'mem.used_pct' },
  { field: 'mem_percent', series: 'mem.used_pct' },
  { field: 'disk_percent', series: 'disk.used_pct{mount="/"}' },
  { field: 'disk', series: 'disk.used_pct{mount="/"}' },
  { field: 'network_in', series: 'net.rx_bytes_per_s' },
  { field: 'network_out', series: 'net.tx_bytes_per_s' },
  { field: 'load', series: 'load.1' },
  { field: 'load_avg', series: 'load.1' },
  { field: 'swap_percent', series: 'swap.used_pct' },
];

/** Fields that may carry the record's time, in order of preference. */
export const TIMESTAMP_FIELDS: readonly string[] = ['timestamp', 'ts', 'time', 'created_at'];
/** The field naming the record's host. */
export const HOST_FIELD = 'host';

/**
 * Epoch numbers below this are seconds, at or above it milliseconds. 1e11 seconds is the
 * year 5138; 1e11 milliseconds is 1973-03-03: no metric record is near either, so the two
 * cannot be confused.
 */
export const EPOCH_SECONDS_BELOW = 1e11;

/** A Warden series a legacy field becomes. */
export interface MetricTarget {
  readonly metric: string;
  readonly labels: Labels;
}

/** Legacy field → target; `null` ignores the field on purpose (`--map field=-`). */
export type FieldMap = ReadonlyMap<string, MetricTarget | null>;

// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Parses `name` or `name{key="value",other="x"}` (label values in double quotes, `\"` and
 * `\\` escaped). Returns the target or a message saying what is wrong.
 */
export function parseSeriesSpec(spec: string): MetricTarget | string {
  const brace = spec.indexOf('{');
  const metric = (brace === -1 ? spec : spec.slice(0, brace)).trim();
  if (metric.length > MAX_METRIC_NAME_LENGTH || !METRIC_NAME_PATTERN.test(metric)) {
    return `metric name must match [a-z][a-z0-9_.]* (e.g. cpu.usage_pct), got ${JSON.stringify(metric)}`;
  }
  if (brace === -1) {
    return { metric, labels: {} };
  }
  const body = spec.slice(brace + 1);
  const labels: Record<string, string> = {};
  const pair = /\s*([^=\s]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})/y;
  let i = 0;
  if (/^\s*\}\s*$/.test(body)) {
    return { metric, labels };
  }
  for (;;) {
    pair.lastIndex = i;
    const match = pair.exec(body);
    if (match === null) {
      return `labels must look like {key="value",other="value"}, got ${JSON.stringify(spec.slice(brace))}`;
    }
    const [, name = '', raw = '', separator] = match;
    if (!LABEL_NAME_PATTERN.test(name)) {
      return `label name ${JSON.stringify(name)} must match [a-zA-Z_][a-zA-Z0-9_]*`;
    }
    const value = raw.replace(/\\(.)/g, '$1');
    if (value.length > MAX_LABEL_VALUE_LENGTH) {
      return `label ${name} must be at most ${MAX_LABEL_VALUE_LENGTH} characters`;
    }
    labels[name] = value;
    i = pair.lastIndex;
    if (separator === '}') {
      break;
    }
  }
  if (body.slice(i).trim() !== '') {
    return `unexpected text after the labels: ${JSON.stringify(body.slice(i))}`;
  }
  if (Object.keys(labels).length > MAX_LABELS) {
    return `at most ${MAX_LABELS} labels are allowed`;
  }
  return { metric, labels };
}

function builtInTarget(series: string): MetricTarget {
  const target = parseSeriesSpec(series);
  if (typeof target === 'string') {
    throw new Error(`LEGACY_FIELD_TABLE entry ${series}: ${target}`);
  }
  return target;
}

/** The built-in table as a map. */
export function defaultFieldMap(): Map<string, MetricTarget | null> {
  return new Map(LEGACY_FIELD_TABLE.map((entry) => [entry.field, builtInTarget(entry.series)]));
}

/**
 * The built-in table with `--map field=metric` entries added or overriding
 * (`field=-` ignores a field). Throws a ValidationError naming the bad entry.
 */
export function buildFieldMap(overrides: readonly string[]): FieldMap {
  const map = defaultFieldMap();
  for (const entry of overrides) {
    const eq = entry.indexOf('=');
    const field = eq === -1 ? '' : entry.slice(0, eq).trim();
    const spec = eq === -1 ? '' : entry.slice(eq + 1).trim();
    if (field === '' || spec === '') {
      throw new ValidationError(
        '--map',
        `--map takes field=metric (e.g. gpu_temp=gpu.temp_c), got ${JSON.stringify(entry)}`,
      );
    }
    if (field === HOST_FIELD || TIMESTAMP_FIELDS.includes(field)) {
      throw new ValidationError('--map', `--map ${field}: "${field}" is the record's host or time, not a metric`);
    }
    if (spec === '-') {
      map.set(field, null);
      continue;
    }
    const target = parseSeriesSpec(spec);
    if (typeof target === 'string') {
      throw new ValidationError('--map', `--map ${JSON.stringify(entry)}: ${target}`);
    }
    map.set(field, target);
  }
  return map;
}

/**
 * Reads a legacy timestamp; returns milliseconds since the epoch (rounded to whole
 * milliseconds) or a message. Accepted:
 * - numbers, or strings of digits: epoch seconds below 1e11 (`EPOCH_SECONDS_BELOW`),
 *   epoch milliseconds from 1e11 on; fractions allowed;
 * - ISO-8601 date and time, `T` or a space between them, optional seconds and fraction,
 *   zone `Z` or `±HH:MM` / `±HHMM`; without a zone the time is taken as UTC.
 */
export function parseLegacyTimestamp(value: unknown): number | string {
  if (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value)) {
    return parseLegacyTimestamp(Number(value));
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) {
      return `timestamp ${String(value)} must be non-negative epoch seconds or milliseconds`;
    }
    return Math.round(value < EPOCH_SECONDS_BELOW ? value * 1000 : value);
  }
  if (typeof value !== 'string') {
    return `timestamp must be ISO-8601 or epoch seconds/milliseconds, got ${describeValue(value)}`;
  }
  const match = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i.exec(
    value.trim(),
  );
  if (match === null) {
    return `timestamp ${JSON.stringify(value).slice(0, 60)} is neither ISO-8601 (2024-03-01T12:00:00Z) nor epoch seconds/milliseconds`;
  }
  const [, y, mo, d, h, mi, s = '0', fraction = '', zone = 'Z'] = match;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(utc);
  if (
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    check.getUTCHours() !== hour ||
    check.getUTCMinutes() !== minute ||
    second > 59
  ) {
    return `timestamp ${JSON.stringify(value)} is not a valid date and time`;
  }
  let offsetMs = 0;
  if (zone.toUpperCase() !== 'Z') {
    const zm = /^([+-])(\d{2}):?(\d{2})$/.exec(zone);
    const sign = zm?.[1] === '-' ? -1 : 1;
    offsetMs = sign * (Number(zm?.[2]) * 60 + Number(zm?.[3])) * 60_000;
  }
  const fractionMs = fraction === '' ? 0 : Math.round(Number(`0.${fraction}`) * 1000);
  return utc + fractionMs - offsetMs;
}

function describeValue(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'an array';
  }
  if (typeof value === 'object') {
    return 'an object';
  }
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** What a record is checked against. */
export interface RecordContext {
  readonly fieldMap: FieldMap;
  /** Host of records without a `host` field (`--host`). */
  readonly defaultHost?: string;
  /** Newest accepted time: now + 5 minutes. */
  readonly latestMs: number;
  /** Oldest accepted time: now - the 1-hour rollup retention. */
  readonly oldestMs: number;
}

/** A usable record: its host, time and one sample per mapped field with a value. */
export interface LegacyRecord {
  readonly host: string;
  readonly tsMs: number;
  readonly samples: readonly SampleInput[];
}

export type RecordOutcome =
  | { readonly ok: true; readonly record: LegacyRecord; readonly unknownFields: readonly string[] }
  | { readonly ok: false; readonly reason: string; readonly unknownFields: readonly string[] };

/** Checks a host name as ingest does; returns a message or undefined. */
export function hostProblem(host: string): string | undefined {
  if (host === '') {
    return 'host must not be empty';
  }
  if (host.length > MAX_HOST_NAME_LENGTH || CONTROL_CHARS.test(host)) {
    return `host must be at most ${MAX_HOST_NAME_LENGTH} characters without control characters`;
  }
  return undefined;
}

/** Turns one parsed JSON value into a record, or says why it cannot be imported. */
export function mapLegacyRecord(value: unknown, context: RecordContext): RecordOutcome {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, reason: `record must be a JSON object, got ${describeValue(value)}`, unknownFields: [] };
  }
  const record = value as Record<string, unknown>;
  const unknownFields: string[] = [];
  const fields: [string, MetricTarget, unknown][] = [];
  let timeField: string | undefined;
  for (const key of Object.keys(record)) {
    if (key === HOST_FIELD) {
      continue;
    }
    if (TIMESTAMP_FIELDS.includes(key)) {
      if (timeField === undefined || TIMESTAMP_FIELDS.indexOf(key) < TIMESTAMP_FIELDS.indexOf(timeField)) {
        timeField = key;
      }
      continue;
    }
    const target = context.fieldMap.get(key);
    if (target === undefined) {
      unknownFields.push(key);
    } else if (target !== null) {
      fields.push([key, target, record[key]]);
    }
  }
  const reject = (reason: string): RecordOutcome => ({ ok: false, reason, unknownFields });

  if (timeField === undefined) {
    return reject(`record has no timestamp (expected one of ${TIMESTAMP_FIELDS.join(', ')})`);
  }
  const tsMs = parseLegacyTimestamp(record[timeField]);
  if (typeof tsMs === 'string') {
    return reject(`${timeField}: ${tsMs}`);
  }
  if (tsMs > context.latestMs) {
    const hint = tsMs >= 1e14 ? ' (microseconds or nanoseconds? give seconds or milliseconds)' : '';
    return reject(`${timeField}: ${isoOrRaw(tsMs)} is more than 5 minutes in the future${hint}`);
  }
  if (tsMs < context.oldestMs) {
    return reject(
      `${timeField}: ${new Date(tsMs).toISOString()} is older than the 1-hour rollup retention ` +
        `(kept from ${new Date(context.oldestMs).toISOString()}; see WARDEN_RETENTION_1H_DAYS)`,
    );
  }

  let host: string;
  const givenHost = record[HOST_FIELD];
  if (givenHost === undefined || givenHost === null) {
    if (context.defaultHost === undefined) {
      return reject('record has no "host" field and no --host was given');
    }
    host = context.defaultHost;
  } else if (typeof givenHost !== 'string') {
    return reject(`host must be a string, got ${describeValue(givenHost)}`);
  } else {
    host = givenHost;
  }
  const badHost = hostProblem(host);
  if (badHost !== undefined) {
    return reject(badHost);
  }

  if (fields.length === 0) {
    return reject(
      unknownFields.length === 0
        ? 'record has no metric fields'
        : `record has no known metric fields (unknown: ${unknownFields.slice(0, 5).join(', ')}); map them with --map field=metric`,
    );
  }
  const samples: SampleInput[] = [];
  // Two fields mapped to one series (cpu and cpu_percent) must agree, or the stored value would be arbitrary.
  const seen = new Map<string, { field: string; value: number }>();
  for (const [field, target, raw] of fields) {
    if (raw === null) {
      continue;
    }
    if (typeof raw !== 'number' || !Number.isFinite(raw)) {
      return reject(
        `${field} must be a number (mapped to ${formatSeries(target.metric, target.labels)}), got ${describeValue(raw)}`,
      );
    }
    const key = `${target.metric}\u0000${canonicalLabels(target.labels)}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      if (earlier.value !== raw) {
        return reject(
          `${earlier.field} and ${field} both map to ${formatSeries(target.metric, target.labels)} but differ (${earlier.value} vs ${raw})`,
        );
      }
      continue;
    }
    seen.set(key, { field, value: raw });
    samples.push({ host, metric: target.metric, value: raw, ts: tsMs, labels: target.labels });
  }
  return { ok: true, record: { host, tsMs, samples }, unknownFields };
}

function isoOrRaw(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms} ms` : date.toISOString();
}
