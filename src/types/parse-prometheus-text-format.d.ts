/**
 * Types of `parse-prometheus-text-format` 1.1.1, which ships none. Only what Warden uses;
 * see `src/domain/metrics/prometheus.ts` for how its output is read.
 */
declare module 'parse-prometheus-text-format' {
  namespace parsePrometheusTextFormat {
    /** One sample line (or, for summaries and histograms the library folds, one folded group). */
    interface ParsedMetric {
      /** The value as written, e.g. "1.5e+06", "NaN", "+Inf"; absent on folded groups. */
      value?: string;
      labels?: Record<string, string>;
      timestamp_ms?: string;
      buckets?: Record<string, string>;
      quantiles?: Record<string, string>;
      count?: string;
      sum?: string;
    }

    /** A metric family: consecutive lines of one name (and, when typed, its suffixes). */
    interface ParsedFamily {
      name: string;
      help: string;
      /** Upper case: COUNTER, GAUGE, SUMMARY, HISTOGRAM, UNTYPED, … */
      type: string;
      metrics: ParsedMetric[];
    }
  }

  /** Parses text exposition; throws an `InvalidLineError` on a malformed metadata or label line. */
  function parsePrometheusTextFormat(text: string): parsePrometheusTextFormat.ParsedFamily[];

  export = parsePrometheusTextFormat;
}
