/**
 * Prometheus text exposition (format 0.0.4, as node_exporter and every client library
 * serve it) → flat samples `{ name, metric, labels, value }`, parsed by the maintained
 * `parse-prometheus-text-format` package and checked here.
 *
 * What a sample is: one line of the exposition. Counters, gauges and untyped metrics give
 * one sample per line; a histogram `x` gives `x_bucket{le="…"}` per bucket plus `x_sum` and
 * `x_count`, a summary `x` gives `x{quantile="…"}` plus `x_sum` and `x_count` — exactly the
 * series Prometheus itself stores. Timestamps written in the exposition are ignored: the
 * scraper stores every sample at the time of the scrape.
 *
 * The library folds histogram and summary lines into one object per family and, in 1.1.1,
 * drops their labels while doing so (`h_bucket{handler="/a",le="1"}` loses `handler`, and
 * the buckets of every handler overwrite each other). So their `# TYPE` lines are read
 * here and handed to the library as `untyped`: it then returns every line as it is, and the
 * family and type of each sample come from the `# TYPE` lines read here.
 *
 * Name mapping (Prometheus → Warden, which allows `[a-z][a-z0-9_.]*`): lower-cased, every
 * other character (`:` in recording-rule names) becomes `_`, and a name that does not start
 * with a letter gets an `m` in front (`_x` → `m_x`, `:x` → `m_x`). Names that differ only
 * in letter case therefore land in one series; the scraper keeps the first of them.
 *
 * Invariants: the result holds finite values only (NaN and ±Inf are counted in `nonFinite`
 * and skipped); garbage (HTML, binary, a line cut off) throws an ExpositionError with a
 * message a person can act on, never anything else.
 */
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { LABEL_NAME_PATTERN, type Labels } from './types.js';

export type PrometheusType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** One sample of an exposition. */
export interface PrometheusSample {
  /** Name as exposed, e.g. `node_cpu_seconds_total`, `http_request_duration_seconds_bucket`. */
  readonly name: string;
  /** The family it belongs to: `x` for `x_bucket`, `x_sum`, `x_count` of a histogram `x`. */
  readonly family: string;
  readonly type: PrometheusType;
  /** The Warden metric name (see `toWardenMetricName`). */
  readonly metric: string;
  /** Labels with an empty value are left out, as Prometheus treats them as absent. */
  readonly labels: Labels;
  readonly value: number;
}

export interface ParsedExposition {
  readonly samples: PrometheusSample[];
  /** Samples whose value was NaN, +Inf or -Inf: skipped, Warden stores finite numbers only. */
  readonly nonFinite: number;
}

/** The text is not Prometheus text exposition; the message says what was found. */
export class ExpositionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpositionError';
  }
}

const PROMETHEUS_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const INFINITY = /^[+-]?inf(?:inity)?$/i;
/** `# TYPE <name> <type>` exactly as the library recognizes it (after trimming the line). */
const TYPE_LINE = /^# TYPE (\S+) (\S+)$/;

/** Maps a Prometheus metric name to a Warden one; see the file comment. */
export function toWardenMetricName(name: string): string {
  const mapped = name.toLowerCase().replace(/[^a-z0-9_.]/g, '_');
  return /^[a-z]/.test(mapped) ? mapped : `m${mapped}`;
}

/** A Prometheus value (Go float syntax: decimal, exponent, NaN, ±Inf); undefined when it is none. */
export function parsePrometheusValue(text: string): number | undefined {
  if (DECIMAL.test(text)) {
    return Number(text);
  }
  if (INFINITY.test(text)) {
    return text.startsWith('-') ? -Infinity : Infinity;
  }
  return text.toLowerCase() === 'nan' ? NaN : undefined;
}

function excerpt(text: string, max = 80): string {
  const trimmed = text.trim();
  return JSON.stringify(trimmed.length > max ? `${trimmed.slice(0, max)}…` : trimmed);
}

function typeOf(declared: string): PrometheusType {
  switch (declared.toLowerCase()) {
    case 'counter':
      return 'counter';
    case 'gauge':
      return 'gauge';
    case 'histogram':
      return 'histogram';
    case 'summary':
      return 'summary';
    default:
      return 'untyped';
  }
}

/** Family and type of a sample name, from the `# TYPE` lines. */
function familyOf(name: string, types: ReadonlyMap<string, PrometheusType>): { family: string; type: PrometheusType } {
  const own = types.get(name);
  if (own !== undefined) {
    return { family: name, type: own };
  }
  for (const suffix of ['_bucket', '_sum', '_count', '_total']) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const type = types.get(base);
      if (
        (type === 'histogram' && suffix !== '_total') ||
        (type === 'summary' && (suffix === '_sum' || suffix === '_count')) ||
        (type === 'counter' && suffix === '_total')
      ) {
        return { family: base, type };
      }
    }
  }
  return { family: name, type: 'untyped' };
}

/** Lines handed to the library at once; between slices the async parser yields to the event loop. */
const SLICE_LINES = 4096;

