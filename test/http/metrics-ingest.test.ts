import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, adminFetch, createApiKey, startTestServer, type TestServer } from '../helpers/db.js';

interface ErrorBody {
  error: {
    code: string;
    message: string;
    field?: string;
    problems?: { index: number; field: string; message: string }[];
    invalid_count?: number;
  };
}

describe.each(ENGINES)('metric ingest over HTTP on %s', (engine) => {
  let t: TestServer;
  let key: string;

  async function post(body: unknown, auth = key): Promise<Response> {
    return fetch(`${t.server.url}/api/v1/metrics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${auth}` },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async function count(): Promise<number> {
    const r = await sql<{ n: number }>`select count(*)::int8 as n from metric_samples`.execute(t.server.database.db);
    return r.rows[0]?.n ?? -1;
  }

  beforeAll(async () => {
    t = await startTestServer(engine);
    key = await createApiKey(t.server.url, 'ingest', ['ingest']);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('stores a batch, creates hosts and series on first sight, and counts re-sent samples as duplicates', async () => {
    const now = Date.now();
    const samples = [
      { host: 'web-1', metric: 'cpu.usage_pct', value: 12.5, ts: now - 20_000 },
      { host: 'web-1', metric: 'cpu.usage_pct', value: 14, ts: now - 10_000 },
      {
        host: 'web-1',
        metric: 'disk.used_pct',
        value: 40,
        ts: new Date(now - 10_000).toISOString(),
        labels: { mount: '/' },
      },
      { host: 'db-1', metric: 'load.1', value: 0.5 },
    ];
    const res = await post({ samples, interval_s: 10 });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ received: 4, inserted: 4, duplicates: 0, series_created: 3 });

    const again = await post({ samples: samples.slice(0, 3) });
    expect(await again.json()).toEqual({ received: 3, inserted: 0, duplicates: 3, series_created: 0 });

    const hosts = await t.server.database.db
      .selectFrom('hosts')
      .select(['name', 'interval_s'])
      .orderBy('name')
      .execute();
    expect(hosts).toEqual([
      { name: 'db-1', interval_s: 10 },
      { name: 'web-1', interval_s: 10 },
    ]);
    const disk = await t.server.database.db
      .selectFrom('metric_series')
      .select(['labels', 'unit'])
      .where('name', '=', 'disk.used_pct')
      .executeTakeFirstOrThrow();
    expect(disk).toEqual({ labels: { mount: '/' }, unit: 'percent' });
    const stored = await sql<{ value: number; ts: Date }>`
      select m.value, m.ts from metric_samples m join metric_series s on s.id = m.series_id
      where s.name = 'cpu.usage_pct' order by m.ts`.execute(t.server.database.db);
    expect(stored.rows.map((r) => [r.ts.getTime(), r.value])).toEqual([
      [now - 20_000, 12.5],
      [now - 10_000, 14],
    ]);
  });

  it('rejects a batch with invalid samples whole, listing problems by index and field', async () => {
    const before = await count();
    const now = Date.now();
    // 1e400 is valid JSON that parses to Infinity: sent as text, JSON.stringify would write null.
    const body400 = JSON.stringify({
      samples: [
        { host: 'web-1', metric: 'cpu.usage_pct', value: 1 },
        { host: 'web-1', metric: 'cpu.usage_pct', value: 'NaN' },
        { host: 'web-1', metric: 'cpu.usage_pct', value: true },
        { host: 'web-1', metric: 'CPU Usage', value: 1 },
        { host: 'web-1', metric: 'cpu.usage_pct', value: 1, colour: 'red' },
        { host: 'web-1', metric: 'cpu.usage_pct', value: 1, ts: now + 3_600_000 },
        { host: 'web-1', metric: 'cpu.usage_pct', value: 1, ts: now - 40 * 86_400_000 },
        { host: 'web-1', metric: 'cpu.usage_pct', value: 1, ts: Math.floor(now / 1000) },
        { metric: 'cpu.usage_pct', value: 1 },
        { host: 'web-1', metric: 'cpu.usage_pct', value: 1, labels: { mount: 3 } },
        { host: 'web-1', metric: 'cpu.usage_pct', value: 'HUGE' },
        'not an object',
      ],
    }).replace('"HUGE"', '1e400');
    const res = await post(body400);
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorBody;
    expect(body.error.code).toBe('validation');
    expect(body.error.invalid_count).toBe(11);
    expect(body.error.message).toContain('11 of 12 samples are invalid');
    const byIndex = new Map(body.error.problems?.map((p) => [p.index, p]));
    expect(byIndex.get(0)).toBeUndefined();
    expect(byIndex.get(1)).toMatchObject({ field: 'samples[1].value', message: 'must be a finite number, got "NaN"' });
    expect(byIndex.get(2)).toMatchObject({ field: 'samples[2].value', message: 'must be a finite number, got true' });
    expect(byIndex.get(3)?.field).toBe('samples[3].metric');
    expect(byIndex.get(4)).toMatchObject({ field: 'samples[4].colour' });
    expect(byIndex.get(5)?.message).toContain('future');
    expect(byIndex.get(6)?.message).toContain('older than the raw retention');
    expect(byIndex.get(7)?.message).toContain('looks like seconds');
    expect(byIndex.get(8)?.field).toBe('samples[8].host');
    expect(byIndex.get(9)?.field).toBe('samples[9].labels');
    expect(byIndex.get(10)).toMatchObject({
      field: 'samples[10].value',
      message: 'must be a finite number, got Infinity',
    });
    expect(byIndex.get(11)?.field).toBe('samples[11]');
    expect(await count()).toBe(before);
  });

  it('lists at most the first 20 problems', async () => {
    const samples = Array.from({ length: 50 }, (_, i) => ({ host: 'h', metric: 'm', value: i % 2 === 0 ? 'x' : 1 }));
    const body = (await (await post({ samples })).json()) as ErrorBody;
    expect(body.error.problems).toHaveLength(20);
    expect(body.error.invalid_count).toBe(25);
    expect(body.error.problems?.[19]?.index).toBe(38);
  });

  it('answers an empty batch, a missing samples field and unknown top-level fields with 400', async () => {
    const empty = await post({ samples: [] });
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as ErrorBody).error.field).toBe('samples');
    const missing = await post({});
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as ErrorBody).error.field).toBe('samples');
    const extra = await post({ samples: [{ host: 'h', metric: 'm', value: 1 }], source: 'x' });
    expect(extra.status).toBe(400);
    expect(((await extra.json()) as ErrorBody).error.field).toBe('source');
    const malformed = await post('{"samples": [');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as ErrorBody).error.code).toBe('invalid_json');
  });

  it('answers 10,001 samples with 413 and stores none; 10,000 are accepted', async () => {
    const before = await count();
    const ts = Date.now() - 60_000;
    const make = (n: number): unknown[] =>
      Array.from({ length: n }, (_, i) => ({ host: 'bulk', metric: 'bulk.value', value: i, ts: ts - i * 1000 }));
    const tooMany = await post({ samples: make(10_001) });
    expect(tooMany.status).toBe(413);
    const body = (await tooMany.json()) as ErrorBody;
    expect(body.error.code).toBe('payload_too_large');
    expect(body.error.message).toContain('10000');
    expect(await count()).toBe(before);
    const ok = await post({ samples: make(10_000) });
    expect(ok.status).toBe(202);
    expect(await count()).toBe(before + 10_000);
  });

  it('needs an ingest permission: a read key gets 403, no key 401', async () => {
    const readKey = await createApiKey(t.server.url, 'reader', ['read']);
    expect((await post({ samples: [{ host: 'h', metric: 'm', value: 1 }] }, readKey)).status).toBe(403);
    const anonymous = await fetch(`${t.server.url}/api/v1/metrics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ samples: [{ host: 'h', metric: 'm', value: 1 }] }),
    });
    expect(anonymous.status).toBe(401);
  });

  it('counts ingested, duplicate and rejected samples in /metrics', async () => {
    const res = await adminFetch(t.server.url, '/metrics');
    const text = await res.text();
    const value = (pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? 'NaN');
    expect(value(/^warden_metric_samples_total\{outcome="inserted"\} (\d+)/m)).toBeGreaterThanOrEqual(10_004);
    expect(value(/^warden_metric_samples_total\{outcome="duplicate"\} (\d+)/m)).toBe(3);
    expect(value(/^warden_metric_batches_rejected_total\{reason="invalid"\} (\d+)/m)).toBeGreaterThanOrEqual(2);
    expect(value(/^warden_metric_batches_rejected_total\{reason="too_large"\} (\d+)/m)).toBe(1);
  });
});
