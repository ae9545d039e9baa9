/** Legacy records to samples: field table, --map, timestamps in every accepted form, rejections. */
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.js';
import {
  LEGACY_FIELD_TABLE,
  buildFieldMap,
  mapLegacyRecord,
  parseLegacyTimestamp,
  parseSeriesSpec,
  type RecordContext,
} from '../../../src/domain/metrics/legacy-import.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const DAY = 86_400_000;

function context(overrides: Partial<RecordContext> = {}): RecordContext {
  return {
    fieldMap: buildFieldMap([]),
    latestMs: NOW + 5 * 60_000,
    oldestMs: NOW - 730 * DAY,
    ...overrides,
  };
}

describe('parseLegacyTimestamp', () => {
  it('reads ISO-8601 with Z, with an offset, with a space, with fractions, and without a zone as UTC', () => {
    expect(parseLegacyTimestamp('2024-03-01T12:00:00Z')).toBe(Date.parse('2024-03-01T12:00:00Z'));
    expect(parseLegacyTimestamp('2024-03-01T14:00:00+02:00')).toBe(Date.parse('2024-03-01T12:00:00Z'));
    expect(parseLegacyTimestamp('2024-03-01T07:30:00-0430')).toBe(Date.parse('2024-03-01T12:00:00Z'));
    expect(parseLegacyTimestamp('2024-03-01 12:00:00.250Z')).toBe(Date.parse('2024-03-01T12:00:00.250Z'));
    expect(parseLegacyTimestamp('2024-03-01T12:00:00.123456+00:00')).toBe(Date.parse('2024-03-01T12:00:00.123Z'));
    expect(parseLegacyTimestamp('2024-03-01T12:00')).toBe(Date.parse('2024-03-01T12:00:00Z'));
    expect(parseLegacyTimestamp('2024-03-01 12:00:00')).toBe(Date.parse('2024-03-01T12:00:00Z'));
  });

  it('tells epoch seconds from milliseconds by magnitude (below 1e11: seconds)', () => {
    const ms = Date.parse('2024-03-01T12:00:00Z');
    expect(parseLegacyTimestamp(ms / 1000)).toBe(ms);
    expect(parseLegacyTimestamp(ms)).toBe(ms);
    expect(parseLegacyTimestamp(ms / 1000 + 0.5)).toBe(ms + 500);
    expect(parseLegacyTimestamp(String(ms / 1000))).toBe(ms);
    expect(parseLegacyTimestamp(String(ms))).toBe(ms);
    // Right at the boundary: 99,999,999,999 s is the year 5138; 1e11 ms is 1973.
    expect(parseLegacyTimestamp(99_999_999_999)).toBe(99_999_999_999_000);
    expect(parseLegacyTimestamp(100_000_000_000)).toBe(100_000_000_000);
  });

  it('refuses other forms with a message', () => {
    for (const bad of ['yesterday', '2024-02-30T00:00:00Z', '2024-03-01', '2024-03-01T25:00:00Z', -5, true, {}, null]) {
      expect(typeof parseLegacyTimestamp(bad), JSON.stringify(bad)).toBe('string');
    }
    expect(parseLegacyTimestamp('yesterday')).toContain('neither ISO-8601');
  });
});

describe('parseSeriesSpec and --map', () => {
  it('parses names with and without labels', () => {
    expect(parseSeriesSpec('cpu.usage_pct')).toEqual({ metric: 'cpu.usage_pct', labels: {} });
    expect(parseSeriesSpec('disk.used_pct{mount="/data", device="sdb"}')).toEqual({
      metric: 'disk.used_pct',
      labels: { mount: '/data', device: 'sdb' },
    });
    expect(parseSeriesSpec('x{v="a \\"quoted\\" \\\\ value"}')).toEqual({
      metric: 'x',
      labels: { v: 'a "quoted" \\ value' },
    });
    expect(parseSeriesSpec('x{}')).toEqual({ metric: 'x', labels: {} });
  });

  it('refuses bad names and labels', () => {
    expect(parseSeriesSpec('CPU')).toContain('must match');
    expect(parseSeriesSpec('x{mount=/}')).toContain('labels must look like');
    expect(parseSeriesSpec('x{9a="b"}')).toContain('label name "9a"');
    expect(parseSeriesSpec('x{a="b"} extra')).toContain('unexpected text');
  });

  it('the built-in table maps the documented fields', () => {
    const map = buildFieldMap([]);
    expect(map.get('cpu_percent')).toEqual({ metric: 'cpu.usage_pct', labels: {} });
    expect(map.get('memory')).toEqual({ metric: 'mem.used_pct', labels: {} });
    expect(map.get('disk')).toEqual({ metric: 'disk.used_pct', labels: { mount: '/' } });
    expect(map.get('network_in')).toEqual({ metric: 'net.rx_bytes_per_s', labels: {} });
    expect(map.get('network_out')).toEqual({ metric: 'net.tx_bytes_per_s', labels: {} });
    expect(map.get('load_avg')).toEqual({ metric: 'load.1', labels: {} });
    expect(map.get('swap_percent')).toEqual({ metric: 'swap.used_pct', labels: {} });
    expect(map.size).toBe(LEGACY_FIELD_TABLE.length);
  });

  it('--map adds and overrides entries, with labels; field=- ignores a field', () => {
    const map = buildFieldMap(['gpu_temp=gpu.temp_c', 'disk=disk.used_pct{mount="/data"}', 'noise=-']);
    expect(map.get('gpu_temp')).toEqual({ metric: 'gpu.temp_c', labels: {} });
    expect(map.get('disk')).toEqual({ metric: 'disk.used_pct', labels: { mount: '/data' } });
    expect(map.get('noise')).toBeNull();
  });

  it('refuses a bad --map with a message naming it', () => {
    expect(() => buildFieldMap(['gpu_temp'])).toThrow(ValidationError);
    expect(() => buildFieldMap(['gpu_temp'])).toThrow('--map takes field=metric');
    expect(() => buildFieldMap(['gpu=GPU Temp'])).toThrow('--map "gpu=GPU Temp": metric name must match');
    expect(() => buildFieldMap(['timestamp=x'])).toThrow("is the record's host or time");
  });
});