interface PreparedText {
  /** The lines, histogram and summary `# TYPE` lines rewritten to `untyped`. */
  readonly lines: string[];
  readonly types: ReadonlyMap<string, PrometheusType>;
}

/** Rejects what is plainly no exposition, reads the `# TYPE` lines and rewrites them (see the file comment). */
function prepare(text: string): PreparedText {
  if (text.includes('\u0000')) {
    throw new ExpositionError('the response contains binary data (NUL bytes), not Prometheus text exposition');
  }
  if (text.trimStart().startsWith('<')) {
    throw new ExpositionError(
      `the response looks like HTML or XML, not Prometheus text exposition (it starts with ${excerpt(text, 40)})`,
    );
  }
  const lines = text.split('\n');
  const types = new Map<string, PrometheusType>();
  for (let i = 0; i < lines.length; i += 1) {
    const line = (lines[i] as string).trim();
    if (line.startsWith('{')) {
      // The library would file a sample without a name under the family before it.
      throw new ExpositionError(`line ${i + 1} has no metric name: ${excerpt(line)} is not Prometheus text exposition`);
    }
    const match = TYPE_LINE.exec(line);
    if (match !== null) {
      const name = match[1] as string;
      const type = typeOf(match[2] as string);
      if (!types.has(name)) {
        types.set(name, type);
      }
      if (type === 'histogram' || type === 'summary') {
        lines[i] = `# TYPE ${name} untyped`;
      }
    }
  }
  return { lines, types };
}

/**
 * Parses lines [start, end) into `into`. Slicing anywhere is safe: the library keeps no
 * state across lines that matters here (types come from `prepare`; a family cut in two
 * just comes back as two families of one name).
 */
function parseSlice(
  prepared: PreparedText,
  start: number,
  end: number,
  into: { samples: PrometheusSample[]; nonFinite: number },
): void {
  const lines = prepared.lines.slice(start, end);
  let families: parsePrometheusTextFormat.ParsedFamily[];
  try {
    // The trailing newline matters: the library drops a last line that has none.
    families = parsePrometheusTextFormat(`${lines.join('\n')}\n`);
  } catch (error) {
    const line = error instanceof Error ? error.message.replace(/^Encountered invalid line: /, '') : String(error);
    const number = lines.findIndex((l) => l.trim() === line.trim());
    throw new ExpositionError(
      `malformed line${number >= 0 ? ` ${start + number + 1}` : ''}: ${excerpt(line)} is not Prometheus text exposition`,
    );
  }

  for (const family of families) {
    if (family.metrics.length === 0) {
      continue; // only # HELP / # TYPE lines
    }
    const name = family.name;
    if (!PROMETHEUS_NAME.test(name)) {
      throw new ExpositionError(
        `${excerpt(name)} is not a metric name (expected [a-zA-Z_:][a-zA-Z0-9_:]*): this is not Prometheus text exposition`,
      );
    }
    const { family: familyName, type } = familyOf(name, prepared.types);
    const metric = toWardenMetricName(name);
    for (const parsed of family.metrics) {
      const raw = parsed.value ?? '';
      const value = parsePrometheusValue(raw);
      if (value === undefined) {
        throw new ExpositionError(
          raw === ''
            ? `sample ${name} has no value: the text may be cut off`
            : `sample ${name} has ${excerpt(raw, 40)} as its value, which is not a number (is this Prometheus text exposition?)`,
        );
      }
      if (!Number.isFinite(value)) {
        into.nonFinite += 1;
        continue;
      }
      const labels: Record<string, string> = {};
      for (const [label, labelValue] of Object.entries(parsed.labels ?? {})) {
        if (!LABEL_NAME_PATTERN.test(label)) {
          throw new ExpositionError(`sample ${name} has an invalid label name ${excerpt(label, 40)}`);
        }
        if (labelValue !== '') {
          labels[label] = labelValue;
        }
      }
      into.samples.push({ name, family: familyName, type, metric, labels, value });
    }
  }
}

/**
 * Parses a text exposition into finite samples. Throws ExpositionError when the text is not
 * an exposition (HTML, binary, a malformed or cut-off line); an empty text gives no samples.
 */
export function parseExposition(text: string): ParsedExposition {
  const prepared = prepare(text);
  const result = { samples: [] as PrometheusSample[], nonFinite: 0 };
  for (let start = 0; start < prepared.lines.length; start += SLICE_LINES) {
    parseSlice(prepared, start, start + SLICE_LINES, result);
  }
  return result;
}

/**
 * `parseExposition` that yields to the event loop every few thousand lines, so a large
 * exposition (the scraper reads up to 20 MiB, about 200,000 lines, over a second of
 * parsing) does not hold up requests meanwhile. Rejects with ExpositionError.
 */
export async function parseExpositionYielding(text: string): Promise<ParsedExposition> {
  const prepared = prepare(text);
  const result = { samples: [] as PrometheusSample[], nonFinite: 0 };
  for (let start = 0; start < prepared.lines.length; start += SLICE_LINES) {
    if (start > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    parseSlice(prepared, start, start + SLICE_LINES, result);
  }
  return result;
}
