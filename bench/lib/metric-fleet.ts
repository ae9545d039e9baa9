/**
 * The fleet the metrics benchmarks send: HOSTS hosts × METRICS_PER_HOST metrics, one
 * sample per series per batch (5,000 samples: one collection interval of the fleet).
 * A fifth of the metrics carry a label, so label handling is on the measured path too.
 */

export const HOSTS = 100;
export const METRICS_PER_HOST = 50;
export const SAMPLES_PER_BATCH = HOSTS * METRICS_PER_HOST;
/** Metrics from this index on carry a `device` label. */
const FIRST_LABELLED_METRIC = 40;

export function hostName(host: number): string {
  return `bench-host-${String(host).padStart(3, '0')}`;
}

export function metricName(metric: number): string {
  return `bench.metric_${String(metric).padStart(2, '0')}`;
}

/** Labels of a metric as canonical JSON (sorted keys, no spaces), `{}` for none. */
export function metricLabelsJson(metric: number): string {
  return metric >= FIRST_LABELLED_METRIC ? `{"device":"sd${metric - FIRST_LABELLED_METRIC}"}` : '{}';
}

/**
 * A value like the agent's: percentages with full double precision, byte rates as large
 * integers, gauges with two decimals — so number formatting costs what it costs in life.
 */
export function sampleValue(metric: number, random: () => number): number {
  switch (metric % 3) {
    case 0:
      return random() * 100;
    case 1:
      return Math.round(random() * 1e9);
    default:
      return Math.round(random() * 10_000) / 100;
  }
}

/** A small deterministic PRNG (mulberry32), so runs send the same values. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * JSON bodies for POST /api/v1/metrics: the whole fleet, one sample per series, with
 * `placeholder` where the sample time goes (the load client writes each request's own
 * epoch-ms stamp there). Each template has values of its own.
 */
export function ingestBodyTemplates(count: number, placeholder: string, intervalS: number): string[] {
  const random = seededRandom(42);
  const templates: string[] = [];
  for (let t = 0; t < count; t += 1) {
    const samples: string[] = [];
    for (let host = 0; host < HOSTS; host += 1) {
      for (let metric = 0; metric < METRICS_PER_HOST; metric += 1) {
        const labels = metricLabelsJson(metric);
        samples.push(
          `{"host":"${hostName(host)}","metric":"${metricName(metric)}",` +
            (labels === '{}' ? '' : `"labels":${labels},`) +
            `"value":${sampleValue(metric, random)},"ts":${placeholder}}`,
        );
      }
    }
    templates.push(`{"interval_s":${intervalS},"samples":[${samples.join(',')}]}`);
  }
  return templates;
}
