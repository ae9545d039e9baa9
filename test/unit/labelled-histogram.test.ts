import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { LabelledHistogram } from '../../src/labelled-histogram.js';

describe('LabelledHistogram', () => {
  it('prints cumulative buckets, +Inf, sum and count per label set in Prometheus text format', async () => {
    const registry = new Registry();
    const histogram = new LabelledHistogram('q_seconds', 'query time', ['statement'], [0.1, 1], registry);
    const select = histogram.series({ statement: 'select ?' });
    for (const value of [0.05, 0.1, 0.5, 3]) {
      select.observe(value);
    }
    histogram.observe({ statement: 'insert' }, 0.2);
    const text = await registry.metrics();
    expect(text).toContain('# TYPE q_seconds histogram');
    expect(text).toContain('q_seconds_bucket{le="0.1",statement="select ?"} 2');
    expect(text).toContain('q_seconds_bucket{le="1",statement="select ?"} 3');
    expect(text).toContain('q_seconds_bucket{le="+Inf",statement="select ?"} 4');
    expect(text).toContain('q_seconds_sum{statement="select ?"} 3.65');
    expect(text).toContain('q_seconds_count{statement="select ?"} 4');
    expect(text).toContain('q_seconds_bucket{le="0.1",statement="insert"} 0');
    expect(text).toContain('q_seconds_count{statement="insert"} 1');
    // The same series object is returned for the same labels.
    expect(histogram.series({ statement: 'select ?' })).toBe(select);
  });
});
