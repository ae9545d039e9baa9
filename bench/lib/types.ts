/**
 * The contract between `bench/run.ts` and the benchmark modules `bench/<name>.ts`.
 *
 * A benchmark module exports `name` (its file name), `target` (what "met" means, in
 * words) and `run()`. Each record of its result becomes one JSON line on stdout:
 * `{"bench": name, "engine"?: …, …figures, "target": target, "met": true|false}`.
 */

/** One measured figure; keys are snake_case, units in the name (`median_raw_ms`, `raw_qps`). */
export type Figure = number | string | boolean | null;

/** Keys the runner writes itself; a record's figures must not use them. */
export const RESERVED_KEYS = ['bench', 'engine', 'target', 'met'] as const;

export interface BenchRecord {
  /** Set when the benchmark measures each engine separately. */
  readonly engine?: string;
  readonly figures: Readonly<Record<string, Figure>>;
  /** Whether this record meets the module's target. */
  readonly met: boolean;
}

export interface BenchResult {
  readonly records: readonly BenchRecord[];
}

export interface BenchModule {
  readonly name: string;
  readonly target: string;
  run(): Promise<BenchResult>;
}
