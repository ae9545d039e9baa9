import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ExpositionError,
  parseExposition,
  parseExpositionYielding,
  parsePrometheusValue,
  toWardenMetricName,
  type PrometheusSample,
} from '../../../src/domain/metrics/prometheus.js';
import { METRIC_NAME_PATTERN } from '../../../src/domain/metrics/types.js';

const nodeExporter = readFileSync(new URL('../../fixtures/node-exporter.prom', import.meta.url), 'utf8');

function find(samples: readonly PrometheusSample[], name: string, labels: Record<string, string> = {}) {
  return samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels));
}

function parseError(text: string): string {
  try {
    parseExposition(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ExpositionError);
    return (error as Error).message;
  }
  throw new Error('expected an ExpositionError');
}

describe('parseExposition', () => {
  it('reads a node_exporter excerpt: every sample line, its labels, value, family and type', () => {
    const { samples, nonFinite } = parseExposition(nodeExporter);
    expect(nonFinite).toBe(0);
    expect(samples).toHaveLength(43);
    expect(find(samples, 'node_cpu_seconds_total', { cpu: '0', mode: 'idle' })).toEqual({
      name: 'node_cpu_seconds_total',
      family: 'node_cpu_seconds_total',
      type: 'counter',
      metric: 'node_cpu_seconds_total',
      labels: { cpu: '0', mode: 'idle' },
      value: 1134755.19,
    });
    expect(find(samples, 'node_memory_MemAvailable_bytes')).toMatchObject({
      metric: 'node_memory_memavailable_bytes',
      type: 'gauge',
      value: 6148362240,
    });
    expect(find(samples, 'go_gc_duration_seconds', { quantile: '0.5' })).toMatchObject({
      family: 'go_gc_duration_seconds',
      type: 'summary',
      value: 4.4732e-5,
    });
    expect(find(samples, 'go_gc_duration_seconds_count')).toMatchObject({
      family: 'go_gc_duration_seconds',
      type: 'summary',
      value: 262,
    });
    expect(samples.find((s) => s.name === 'node_uname_info')?.labels).toMatchObject({
      nodename: 'web-1',
      version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)',
    });
    for (const sample of samples) {
      expect(sample.metric).toMatch(METRIC_NAME_PATTERN);
    }
  });

  it('expands labelled histograms into _bucket{le}, _sum and _count per label set, as Prometheus stores them', () => {
    const text = [
      '# HELP http_request_duration_seconds Request latency.',
      '# TYPE http_request_duration_seconds histogram',
      'http_request_duration_seconds_bucket{handler="/a",le="0.1"} 1',
      'http_request_duration_seconds_bucket{handler="/a",le="+Inf"} 2',
      'http_request_duration_seconds_sum{handler="/a"} 0.3',
      'http_request_duration_seconds_count{handler="/a"} 2',
      'http_request_duration_seconds_bucket{handler="/b",le="0.1"} 5',
      'http_request_duration_seconds_bucket{handler="/b",le="+Inf"} 6',
      'http_request_duration_seconds_sum{handler="/b"} 1.3',
      'http_request_duration_seconds_count{handler="/b"} 6',
    ].join('\n');
    const { samples } = parseExposition(text);
    expect(samples.map((s) => [s.name, s.labels, s.value])).toEqual([
      ['http_request_duration_seconds_bucket', { handler: '/a', le: '0.1' }, 1],
      ['http_request_duration_seconds_bucket', { handler: '/a', le: '+Inf' }, 2],
      ['http_request_duration_seconds_sum', { handler: '/a' }, 0.3],
      ['http_request_duration_seconds_count', { handler: '/a' }, 2],
      ['http_request_duration_seconds_bucket', { handler: '/b', le: '0.1' }, 5],
      ['http_request_duration_seconds_bucket', { handler: '/b', le: '+Inf' }, 6],
      ['http_request_duration_seconds_sum', { handler: '/b' }, 1.3],
      ['http_request_duration_seconds_count', { handler: '/b' }, 6],
    ]);
    expect(new Set(samples.map((s) => `${s.family}/${s.type}`))).toEqual(
      new Set(['http_request_duration_seconds/histogram']),
    );
  });

  it('reads unlabelled histograms, untyped metrics and OpenMetrics-style counter families', () => {
    const text = [
      '# TYPE rpc_seconds histogram',
      'rpc_seconds_bucket{le="1"} 3',
      'rpc_seconds_bucket{le="+Inf"} 4',
      'rpc_seconds_sum 2.5',
      'rpc_seconds_count 4',
      'plain_untyped 7',
      '# TYPE jobs counter',
      'jobs_total{queue="mail"} 12',
    ].join('\n');
    const { samples } = parseExposition(text);
    expect(samples.map((s) => [s.name, s.family, s.type, s.value])).toEqual([
      ['rpc_seconds_bucket', 'rpc_seconds', 'histogram', 3],
      ['rpc_seconds_bucket', 'rpc_seconds', 'histogram', 4],
      ['rpc_seconds_sum', 'rpc_seconds', 'histogram', 2.5],
      ['rpc_seconds_count', 'rpc_seconds', 'histogram', 4],
      ['plain_untyped', 'plain_untyped', 'untyped', 7],
      ['jobs_total', 'jobs', 'counter', 12],
    ]);
  });

  it('skips NaN and ±Inf values and counts them', () => {
    const { samples, nonFinite } = parseExposition(
      'a_ratio NaN\nb_max +Inf\nc_min -Inf\nd_ok 1\ne_huge 1e400\nf_inf Inf\n',
    );
    expect(samples.map((s) => s.name)).toEqual(['d_ok']);
    expect(nonFinite).toBe(5);
  });

  it('ignores exposition timestamps, reads a last line without newline, CRLF endings and escaped label values', () => {
    const text =
      'with_ts{a="1"} 3 1700000000000\r\n' +
      'escaped{path="C:\\\\dir\\\\\\"x\\"",note="two\\nlines"} 4\r\n' +
      'empty_label{a="",b="2"} 5\r\n' +
      'last_one 6';
    const { samples } = parseExposition(text);
    expect(samples.map((s) => [s.name, s.labels, s.value])).toEqual([
      ['with_ts', { a: '1' }, 3],
      ['escaped', { path: 'C:\\dir\\"x"', note: 'two\nlines' }, 4],
      ['empty_label', { b: '2' }, 5],
      ['last_one', {}, 6],
    ]);
  });

  it('gives zero samples for an empty text or one of comments only', () => {
    expect(parseExposition('')).toEqual({ samples: [], nonFinite: 0 });
    expect(parseExposition('# just a comment\n# HELP x help\n# TYPE x gauge\n\n')).toEqual({
      samples: [],
      nonFinite: 0,
    });
  });

  it('answers garbage with a clear ExpositionError, never a crash', () => {
    expect(parseError('<!DOCTYPE html>\n<html><body><h1>502 Bad Gateway</h1></body></html>')).toMatch(
      /looks like HTML or XML, not Prometheus text exposition/,
    );
    expect(parseError('\u0089PNG\r\n\u001a\n\u0000\u0000\u0000\rIHDR')).toMatch(/binary data/);
    expect(parseError('{"status":"ok","metrics":[1,2,3]}')).toMatch(/line 1 has no metric name/);
    expect(parseError('Welcome to nginx!\nIt works.')).toMatch(/Welcome|It/);
    expect(parseError(Buffer.from([0xc3, 0xa9, 0x7f, 0x41, 0x20, 0x42]).toString('utf8'))).toMatch(/metric name/);
    expect(parseError('node_load1 0.21\nnode_cpu_seconds_total{cpu="0",mo')).toMatch(
      /no value: the text may be cut off/,
    );
    expect(parseError('node_load1 0.21\nnode_load5')).toMatch(/node_load5 has no value/);
    expect(parseError('temperature twelve')).toMatch(/"twelve" as its value, which is not a number/);
    expect(parseError('ok 1\nbroken{a b} 1')).toMatch(/malformed line 2/);
    expect(parseError('x{bad-label="1"} 1')).toMatch(/malformed line|invalid label name/);
  });
});

