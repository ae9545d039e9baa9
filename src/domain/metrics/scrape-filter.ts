/**
 * Which scraped samples a target stores: include/exclude patterns, the per-scrape cap, and
 * the samples Warden cannot store.
 *
 * Patterns are globs over Prometheus metric names: `*` stands for any run of characters
 * (also none), `?` for exactly one, everything else for itself, case-sensitively
 * (`node_cpu_*`, `*_bytes`, `go_gc_duration_seconds`). A sample matches a pattern when its
 * own name or its family name does, so `x` selects a histogram `x` whole (`x_bucket`,
 * `x_sum`, `x_count`) while `*_bucket` selects only the buckets. An empty include list
 * means every sample; exclude wins over include.
 *
 * Order of selection: parse (NaN/±Inf skipped) → include/exclude → samples Warden cannot
 * store (name over 200 characters, more than 16 labels, a label value over 500 characters)
 * → repeated series (the first wins) → the cap (the first `maxSamples` in exposition order).
 */
import { type ParsedExposition, type PrometheusSample } from './prometheus.js';
import { MAX_LABELS, MAX_LABEL_VALUE_LENGTH, MAX_METRIC_NAME_LENGTH, canonicalLabels, type Labels } from './types.js';

/** A target has at most this many include and this many exclude patterns. */
export const MAX_PATTERNS = 50;
export const MAX_PATTERN_LENGTH = 200;
/** Samples stored per scrape at most; the rest are dropped and reported. */
export const MAX_SAMPLES_PER_SCRAPE = 10_000;
/** Characters of a Prometheus name, plus the two wildcards. */
const PATTERN_TEXT = /^[a-zA-Z0-9_:*?]+$/;
/** Label names longer than this are refused by ingest. */
const MAX_LABEL_NAME_LENGTH = 100;

/** What is wrong with a pattern, or undefined when it is fine. */
export function patternProblem(pattern: unknown): string | undefined {
  if (typeof pattern !== 'string' || pattern.length === 0) {
    return 'must be a non-empty string such as node_cpu_* or *_bytes';
  }
  if (pattern.length > MAX_PATTERN_LENGTH) {
    return `must be at most ${MAX_PATTERN_LENGTH} characters, got ${pattern.length}`;
  }
  if (!PATTERN_TEXT.test(pattern)) {
    return (
      `must be a glob over Prometheus metric names (letters, digits, _, :, and the wildcards * and ?), ` +
      `got ${JSON.stringify(pattern).slice(0, 80)}`
    );
  }
  return undefined;
}

/** A glob as an anchored regular expression; the pattern must have passed `patternProblem`. */
export function globToRegExp(pattern: string): RegExp {
  // Only [a-zA-Z0-9_:] can be left, none of which is special in a regular expression.
  return new RegExp(`^${pattern.replaceAll('*', '.*').replaceAll('?', '.')}$`);
}

/** Include/exclude patterns compiled once per scrape. */
export class MetricSelector {
  private readonly include: readonly RegExp[];
  private readonly exclude: readonly RegExp[];
  /** Decisions by family and name: an exposition repeats the same few hundred names. */
  private readonly decided = new Map<string, boolean>();

  constructor(include: readonly string[], exclude: readonly string[]) {
    this.include = include.map(globToRegExp);
    this.exclude = exclude.map(globToRegExp);
  }

  /** Whether a sample with this name, of this family, is kept. */
  keeps(name: string, family: string): boolean {
    const key = `${family} ${name}`;
    let kept = this.decided.get(key);
    if (kept === undefined) {
      const matches = (re: RegExp): boolean => re.test(name) || (family !== name && re.test(family));
      kept = (this.include.length === 0 || this.include.some(matches)) && !this.exclude.some(matches);
      this.decided.set(key, kept);
    }
    return kept;
  }
}

/** A sample ready for ingest (the host and time are the scraper's). */
export interface SelectedSample {
  readonly metric: string;
  readonly labels: Labels;
  readonly value: number;
}

