/** Which database engines a benchmark measures: BENCH_ENGINES (comma-separated), default both. */
import type { EngineName } from '../../src/db/engine.js';

export const ENGINES: readonly EngineName[] = ['pglite', 'postgresql'];

export function selectedEngines(): EngineName[] {
  const raw = process.env.BENCH_ENGINES;
  if (raw === undefined || raw === '') {
    return [...ENGINES];
  }
  const wanted = raw.split(',').map((engine) => engine.trim());
  for (const engine of wanted) {
    if (!ENGINES.includes(engine as EngineName)) {
      throw new Error(`BENCH_ENGINES: unknown engine "${engine}" (expected ${ENGINES.join(', ')})`);
    }
  }
  return wanted as EngineName[];
}