describe('parseExpositionYielding', () => {
  it('gives what parseExposition gives for a long exposition, and the right line number of a bad line', async () => {
    const lines = ['# TYPE big histogram'];
    for (let i = 0; i < 10_000; i += 1) {
      lines.push(`big_bucket{shard="${i}",le="+Inf"} ${i}`);
    }
    const text = lines.join('\n');
    const parsed = await parseExpositionYielding(text);
    expect(parsed).toEqual(parseExposition(text));
    expect(parsed.samples).toHaveLength(10_000);
    expect(parsed.samples.every((s) => s.family === 'big' && s.type === 'histogram')).toBe(true);

    lines[9000] = 'big_bucket{shard="x" le="1"} 1';
    await expect(parseExpositionYielding(lines.join('\n'))).rejects.toThrow(/malformed line 9001/);
  });
});

describe('toWardenMetricName', () => {
  it.each([
    ['node_cpu_seconds_total', 'node_cpu_seconds_total'],
    ['node_memory_MemAvailable_bytes', 'node_memory_memavailable_bytes'],
    ['job:http_requests:rate5m', 'job_http_requests_rate5m'],
    ['_private_metric', 'm_private_metric'],
    [':leading_colon', 'm_leading_colon'],
  ])('%s → %s', (prometheus, warden) => {
    expect(toWardenMetricName(prometheus)).toBe(warden);
    expect(warden).toMatch(METRIC_NAME_PATTERN);
  });
});

describe('parsePrometheusValue', () => {
  it.each([
    ['1', 1],
    ['-0.5', -0.5],
    ['1.5e+06', 1.5e6],
    ['.25', 0.25],
    ['3.', 3],
    ['+Inf', Infinity],
    ['-inf', -Infinity],
    ['NaN', NaN],
  ])('%s → %s', (text, value) => {
    expect(parsePrometheusValue(text)).toBe(value);
  });

  it.each(['', 'abc', '1,5', '0x1p3', '1e', '--1'])('%j is not a value', (text) => {
    expect(parsePrometheusValue(text)).toBeUndefined();
  });
});