/** What the selection kept and why it left the rest out. */
export interface Selection {
  readonly samples: SelectedSample[];
  /** Finite samples in the exposition. */
  readonly parsed: number;
  /** Samples with NaN or ±Inf values. */
  readonly nonFinite: number;
  /** Left out by the include/exclude patterns. */
  readonly excluded: number;
  /** Too long a name, too many labels or too long a label value for Warden. */
  readonly unstorable: number;
  /** The same Warden series again (after name mapping); the first was kept. */
  readonly repeated: number;
  /** Over the per-scrape cap. */
  readonly overCap: number;
}

function storable(sample: PrometheusSample): boolean {
  if (sample.metric.length > MAX_METRIC_NAME_LENGTH) {
    return false;
  }
  const entries = Object.entries(sample.labels);
  return (
    entries.length <= MAX_LABELS &&
    entries.every(([name, value]) => name.length <= MAX_LABEL_NAME_LENGTH && value.length <= MAX_LABEL_VALUE_LENGTH)
  );
}

/** Picks the samples to store; see the file comment for the order. */
export function selectSamples(
  exposition: ParsedExposition,
  options: { include: readonly string[]; exclude: readonly string[]; maxSamples?: number },
): Selection {
  const maxSamples = options.maxSamples ?? MAX_SAMPLES_PER_SCRAPE;
  const selector = new MetricSelector(options.include, options.exclude);
  const seen = new Set<string>();
  const samples: SelectedSample[] = [];
  let excluded = 0;
  let unstorable = 0;
  let repeated = 0;
  let overCap = 0;
  for (const sample of exposition.samples) {
    if (!selector.keeps(sample.name, sample.family)) {
      excluded += 1;
      continue;
    }
    if (!storable(sample)) {
      unstorable += 1;
      continue;
    }
    const key = `${sample.metric}\u0000${canonicalLabels(sample.labels)}`;
    if (seen.has(key)) {
      repeated += 1;
      continue;
    }
    seen.add(key);
    if (samples.length >= maxSamples) {
      overCap += 1;
      continue;
    }
    samples.push({ metric: sample.metric, labels: sample.labels, value: sample.value });
  }
  return {
    samples,
    parsed: exposition.samples.length,
    nonFinite: exposition.nonFinite,
    excluded,
    unstorable,
    repeated,
    overCap,
  };
}

/**
 * What a person should know about a scrape that stored samples: what was left out and
 * why. Null when nothing worth saying was left out (patterns doing their job is not news).
 */
export function selectionNotes(selection: Selection, maxSamples = MAX_SAMPLES_PER_SCRAPE): string | null {
  const notes: string[] = [];
  if (selection.overCap > 0) {
    notes.push(
      `${selection.overCap} samples over the cap of ${maxSamples} per scrape dropped; ` +
        'narrow the target with include/exclude patterns',
    );
  }
  if (selection.nonFinite > 0) {
    notes.push(`${selection.nonFinite} NaN/±Inf values skipped`);
  }
  if (selection.unstorable > 0) {
    notes.push(
      `${selection.unstorable} samples skipped for a name over ${MAX_METRIC_NAME_LENGTH} characters, ` +
        `more than ${MAX_LABELS} labels or a label value over ${MAX_LABEL_VALUE_LENGTH} characters`,
    );
  }
  if (selection.repeated > 0) {
    notes.push(
      `${selection.repeated} samples of a series already seen skipped (also names equal once mapped to Warden names)`,
    );
  }
  return notes.length === 0 ? null : notes.join('; ');
}

/** Why a scrape stored nothing: the error of a failed scrape that parsed no usable sample. */
export function noSamplesError(selection: Selection): string {
  if (selection.parsed === 0) {
    return selection.nonFinite > 0
      ? `no samples parsed: all ${selection.nonFinite} values were NaN or ±Inf`
      : 'no samples parsed: the response holds no Prometheus samples';
  }
  if (selection.excluded === selection.parsed) {
    return `no samples left: the include/exclude patterns matched none of the ${selection.parsed} samples parsed`;
  }
  return `no samples left of ${selection.parsed} parsed: ${selectionNotes(selection) ?? 'none could be stored'}`;
}