describe('mapLegacyRecord', () => {
  it('turns mapped fields into samples at the record time for the record host', () => {
    const outcome = mapLegacyRecord(
      { timestamp: '2025-06-01T11:00:00Z', host: 'web-1', cpu_percent: 12.5, disk: 70, network_in: 1024 },
      context(),
    );
    const ts = Date.parse('2025-06-01T11:00:00Z');
    expect(outcome).toEqual({
      ok: true,
      unknownFields: [],
      record: {
        host: 'web-1',
        tsMs: ts,
        samples: [
          { host: 'web-1', metric: 'cpu.usage_pct', value: 12.5, ts, labels: {} },
          { host: 'web-1', metric: 'disk.used_pct', value: 70, ts, labels: { mount: '/' } },
          { host: 'web-1', metric: 'net.rx_bytes_per_s', value: 1024, ts, labels: {} },
        ],
      },
    });
  });

  it('uses the first of timestamp, ts, time, created_at and the default host', () => {
    const outcome = mapLegacyRecord(
      { created_at: 1, time: NOW / 1000 - 60, cpu: 1 },
      context({ defaultHost: 'legacy-box' }),
    );
    expect(outcome.ok && outcome.record).toMatchObject({ host: 'legacy-box', tsMs: NOW - 60_000 });
  });

  it('counts unknown fields and still imports the known ones', () => {
    const outcome = mapLegacyRecord({ ts: NOW, host: 'h', cpu: 5, gpu_temp: 60, uptime: 3 }, context());
    expect(outcome.ok).toBe(true);
    expect(outcome.unknownFields).toEqual(['gpu_temp', 'uptime']);
  });

  it('skips null values ("not measured") without rejecting the record', () => {
    const outcome = mapLegacyRecord({ ts: NOW, host: 'h', cpu: null, memory: 40 }, context());
    expect(outcome.ok && outcome.record.samples.map((s) => s.metric)).toEqual(['mem.used_pct']);
  });

  it('rejects records it cannot use, saying why', () => {
    const reason = (value: unknown, ctx = context()): string => {
      const outcome = mapLegacyRecord(value, ctx);
      return outcome.ok ? 'accepted' : outcome.reason;
    };
    expect(reason([1, 2])).toBe('record must be a JSON object, got an array');
    expect(reason({ host: 'h', cpu: 1 })).toBe(
      'record has no timestamp (expected one of timestamp, ts, time, created_at)',
    );
    expect(reason({ ts: NOW, cpu: 1 })).toBe('record has no "host" field and no --host was given');
    expect(reason({ ts: NOW, host: 42, cpu: 1 })).toBe('host must be a string, got 42');
    expect(reason({ ts: NOW, host: 'h', cpu: 'high' })).toBe(
      'cpu must be a number (mapped to cpu.usage_pct), got "high"',
    );
    expect(reason({ ts: NOW, host: 'h', memory: true })).toBe(
      'memory must be a number (mapped to mem.used_pct), got true',
    );
    expect(reason({ ts: 'soon', host: 'h', cpu: 1 })).toMatch(/^ts: timestamp "soon" is neither ISO-8601/);
    expect(reason({ ts: NOW + 3_600_000, host: 'h', cpu: 1 })).toBe(
      'ts: 2025-06-01T13:00:00.000Z is more than 5 minutes in the future',
    );
    expect(reason({ ts: NOW * 1000, host: 'h', cpu: 1 })).toContain('microseconds or nanoseconds?');
    expect(reason({ ts: NOW - 800 * DAY, host: 'h', cpu: 1 })).toMatch(/older than the 1-hour rollup retention/);
    expect(reason({ ts: NOW, host: 'h', gpu: 1 })).toBe(
      'record has no known metric fields (unknown: gpu); map them with --map field=metric',
    );
    expect(reason({ ts: NOW, host: 'h', cpu: 1, cpu_percent: 2 })).toBe(
      'cpu and cpu_percent both map to cpu.usage_pct but differ (1 vs 2)',
    );
    expect(reason({ ts: NOW, host: 'h', cpu: 1, cpu_percent: 1 })).toBe('accepted');
  });

  it('a --map entry turns an unknown field into a sample with its labels', () => {
    const outcome = mapLegacyRecord(
      { ts: NOW, host: 'h', fs_data: 33 },
      context({ fieldMap: buildFieldMap(['fs_data=disk.used_pct{mount="/data"}']) }),
    );
    expect(outcome.ok && outcome.record.samples).toEqual([
      { host: 'h', metric: 'disk.used_pct', value: 33, ts: NOW, labels: { mount: '/data' } },
    ]);
    expect(outcome.unknownFields).toEqual([]);
  });
});
