import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer, adminFetch } from '../helpers/db.js';

interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

// The error shape is engine-independent: one engine is enough here.
describe('HTTP error shape', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('pglite', { WARDEN_BODY_LIMIT_BYTES: '2048', WARDEN_HEALTH_INTERVAL: '1h' });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  async function post(body: string, contentType = 'application/json'): Promise<{ status: number; body: ErrorBody }> {
    const res = await adminFetch(t.server.url, `/health/checks`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    });
    return { status: res.status, body: (await res.json()) as ErrorBody };
  }

  it('answers malformed JSON with 400 invalid_json', async () => {
    const res = await post('{"components": [');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_json');
  });

  it('answers a non-JSON content type with 415 naming the header', async () => {
    const res = await post('components=database', 'text/plain');
    expect(res.status).toBe(415);
    expect(res.body.error).toMatchObject({ code: 'unsupported_media_type', field: 'content-type' });
    const form = await post('components=database', 'application/x-www-form-urlencoded');
    expect(form.status).toBe(415);
  });

  it('answers an oversized body with 413', async () => {
    const res = await post(JSON.stringify({ components: ['database'], pad: 'x'.repeat(4096) }));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('names the field of a validation error', async () => {
    const wrongValue = await post(JSON.stringify({ components: ['database', 'cpu'] }));
    expect(wrongValue.status).toBe(400);
    expect(wrongValue.body.error.code).toBe('validation');
    expect(wrongValue.body.error.field).toBe('components.1');
    expect(wrongValue.body.error.message).toContain('"database"');

    const unknownField = await post(JSON.stringify({ component: 'database' }));
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.field).toBe('component');

    const res = await adminFetch(t.server.url, `/health/history?hours=-5`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as ErrorBody).error.field).toBe('hours');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await fetch(`${t.server.url}/no/such/route?x=1`);
    expect(res.status).toBe(404);
    const body = (await res.json()) as ErrorBody;
    expect(body.error.code).toBe('not_found');
    expect(body.error.message).toContain('/no/such/route');
  });

  it('never sends a stack trace', async () => {
    const res = await post('{"components": [');
    expect(JSON.stringify(res.body)).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });
});

describe('OpenAPI document and UI', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer('pglite', { WARDEN_HEALTH_INTERVAL: '1h' });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('serves an OpenAPI 3 document generated from the route schemas', async () => {
    const res = await adminFetch(t.server.url, `/api/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of [
      '/health',
      '/health/ready',
      '/health/history',
      '/health/checks',
      '/status',
      '/database/status',
      '/metrics',
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.paths['/health/checks']).toHaveProperty('post');
  });

  it('serves a browsable UI at /api/docs', async () => {
    const res = await adminFetch(t.server.url, `/api/docs/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
  });
});
