import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, startTestServer, type TestServer, adminFetch } from '../helpers/db.js';

describe.each(ENGINES)('health routes on %s', (engine) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(engine, { WARDEN_HEALTH_INTERVAL: '1h' });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('GET /health answers ok with the uptime', async () => {
    const res = await fetch(`${t.server.url}/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; uptime_s: number };
    expect(body.status).toBe('ok');
    expect(body.uptime_s).toBeGreaterThanOrEqual(0);
    expect(res.headers.get('x-request-id')).toMatch(/[0-9a-f-]{36}/);
  });

  it('GET /health/ready reports every component passing', async () => {
    const res = await fetch(`${t.server.url}/health/ready`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; components: Record<string, { status: string }> };
    expect(body.status).toBe('ready');
    expect(Object.keys(body.components).sort()).toEqual(['database', 'disk', 'event_loop', 'memory', 'migrations']);
    for (const component of Object.values(body.components)) {
      expect(component.status).toBe('pass');
    }
  });

  it('records checks and summarizes them in /health/history', async () => {
    const run = await adminFetch(t.server.url, `/health/checks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ components: ['database', 'memory'] }),
    });
    expect(run.status).toBe(200);
    const res = await adminFetch(t.server.url, `/health/history?hours=1`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      summary: { component: string; checks: number; failures: number; availability_pct: number }[];
      checks: { component: string; status: string }[];
    };
    const database = body.summary.find((s) => s.component === 'database');
    expect(database?.checks).toBeGreaterThanOrEqual(1);
    expect(database?.availability_pct).toBe(100);
    expect(body.checks.some((c) => c.component === 'memory' && c.status === 'pass')).toBe(true);
  });
});
