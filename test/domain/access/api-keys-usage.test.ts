import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../../../src/db/schema.js';
import { ApiKeyUsageRecorder, statusClassOf } from '../../../src/domain/access/api-key-usage.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';

const ROUTES = ['/api/v1/monitors', '/api/v1/monitors/:id', '/api/v1/metrics'];
const STATUSES = [200, 404];

describe.each(ENGINES)('API key usage on %s', (engine) => {
  let t: TestDatabase;
  let clock = new Date('2026-06-01T12:00:10Z');
  const now = () => clock;

  async function insertKey(prefix: string): Promise<number> {
    const user = await t.database.db
      .insertInto('users')
      .values({
        email: `${prefix}@warden.test`,
        password_hash: 'x',
        role: 'operator',
        disabled_at: null,
        last_login_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const key = await t.database.db
      .insertInto('api_keys')
      .values({
        user_id: user.id,
        name: prefix,
        prefix,
        key_hash: 'not-a-real-hash',
        scopes: sql<Scope[]>`array['ingest']::text[]`,
        expires_at: null,
        revoked_at: null,
        last_used_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return key.id;
  }

  async function usageRows(keyId: number): Promise<number> {
    const result = await sql<{ n: number }>`
      select count(*)::int8 as n from api_key_usage where api_key_id = ${keyId}
    `.execute(t.database.db);
    return result.rows[0]?.n ?? -1;
  }

  function queryCount(): number {
    return t.database.instrumentation.stats().count;
  }

  beforeAll(async () => {
    t = await createTestDatabase(engine);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('aggregates 1000 requests into at most one row per route, status class and minute', async () => {
    const keyId = await insertKey('usage001');
    const recorder = new ApiKeyUsageRecorder(t.database.db, {}, now);
    const start = clock;
    for (let i = 0; i < 1000; i += 1) {
      // Spread over two minutes: 12:00:10 … 12:01:09.
      clock = new Date(start.getTime() + i * 60);
      recorder.record(keyId, ROUTES[i % ROUTES.length] ?? '', STATUSES[i % STATUSES.length] ?? 0, 5 + (i % 20));
    }
    const pending = recorder.pendingCount;
    expect(pending).toBe(ROUTES.length * STATUSES.length * 2);

    const before = queryCount();
    expect(await recorder.flush()).toBe(pending);
    expect(queryCount() - before).toBe(1); // one statement for the whole batch
    expect(recorder.pendingCount).toBe(0);
    expect(await usageRows(keyId)).toBe(ROUTES.length * STATUSES.length * 2);

    const usage = await recorder.usage(keyId, 1);
    expect(usage.total_requests).toBe(1000);
    expect(usage.buckets.reduce((sum, b) => sum + b.requests, 0)).toBe(1000);
    expect(Object.values(usage.by_route).reduce((a, b) => a + b, 0)).toBe(1000);
    expect(Object.keys(usage.by_route).sort()).toEqual([...ROUTES].sort());
    expect(usage.by_status_class).toEqual({ '2xx': 500, '4xx': 500 });
    expect(usage.p95_latency_ms).not.toBeNull();
    expect(usage.p95_latency_ms ?? Infinity).toBeLessThanOrEqual(usage.max_latency_ms ?? 0);
    expect(usage.max_latency_ms).toBe(24);
  });

  it('adds a later flush of the same minute to the stored rows', async () => {
    const keyId = await insertKey('usage002');
    const recorder = new ApiKeyUsageRecorder(t.database.db, {}, now);
    for (let round = 0; round < 2; round += 1) {
      for (let i = 0; i < 10; i += 1) {
        recorder.record(keyId, '/api/v1/metrics', 204, round === 0 ? 1 : 50);
      }
      await recorder.flush();
    }
    expect(await usageRows(keyId)).toBe(1);
    const usage = await recorder.usage(keyId, 1);
    expect(usage.total_requests).toBe(20);
    expect(usage.max_latency_ms).toBe(50);
  });

  it('does nothing when nothing is pending', async () => {
    const recorder = new ApiKeyUsageRecorder(t.database.db, {}, now);
    const before = queryCount();
    expect(await recorder.flush()).toBe(0);
    expect(queryCount()).toBe(before);
  });

  it('keeps the pending usage when a flush fails and writes it with the next one', async () => {
    const keyId = await insertKey('usage003');
    const recorder = new ApiKeyUsageRecorder(t.database.db, {}, now);
    for (let i = 0; i < 30; i += 1) {
      recorder.record(keyId, '/api/v1/hosts', 200, 3);
    }
    await sql`alter table api_key_usage rename to api_key_usage_away`.execute(t.database.db);
    try {
      await expect(recorder.flush()).rejects.toThrow();
      recorder.record(keyId, '/api/v1/hosts', 200, 3); // arrives while the database is away
      recorder.record(keyId, '/api/v1/hosts', 503, 9);
    } finally {
      await sql`alter table api_key_usage_away rename to api_key_usage`.execute(t.database.db);
    }
    expect(recorder.pendingCount).toBe(2);
    await recorder.flush();
    const usage = await recorder.usage(keyId, 1);
    expect(usage.total_requests).toBe(32);
    expect(usage.by_status_class).toEqual({ '2xx': 31, '5xx': 1 });
  });

  it('bounds pending usage, dropping and counting the oldest aggregates', async () => {
    const recorder = new ApiKeyUsageRecorder(t.database.db, { maxPendingAggregates: 5 }, now);
    for (let i = 0; i < 8; i += 1) {
      recorder.record(1, `/route/${i}`, 200, 1);
      recorder.record(1, `/route/${i}`, 200, 1);
    }
    expect(recorder.pendingCount).toBe(5);
    expect(recorder.dropped).toEqual({ aggregates: 3, requests: 6 });
  });

  it('skips usage of keys that no longer exist instead of failing the batch', async () => {
    const keyId = await insertKey('usage004');
    const recorder = new ApiKeyUsageRecorder(t.database.db, {}, now);
    recorder.record(keyId, '/api/v1/monitors', 200, 1);
    recorder.record(987_654, '/api/v1/monitors', 200, 1);
    await recorder.flush();
    expect(recorder.pendingCount).toBe(0);
    expect((await recorder.usage(keyId, 1)).total_requests).toBe(1);
    expect((await recorder.usage(987_654, 1)).total_requests).toBe(0);
  });

  it('rejects a window outside 1 to 744 hours', async () => {
    const recorder = new ApiKeyUsageRecorder(t.database.db, {}, now);
    await expect(recorder.usage(1, 0)).rejects.toMatchObject({ code: 'validation', field: 'hours' });
    await expect(recorder.usage(1, 745)).rejects.toMatchObject({ code: 'validation', field: 'hours' });
  });
});

describe('status classes', () => {
  it('groups status codes by hundreds', () => {
    expect([100, 200, 204, 301, 404, 429, 500, 599].map(statusClassOf)).toEqual([
      '1xx',
      '2xx',
      '2xx',
      '3xx',
      '4xx',
      '4xx',
      '5xx',
      '5xx',
    ]);
    expect([0, 99, 600, 200.5, Number.NaN].map(statusClassOf)).toEqual(['other', 'other', 'other', 'other', 'other']);
  });
});
