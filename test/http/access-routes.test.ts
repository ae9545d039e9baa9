import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { ENGINES, TEST_ADMIN_PASSWORD, adminFetch, login, startTestServer, type TestServer } from '../helpers/db.js';

const USER_PASSWORD = 'a-strong-password-for-tests';
const json = { 'content-type': 'application/json' };

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

describe.each(ENGINES)('people and access over HTTP on %s', (engine) => {
  let t: TestServer;
  let url: string;
  const logLines: string[] = [];
  const secrets: string[] = [TEST_ADMIN_PASSWORD, USER_PASSWORD];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(chunk.toString());
        callback();
      },
    });
    t = await startTestServer(
      engine,
      { WARDEN_HEALTH_INTERVAL: '1h' },
      createLogger({ level: 'debug', format: 'json' }, sink),
    );
    url = t.server.url;
  });
  afterAll(async () => {
    await t.cleanup();
  });

  async function createUser(email: string, role: string): Promise<number> {
    const res = await adminFetch(url, '/api/v1/users', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email, role, password: USER_PASSWORD }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { user: { id: number } }).user.id;
  }

  async function createKey(cookie: string, scopes: string[]): Promise<{ key: string; id: number }> {
    const res = await fetch(`${url}/api/v1/api-keys`, {
      method: 'POST',
      headers: { ...json, cookie },
      body: JSON.stringify({ name: `key ${scopes.join('+')}`, scopes }),
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { key: string; api_key: { id: number } };
    secrets.push(body.key);
    return { key: body.key, id: body.api_key.id };
  }

  it('logs in with an httpOnly SameSite=Lax cookie, answers /me, and logs out', async () => {
    const res = await fetch(`${url}/api/v1/auth/login`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: 'admin@warden.test', password: TEST_ADMIN_PASSWORD }),
    });
    expect(res.status).toBe(200);
    const setCookie = res.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^warden_session=[^;]+;/);
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Lax');
    expect(setCookie).toContain(`Max-Age=${7 * 86_400}`);
    expect(setCookie).not.toContain('Secure');
    const cookie = setCookie.split(';')[0] ?? '';

    const me = await fetch(`${url}/api/v1/auth/me`, { headers: { cookie } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ user: { email: 'admin@warden.test', role: 'admin' }, via: 'session' });

    const out = await fetch(`${url}/api/v1/auth/logout`, { method: 'POST', headers: { cookie } });
    expect(out.status).toBe(204);
    expect((await fetch(`${url}/api/v1/auth/me`, { headers: { cookie } })).status).toBe(401);
  });

  it('rejects bad user input with 400 naming the field, and duplicates with 409', async () => {
    const badRole = await adminFetch(url, '/api/v1/users', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: 'x@warden.test', role: 'root' }),
    });
    expect(badRole.status).toBe(400);
    expect(((await badRole.json()) as ErrorBody).error.field).toBe('role');

    const shortPassword = await adminFetch(url, '/api/v1/users', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: 'y@warden.test', role: 'viewer', password: 'short' }),
    });
    expect(shortPassword.status).toBe(400);
    expect(((await shortPassword.json()) as ErrorBody).error.field).toBe('password');

    const injection = await adminFetch(url, '/api/v1/users', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: "robert'); drop table users;--@warden.test", role: 'viewer' }),
    });
    expect([201, 400]).toContain(injection.status);
    const list = await adminFetch(url, '/api/v1/users');
    expect(list.status).toBe(200);

    await createUser('dup@warden.test', 'viewer');
    const dup = await adminFetch(url, '/api/v1/users', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ email: 'DUP@warden.test', role: 'viewer', password: USER_PASSWORD }),
    });
    expect(dup.status).toBe(409);
    expect(((await dup.json()) as ErrorBody).error.field).toBe('email');
  });

  it('throttles password guessing with 429 and Retry-After, and audits the failures', async () => {
    await createUser('victim@warden.test', 'viewer');
    const attempt = (): Promise<Response> =>
      fetch(`${url}/api/v1/auth/login`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ email: 'victim@warden.test', password: 'wrong-password-guess' }),
      });
    for (let i = 0; i < 5; i += 1) {
      expect((await attempt()).status).toBe(401);
    }
    const blocked = await attempt();
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await blocked.json()) as ErrorBody).error.code).toBe('rate_limited');

    const audit = await adminFetch(url, '/api/v1/audit?limit=200');
    const entries = ((await audit.json()) as { entries: { action: string; after: unknown; before: unknown }[] })
      .entries;
    expect(entries.filter((e) => e.action === 'auth.login_failed').length).toBeGreaterThanOrEqual(5);
    expect(JSON.stringify(entries)).not.toContain('wrong-password-guess');
  });

  it('API keys: shown once, scopes narrow the role, revocation takes effect at once, usage is recorded', async () => {
    const cookie = await login(url);
    const read = await createKey(cookie, ['read']);
    const bearer = { authorization: `Bearer ${read.key}` };

    expect((await fetch(`${url}/status`, { headers: bearer })).status).toBe(200);
    const me = (await (await fetch(`${url}/api/v1/auth/me`, { headers: bearer })).json()) as {
      via: string;
      permissions: string[];
    };
    expect(me.via).toBe('api_key');
    expect(me.permissions).not.toContain('operate');
    const write = await fetch(`${url}/health/checks`, { method: 'POST', headers: { ...bearer, ...json }, body: '{}' });
    expect(write.status).toBe(403);

    const listed = await fetch(`${url}/api/v1/api-keys`, { headers: { cookie } });
    const listText = await listed.text();
    expect(listText).toContain(read.key.split('_')[1] ?? 'prefix');
    expect(listText).not.toContain(read.key);

    await t.server.services.apiKeyUsage.flush();
    const usage = await fetch(`${url}/api/v1/api-keys/${read.id}/usage?hours=1`, { headers: { cookie } });
    expect(usage.status).toBe(200);
    const usageBody = (await usage.json()) as { total_requests: number; by_status_class: Record<string, number> };
    expect(usageBody.total_requests).toBeGreaterThanOrEqual(3);

    const revoked = await fetch(`${url}/api/v1/api-keys/${read.id}`, { method: 'DELETE', headers: { cookie } });
    expect(revoked.status).toBe(200);
    const after = await fetch(`${url}/status`, { headers: bearer });
    expect(after.status).toBe(401);

    const wrong = await fetch(`${url}/status`, {
      headers: { authorization: 'Bearer wdn_AAAAAAAA_not-a-real-secret-000000000000000000' },
    });
    expect(wrong.status).toBe(401);
  });

  it('disabling a user ends their sessions and their keys at once', async () => {
    const id = await createUser('leaver@warden.test', 'operator');
    const cookie = await login(url, 'leaver@warden.test', USER_PASSWORD);
    const key = await createKey(cookie, ['write']);
    expect((await fetch(`${url}/status`, { headers: { authorization: `Bearer ${key.key}` } })).status).toBe(200);

    const res = await adminFetch(url, `/api/v1/users/${id}`, {
      method: 'PATCH',
      headers: json,
      body: JSON.stringify({ disabled: true }),
    });
    expect(res.status).toBe(200);
    expect((await fetch(`${url}/api/v1/auth/me`, { headers: { cookie } })).status).toBe(401);
    // At once on this instance: the key cache forgets the user when access shrinks.
    expect((await fetch(`${url}/status`, { headers: { authorization: `Bearer ${key.key}` } })).status).toBe(401);
  });

  it('records who changed what in the audit log, filterable by entity', async () => {
    const id = await createUser('audited@warden.test', 'viewer');
    await adminFetch(url, `/api/v1/users/${id}`, {
      method: 'PATCH',
      headers: json,
      body: JSON.stringify({ role: 'operator' }),
    });
    const res = await adminFetch(url, `/api/v1/audit?entity_type=user&entity_id=${id}`);
    expect(res.status).toBe(200);
    const entries = (
      (await res.json()) as {
        entries: { action: string; actor_label: string; before: unknown; after: unknown; ip: string }[];
      }
    ).entries;
    expect(entries.map((e) => e.action)).toEqual(expect.arrayContaining(['user.create']));
    expect(entries.length).toBeGreaterThanOrEqual(2);
    expect(entries[0]?.actor_label).toBe('admin@warden.test');
    expect(entries[0]?.ip).toBe('127.0.0.1');
    expect(JSON.stringify(entries)).not.toMatch(/argon2|password_hash/);

    const badCursor = await adminFetch(url, '/api/v1/audit?cursor=not-a-cursor');
    expect(badCursor.status).toBe(400);
    expect(((await badCursor.json()) as ErrorBody).error.field).toBe('cursor');
  });

  it('never writes a password or API key to the log', () => {
    const output = logLines.join('');
    expect(output).toContain('incoming request');
    for (const secret of secrets) {
      expect(output).not.toContain(secret);
    }
  });
});

describe('per-IP rate limit', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('pglite', { WARDEN_HEALTH_INTERVAL: '1h', WARDEN_RATE_LIMIT_PER_IP: '5' });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('answers 429 with Retry-After beyond the limit while health probes keep answering', async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 8; i += 1) {
      const res = await fetch(`${t.server.url}/status`);
      statuses.push(res.status);
      if (res.status === 429) {
        retryAfter = res.headers.get('retry-after');
      }
    }
    expect(statuses.slice(0, 5).every((s) => s === 401)).toBe(true);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect((await fetch(`${t.server.url}/health`)).status).toBe(200);
  });
});

describe('WARDEN_METRICS_PUBLIC', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('pglite', { WARDEN_HEALTH_INTERVAL: '1h', WARDEN_METRICS_PUBLIC: 'true' });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('opens /metrics to a local scraper without credentials and nothing else', async () => {
    const metrics = await fetch(`${t.server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('warden_http_request_duration_seconds');
    expect((await fetch(`${t.server.url}/status`)).status).toBe(401);
    expect((await fetch(`${t.server.url}/database/status`)).status).toBe(401);
  });
});
