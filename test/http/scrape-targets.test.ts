import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, adminFetch, login, startTestServer, type TestServer } from '../helpers/db.js';
import { NODE_EXPORTER_TEXT, exposition, hang, startPeer, type Peer } from '../helpers/exposition-peer.js';

const json = { 'content-type': 'application/json' };

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

interface TargetBody {
  id: number;
  name: string;
  url: string;
  host_name: string;
  interval_s: number;
  timeout_ms: number;
  include: string[];
  exclude: string[];
  enabled: boolean;
  deleted_at: string | null;
  last_scrape_at: string | null;
  last_status: 'ok' | 'failed' | null;
  last_error: string | null;
  last_notes: string | null;
  last_samples: number | null;
  consecutive_failures: number;
}

interface RunBody {
  id: number;
  ts: string;
  status: 'ok' | 'failed';
  samples: number;
  error: string | null;
  notes: string | null;
}

describe.each(ENGINES)('scrape targets over HTTP on %s', (engine) => {
  let t: TestServer;
  let url: string;
  let peer: Peer;

  function api(path: string, method = 'GET', body?: unknown): Promise<Response> {
    return adminFetch(url, path, {
      method,
      ...(body === undefined ? {} : { headers: json, body: JSON.stringify(body) }),
    });
  }

  async function create(body: Record<string, unknown>): Promise<TargetBody> {
    const res = await api('/api/v1/scrape-targets', 'POST', body);
    expect(res.status, await res.clone().text()).toBe(201);
    return ((await res.json()) as { scrape_target: TargetBody }).scrape_target;
  }

  async function show(id: number): Promise<{ scrape_target: TargetBody; runs: RunBody[] }> {
    const res = await api(`/api/v1/scrape-targets/${id}`);
    expect(res.status).toBe(200);
    return (await res.json()) as { scrape_target: TargetBody; runs: RunBody[] };
  }

  async function scrapeNow(id: number): Promise<{ run: RunBody; scrape_target: TargetBody }> {
    const res = await api(`/api/v1/scrape-targets/${id}/scrape`, 'POST');
    expect(res.status).toBe(200);
    return (await res.json()) as { run: RunBody; scrape_target: TargetBody };
  }

  async function auditOf(
    id: number,
  ): Promise<{ action: string; actor_label: string; before: unknown; after: unknown }[]> {
    const res = await api(`/api/v1/audit?entity_type=scrape_target&entity_id=${id}`);
    expect(res.status).toBe(200);
    return (
      (await res.json()) as { entries: { action: string; actor_label: string; before: unknown; after: unknown }[] }
    ).entries;
  }

  beforeAll(async () => {
    // The scraper polls once at start and then only every 10 minutes: these tests scrape on request.
    t = await startTestServer(engine, { WARDEN_SCRAPE_POLL_INTERVAL: '10m', WARDEN_HEALTH_INTERVAL: '1h' });
    url = t.server.url;
    peer = await startPeer((request, response) => {
      if (request.url === '/garbage') {
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('\u0001\u0002\u0003 binary \u0000 junk');
      } else if (request.url === '/hang') {
        hang(request, response);
      } else {
        exposition(NODE_EXPORTER_TEXT)(request, response);
      }
    });
  });
  afterAll(async () => {
    await t.cleanup();
    await peer.close();
  });

  it('registers a target with defaults derived from its URL, and audits it', async () => {
    const target = await create({ name: 'node-exporter web-1', url: `${peer.url}/metrics` });
    expect(target).toMatchObject({
      name: 'node-exporter web-1',
      url: `${peer.url}/metrics`,
      host_name: new URL(peer.url).host,
      interval_s: 30,
      timeout_ms: 5000,
      include: [],
      exclude: [],
      enabled: true,
      last_status: null,
      consecutive_failures: 0,
    });
    const audit = await auditOf(target.id);
    expect(audit).toMatchObject([
      { action: 'scrape_target.create', actor_label: 'admin@warden.test', before: null, after: { name: target.name } },
    ]);
    const listed = ((await (await api('/api/v1/scrape-targets')).json()) as { scrape_targets: TargetBody[] })
      .scrape_targets;
    expect(listed.map((l) => l.id)).toContain(target.id);
  });

  it('scrapes on request and shows the outcome in the target, its runs and the stored samples', async () => {
    const target = await create({
      name: 'scrape now',
      url: `${peer.url}/metrics`,
      host_name: 'web-2',
      include: ['node_load*', 'node_network_*'],
      exclude: ['node_load15'],
    });
    const { run, scrape_target: after } = await scrapeNow(target.id);
    expect(run).toMatchObject({ status: 'ok', samples: 3, error: null, notes: null });
    expect(after).toMatchObject({ last_status: 'ok', last_samples: 3, last_error: null, consecutive_failures: 0 });
    expect(after.last_scrape_at).toBe(run.ts);

    const rows = await sql<{ name: string; labels: Record<string, string>; value: number }>`
      select s.name, s.labels, m.value from metric_samples m
      join metric_series s on s.id = m.series_id join hosts h on h.id = s.host_id
      where h.name = 'web-2' order by s.name, s.labels::text`.execute(t.server.database.db);
    expect(rows.rows).toEqual([
      { name: 'node_load1', labels: {}, value: 0.21 },
      { name: 'node_network_receive_bytes_total', labels: { device: 'eth0' }, value: 29317347826 },
      { name: 'node_network_receive_bytes_total', labels: { device: 'lo' }, value: 124576034 },
    ]);
    const shown = await show(target.id);
    expect(shown.runs).toEqual([run]);
  });

  it('makes a failed scrape visible: error in the target and its runs, failure streak counting up', async () => {
    const garbage = await create({ name: 'garbage', url: `${peer.url}/garbage` });
    const first = await scrapeNow(garbage.id);
    expect(first.run).toMatchObject({ status: 'failed', samples: 0, notes: null });
    expect(first.run.error).toBe('the response contains binary data (NUL bytes), not Prometheus text exposition');
    await scrapeNow(garbage.id);
    const hung = await create({ name: 'hung', url: `${peer.url}/hang`, interval_s: 5, timeout_ms: 250 });
    const hungRun = await scrapeNow(hung.id);
    expect(hungRun.run).toMatchObject({ status: 'failed', error: 'timed out after 250 ms' });

    const shown = await show(garbage.id);
    expect(shown.scrape_target).toMatchObject({
      last_status: 'failed',
      last_error: first.run.error,
      last_notes: null,
      consecutive_failures: 2,
    });
    expect(shown.runs.map((r) => r.status)).toEqual(['failed', 'failed']);
    const listed = ((await (await api('/api/v1/scrape-targets')).json()) as { scrape_targets: TargetBody[] })
      .scrape_targets;
    expect(listed.find((l) => l.id === hung.id)).toMatchObject({
      last_status: 'failed',
      last_error: 'timed out after 250 ms',
      consecutive_failures: 1,
    });

    const metrics = await (await api('/metrics')).text();
    expect(metrics).toContain('warden_scrape_failures_total{target="garbage"} 2');
    expect(metrics).toContain('warden_scrape_failures_total{target="hung"} 1');
  });

  it('shows the last 20 runs, newest first', async () => {
    const target = await create({ name: 'many runs', url: `${peer.url}/metrics`, include: ['node_load1'] });
    for (let i = 0; i < 22; i += 1) {
      await scrapeNow(target.id);
    }
    const { runs } = await show(target.id);
    expect(runs).toHaveLength(20);
    const times = runs.map((r) => Date.parse(r.ts));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('changes a target with PATCH, audits before and after, and re-derives host_name on request', async () => {
    const target = await create({ name: 'to change', url: `${peer.url}/metrics`, host_name: 'custom' });
    const res = await api(`/api/v1/scrape-targets/${target.id}`, 'PATCH', {
      interval_s: 60,
      timeout_ms: 10_000,
      include: ['node_*', 'node_*'],
      enabled: false,
    });
    expect(res.status).toBe(200);
    const changed = ((await res.json()) as { scrape_target: TargetBody }).scrape_target;
    expect(changed).toMatchObject({
      interval_s: 60,
      timeout_ms: 10_000,
      include: ['node_*'],
      enabled: false,
      host_name: 'custom',
    });

    const rederived = await api(`/api/v1/scrape-targets/${target.id}`, 'PATCH', { host_name: null });
    expect(((await rederived.json()) as { scrape_target: TargetBody }).scrape_target.host_name).toBe(
      new URL(peer.url).host,
    );
    const unchanged = await api(`/api/v1/scrape-targets/${target.id}`, 'PATCH', { interval_s: 60 });
    expect(unchanged.status).toBe(200);

    const audit = await auditOf(target.id);
    expect(audit.map((a) => a.action)).toEqual([
      'scrape_target.update',
      'scrape_target.update',
      'scrape_target.create',
    ]);
    expect(audit[1]).toMatchObject({
      before: { interval_s: 30, enabled: true, include: [] },
      after: { interval_s: 60, enabled: false, include: ['node_*'] },
    });
  });

  it('soft-deletes a target: gone from GET and the list, name free again, audited', async () => {
    const target = await create({ name: 'Short Lived', url: `${peer.url}/metrics` });
    const res = await api(`/api/v1/scrape-targets/${target.id}`, 'DELETE');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { scrape_target: TargetBody }).scrape_target.deleted_at).not.toBeNull();
    expect((await api(`/api/v1/scrape-targets/${target.id}`)).status).toBe(404);
    expect((await api(`/api/v1/scrape-targets/${target.id}`, 'DELETE')).status).toBe(404);
    expect((await api(`/api/v1/scrape-targets/${target.id}/scrape`, 'POST')).status).toBe(404);
    const listed = ((await (await api('/api/v1/scrape-targets')).json()) as { scrape_targets: TargetBody[] })
      .scrape_targets;
    expect(listed.map((l) => l.id)).not.toContain(target.id);
    await create({ name: 'short lived', url: `${peer.url}/metrics` });
    expect((await auditOf(target.id)).map((a) => a.action)).toEqual(['scrape_target.delete', 'scrape_target.create']);
    const row = await t.server.database.db
      .selectFrom('scrape_targets')
      .select('deleted_at')
      .where('id', '=', target.id)
      .executeTakeFirstOrThrow();
    expect(row.deleted_at).not.toBeNull();
  });

  it.each([
    [{ url: 'http://x/metrics' }, 'name'],
    [{ name: '', url: 'http://x/metrics' }, 'name'],
    [{ name: 'x'.repeat(101), url: 'http://x/metrics' }, 'name'],
    [{ name: 'n' }, 'url'],
    [{ name: 'n', url: 'ftp://x/metrics' }, 'url'],
    [{ name: 'n', url: '/metrics' }, 'url'],
    [{ name: 'n', url: 'http://user:secret@x/metrics' }, 'url'],
    [{ name: 'n', url: 'http://x/metrics', interval_s: 3 }, 'interval_s'],
    [{ name: 'n', url: 'http://x/metrics', interval_s: 'often' }, 'interval_s'],
    [{ name: 'n', url: 'http://x/metrics', timeout_ms: 50 }, 'timeout_ms'],
    [{ name: 'n', url: 'http://x/metrics', interval_s: 10, timeout_ms: 10_000 }, 'timeout_ms'],
    [{ name: 'n', url: 'http://x/metrics', host_name: '' }, 'host_name'],
    [{ name: 'n', url: 'http://x/metrics', include: ['node_cpu.*'] }, 'include[0]'],
    [{ name: 'n', url: 'http://x/metrics', exclude: ['ok_*', 'x'.repeat(201)] }, 'exclude[1]'],
    [{ name: 'n', url: 'http://x/metrics', include: Array.from({ length: 51 }, (_, i) => `m${i}`) }, 'include'],
    [{ name: 'n', url: 'http://x/metrics', include: 'node_*' }, 'include'],
    [{ name: 'n', url: 'http://x/metrics', enabled: 'yes' }, 'enabled'],
    [{ name: 'n', url: 'http://x/metrics', colour: 'red' }, 'colour'],
  ])('answers %j with 400 naming %s', async (body, field) => {
    const res = await api('/api/v1/scrape-targets', 'POST', body);
    expect(res.status).toBe(400);
    const error = ((await res.json()) as ErrorBody).error;
    expect(error).toMatchObject({ code: 'validation', field });
    expect(error.message.length).toBeGreaterThan(10);
  });

  it('answers a taken name with 409, bad PATCH input with 400 naming the field, and unknown ids with 404', async () => {
    const taken = await create({ name: 'Taken', url: `${peer.url}/metrics` });
    const duplicate = await api('/api/v1/scrape-targets', 'POST', { name: 'taken', url: `${peer.url}/metrics` });
    expect(duplicate.status).toBe(409);
    expect(((await duplicate.json()) as ErrorBody).error).toMatchObject({ code: 'conflict', field: 'name' });

    const other = await create({ name: 'other', url: `${peer.url}/metrics` });
    const rename = await api(`/api/v1/scrape-targets/${other.id}`, 'PATCH', { name: 'TAKEN' });
    expect(rename.status).toBe(409);
    const tooShort = await api(`/api/v1/scrape-targets/${taken.id}`, 'PATCH', { interval_s: 5 });
    expect(tooShort.status).toBe(400);
    const error = ((await tooShort.json()) as ErrorBody).error;
    expect(error.field).toBe('timeout_ms');
    expect(error.message).toBe('timeout_ms must be less than the interval (5 s = 5000 ms), got 5000');
    expect((await api(`/api/v1/scrape-targets/${taken.id}`, 'PATCH', {})).status).toBe(400);
    expect((await api('/api/v1/scrape-targets/999999')).status).toBe(404);
    expect((await api('/api/v1/scrape-targets/999999', 'PATCH', { enabled: false })).status).toBe(404);
    expect((await api('/api/v1/scrape-targets/999999/scrape', 'POST')).status).toBe(404);
    expect((await auditOf(other.id)).map((a) => a.action)).toEqual(['scrape_target.create']);
  });

  it('lets a viewer read targets but not change or scrape them', async () => {
    const target = await create({ name: 'read only', url: `${peer.url}/metrics` });
    const created = await api('/api/v1/users', 'POST', {
      email: 'scrape-viewer@warden.test',
      role: 'viewer',
      password: 'a-long-enough-password',
    });
    expect(created.status).toBe(201);
    const cookie = await login(url, 'scrape-viewer@warden.test', 'a-long-enough-password');
    const as = (path: string, method = 'GET') =>
      fetch(`${url}${path}`, {
        method,
        headers: { cookie, ...(method === 'GET' ? {} : json) },
        body: method === 'GET' ? undefined : '{}',
      });
    expect((await as('/api/v1/scrape-targets')).status).toBe(200);
    expect((await as(`/api/v1/scrape-targets/${target.id}`)).status).toBe(200);
    expect((await as(`/api/v1/scrape-targets/${target.id}/scrape`, 'POST')).status).toBe(403);
    expect((await as(`/api/v1/scrape-targets/${target.id}`, 'DELETE')).status).toBe(403);
  });
});
