import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseExposition } from '../../../src/domain/metrics/prometheus.js';
import {
  MetricSelector,
  noSamplesError,
  patternProblem,
  selectSamples,
  selectionNotes,
} from '../../../src/domain/metrics/scrape-filter.js';

const nodeExporter = parseExposition(
  readFileSync(new URL('../../fixtures/node-exporter.prom', import.meta.url), 'utf8'),
);

function metricsOf(include: string[], exclude: string[] = []): string[] {
  return [...new Set(selectSamples(nodeExporter, { include, exclude }).samples.map((s) => s.metric))];
}

describe('include/exclude patterns', () => {
  it('keeps everything when include is empty', () => {
    const selection = selectSamples(nodeExporter, { include: [], exclude: [] });
    expect(selection.samples).toHaveLength(43);
    expect(selection.excluded).toBe(0);
    expect(selectionNotes(selection)).toBeNull();
  });

  it('matches globs against the Prometheus name: * any run, ? one character', () => {
    expect(metricsOf(['node_cpu_*'])).toEqual(['node_cpu_seconds_total']);
    expect(metricsOf(['*_bytes'])).toEqual([
      'node_filesystem_avail_bytes',
      'node_memory_memavailable_bytes',
      'node_memory_memtotal_bytes',
    ]);
    expect(metricsOf(['node_load?'])).toEqual(['node_load1']);
    expect(metricsOf(['node_load??'])).toEqual(['node_load15']);
    // Case-sensitive, against the Prometheus name rather than the mapped Warden name.
    expect(metricsOf(['node_memory_Mem*'])).toEqual(['node_memory_memavailable_bytes', 'node_memory_memtotal_bytes']);
    expect(metricsOf(['node_memory_mem*'])).toEqual([]);
  });

  it('lets exclude win over include', () => {
    expect(metricsOf(['node_*'], ['node_cpu_*', 'node_memory_*', '*_info', 'node_scrape_*'])).toEqual([
      'node_boot_time_seconds',
      'node_filesystem_avail_bytes',
      'node_load1',
      'node_load15',
      'node_network_receive_bytes_total',
      'node_textfile_scrape_error',
    ]);
    expect(metricsOf(['node_load1'], ['node_load1'])).toEqual([]);
  });

  it('selects a summary or histogram whole by its family name, or only some of its series by theirs', () => {
    expect(metricsOf(['go_gc_duration_seconds'])).toEqual([
      'go_gc_duration_seconds',
      'go_gc_duration_seconds_sum',
      'go_gc_duration_seconds_count',
    ]);
    expect(metricsOf(['go_gc_duration_seconds_count'])).toEqual(['go_gc_duration_seconds_count']);
    const histogram = parseExposition(
      '# TYPE rpc_seconds histogram\nrpc_seconds_bucket{le="1"} 1\nrpc_seconds_bucket{le="+Inf"} 2\nrpc_seconds_sum 3\nrpc_seconds_count 2\n',
    );
    const kept = (include: string[], exclude: string[]) =>
      selectSamples(histogram, { include, exclude }).samples.map((s) => s.metric);
    expect(kept([], ['*_bucket'])).toEqual(['rpc_seconds_sum', 'rpc_seconds_count']);
    expect(kept(['rpc_seconds'], [])).toHaveLength(4);
  });

  it('decides each name once per selector', () => {
    const selector = new MetricSelector(['a*'], ['ab']);
    expect([selector.keeps('abc', 'abc'), selector.keeps('ab', 'ab'), selector.keeps('b', 'b')]).toEqual([
      true,
      false,
      false,
    ]);
    expect(selector.keeps('abc', 'abc')).toBe(true);
  });

  it.each([
    ['node_cpu_*', undefined],
    ['job:rate5m', undefined],
    ['', /non-empty/],
    ['node_cpu.*', /glob over Prometheus metric names/],
    ['(node|go)_.*', /glob/],
    ['x'.repeat(201), /at most 200 characters/],
  ])('pattern %j', (pattern, problem) => {
    const found = patternProblem(pattern);
    if (problem === undefined) {
      expect(found).toBeUndefined();
    } else {
      expect(found).toMatch(problem);
    }
  });
});

describe('selectSamples', () => {
  it('stores at most maxSamples and says how many it dropped and how to avoid it', () => {
    const selection = selectSamples(nodeExporter, { include: [], exclude: [], maxSamples: 10 });
    expect(selection.samples).toHaveLength(10);
    expect(selection.overCap).toBe(33);
    expect(selectionNotes(selection, 10)).toBe(
      '33 samples over the cap of 10 per scrape dropped; narrow the target with include/exclude patterns',
    );
  });

  it('skips samples Warden cannot store and series seen before, and notes NaN values', () => {
    const manyLabels = Array.from({ length: 17 }, (_, i) => `l${i}="v"`).join(',');
    const exposition = parseExposition(
      [
        'Dup_Name 1',
        'dup_name 2',
        `too_many{${manyLabels}} 3`,
        `long_value{a="${'x'.repeat(501)}"} 4`,
        `${'n'.repeat(201)} 5`,
        'kept{a="1"} 6',
        'not_a_number NaN',
      ].join('\n'),
    );
    const selection = selectSamples(exposition, { include: [], exclude: [] });
    expect(selection.samples).toEqual([
      { metric: 'dup_name', labels: {}, value: 1 },
      { metric: 'kept', labels: { a: '1' }, value: 6 },
    ]);
    expect(selection).toMatchObject({ parsed: 6, nonFinite: 1, unstorable: 3, repeated: 1, overCap: 0 });
    const notes = selectionNotes(selection) ?? '';
    expect(notes).toContain('1 NaN/±Inf values skipped');
    expect(notes).toContain('3 samples skipped for a name over 200 characters');
    expect(notes).toContain('1 samples of a series already seen skipped');
  });

  it('explains why nothing is left', () => {
    expect(noSamplesError(selectSamples(parseExposition(''), { include: [], exclude: [] }))).toBe(
      'no samples parsed: the response holds no Prometheus samples',
    );
    expect(noSamplesError(selectSamples(parseExposition('a NaN\nb +Inf'), { include: [], exclude: [] }))).toBe(
      'no samples parsed: all 2 values were NaN or ±Inf',
    );
    expect(noSamplesError(selectSamples(nodeExporter, { include: ['nothing_*'], exclude: [] }))).toBe(
      'no samples left: the include/exclude patterns matched none of the 43 samples parsed',
    );
  });
});
