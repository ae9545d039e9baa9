import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, adminFetch, startTestServer, type TestServer } from '../helpers/db.js';

interface HistoryBody {
  step_s: number;
  source: string;
  summary_source: string;
  series: {
    id: number;
    host: string;
    metric: string;
    labels: Record<string, string>;
    unit: string | null;
    points: { ts: string; avg: number; count: number }[];
    summary: { count: number; avg: number; p95: number; last: { value: number }; exact_percentiles: boolean };
  }[];
}

describe.each(ENGINES)('metric history, query and hosts over HTTP on %s', (engine) => {
  let t: TestServer;
  const now = Date.now();

  beforeAll(async () => {
    t = await startTestServer(engine);
    const samples = Array.from({ length: 360 }, (_, i) => ({
      host: 'web-1',
      metric: 'cpu.usage_pct',
      value: i % 100,
      ts: now - (360 - i) * 10_000,
    }));
    samples.push({
      host: 'web-1',
      metric: 'disk.used_pct',
      value: 55,
      ts: now - 1000,
      labels: { mount: '/' },
    } as never);
    await t.server.services.ingest.ingest(samples, { intervalS: 10 });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('GET /metrics/history returns points and a summary, naming the sources', async () => {
    const res = await adminFetch(t.server.url, '/metrics/history?host=web-1&metric=cpu.usage_pct&hours=2');
    expect(res.status).toBe(200);
    const body = (await res.json()) as HistoryBody;
    expect(body.summary_source).toBe('raw');
    expect(body.step_s).toBe(10);
    expect(body.source).toBe('raw');
    const series = body.series[0];
    expect(series?.unit).toBe('percent');
    expect(series?.summary.count).toBe(360);
    expect(series?.summary.exact_percentiles).toBe(true);
    expect(series?.summary.last.value).toBe(359 % 100);
    expect(series?.points).toHaveLength(360);
  });

  it('GET /api/v1/metrics/query by series id with a step reads 1-minute rollups once they exist', async () => {
    const ids = await adminFetch(t.server.url, '/api/v1/metrics/series?host=web-1');
    const list = (await ids.json()) as { series: { id: number; metric: string }[] };
    const cpu = list.series.find((s) => s.metric === 'cpu.usage_pct');
    expect(list.series).toHaveLength(2);
    const res = await adminFetch(
      t.server.url,
      `/api/v1/metrics/query?series=${cpu?.id}&from=${new Date(now - 3_600_000).toISOString()}&to=${now}&step=5m`,
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as HistoryBody;
    expect(body.source).toBe('1m');
    expect(body.step_s).toBe(300);
  });

  it('answers bad parameters with 400 naming the field and unknown series with 404', async () => {
    const noMetric = await adminFetch(t.server.url, '/metrics/history?host=web-1');
    expect(noMetric.status).toBe(400);
    expect(((await noMetric.json()) as { error: { field: string } }).error.field).toBe('metric');
    const badHours = await adminFetch(t.server.url, '/metrics/history?host=web-1&metric=cpu.usage_pct&hours=-1');
    expect(badHours.status).toBe(400);
    expect(((await badHours.json()) as { error: { field: string } }).error.field).toBe('hours');
    const badFrom = await adminFetch(
      t.server.url,
      '/api/v1/metrics/query?host=web-1&metric=cpu.usage_pct&from=yesterday',
    );
    expect(badFrom.status).toBe(400);
    expect(((await badFrom.json()) as { error: { field: string } }).error.field).toBe('from');
    const unknown = await adminFetch(t.server.url, '/api/v1/metrics/query?host=web-1&metric=no.such_metric');
    expect(unknown.status).toBe(404);
  });

  it('GET /api/v1/hosts lists hosts with status and latest key values; DELETE hides a host and audits it', async () => {
    const res = await adminFetch(t.server.url, '/api/v1/hosts');
    expect(res.status).toBe(200);
    const { hosts } = (await res.json()) as {
      hosts: { id: number; name: string; status: string; latest: Record<string, { value: number }> }[];
    };
    const web = hosts.find((h) => h.name === 'web-1');
    expect(web?.status).toBe('reporting');
    expect(web?.latest['cpu.usage_pct']?.value).toBe(59);
    expect(web?.latest['disk.used_pct{mount="/"}']?.value).toBe(55);

    const deleted = await adminFetch(t.server.url, `/api/v1/hosts/${web?.id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(204);
    const after = (await (await adminFetch(t.server.url, '/api/v1/hosts')).json()) as { hosts: unknown[] };
    expect(after.hosts).toHaveLength(0);
    const again = await adminFetch(t.server.url, `/api/v1/hosts/${web?.id}`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    const audit = (await (await adminFetch(t.server.url, '/api/v1/audit?entity_type=host')).json()) as {
      entries: { action: string }[];
    };
    expect(audit.entries.map((e) => e.action)).toContain('host.delete');
  });
});
