import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Permission } from '../../src/domain/access/permissions.js';
import { registerAuth, type RouteTable } from '../../src/http/auth.js';
import { adminFetch, login, startTestServer, type TestServer } from '../helpers/db.js';

/** Only these routes may be reachable without credentials. */
const PUBLIC_ROUTES = new Set(['GET /health', 'GET /health/ready', 'POST /api/v1/auth/login']);

function concretePath(url: string): string {
  return url.replace(/:[a-zA-Z_]+/g, '1').replace(/\*$/, 'index.html');
}

describe('every route declares its permission', () => {
  let t: TestServer;
  let table: RouteTable;
  const credentials: Partial<Record<Permission, Record<string, string>>> = {};

  beforeAll(async () => {
    t = await startTestServer('pglite', { WARDEN_HEALTH_INTERVAL: '1h', WARDEN_METRICS_PUBLIC: 'false' });
    table = t.server.routeTable;
    const url = t.server.url;
    // Principals that lack exactly the permission under test.
    for (const [email, role] of [
      ['viewer@warden.test', 'viewer'],
      ['operator@warden.test', 'operator'],
    ] as const) {
      const res = await adminFetch(url, '/api/v1/users', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, role, password: 'a-long-enough-password' }),
      });
      expect(res.status).toBe(201);
    }
    const viewer = { cookie: await login(url, 'viewer@warden.test', 'a-long-enough-password') };
    const operator = { cookie: await login(url, 'operator@warden.test', 'a-long-enough-password') };
    const keyRes = await adminFetch(url, '/api/v1/api-keys', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ingest only', scopes: ['ingest'] }),
    });
    expect(keyRes.status).toBe(201);
    const ingestKey = { authorization: `Bearer ${((await keyRes.json()) as { key: string }).key}` };
    credentials.read = ingestKey; // an admin's ingest-scoped key cannot read
    credentials.operate = viewer;
    credentials.ingest = viewer;
    credentials.admin = operator;
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('public routes are exactly the documented ones', () => {
    const publicRoutes = table.filter((r) => r.permission === 'public').map((r) => `${r.method} ${r.url}`);
    expect(new Set(publicRoutes)).toEqual(PUBLIC_ROUTES);
  });

  it('every other route answers 401 without credentials and 403 to a principal lacking its permission', async () => {
    const protectedRoutes = table.filter((r) => r.permission !== 'public');
    expect(protectedRoutes.length).toBeGreaterThan(10);
    for (const route of protectedRoutes) {
      const init: RequestInit = { method: route.method };
      if (['POST', 'PUT', 'PATCH'].includes(route.method)) {
        init.headers = { 'content-type': 'application/json' };
        init.body = '{}';
      }
      const anonymous = await fetch(`${t.server.url}${concretePath(route.url)}`, init);
      expect(anonymous.status, `${route.method} ${route.url} without credentials`).toBe(401);
      expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe('unauthorized');

      const lacking = credentials[route.permission];
      if (lacking === undefined) {
        continue; // 'authenticated': every principal has it
      }
      const denied = await fetch(`${t.server.url}${concretePath(route.url)}`, {
        ...init,
        headers: { ...(init.headers as Record<string, string> | undefined), ...lacking },
      });
      expect(denied.status, `${route.method} ${route.url} needing ${route.permission}`).toBe(403);
    }
  });

  it('refuses to register a route that declares no permission', async () => {
    const app = Fastify();
    registerAuth(app, {
      authenticators: { session: async () => null, apiKey: async () => null },
      perIpLimiter: { take: () => ({ allowed: true }) },
      perKeyLimiter: { take: () => ({ allowed: true }) },
      usage: { record: () => {} },
      metricsPublic: false,
    });
    expect(() => app.get('/forgotten', async () => 'oops')).toThrow(/declares no permission/);
    await app.close();
  });
});
