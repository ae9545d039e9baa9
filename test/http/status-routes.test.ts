import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { ENGINES, startTestServer, type TestServer, adminFetch } from '../helpers/db.js';
import { TEST_PG_PASSWORD } from '../helpers/postgres-server.js';

describe.each(ENGINES)('status routes on %s', (engine) => {
  let t: TestServer;
  const logLines: string[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(chunk.toString());
        callback();
      },
    });
    const logger = createLogger({ level: 'debug', format: 'json' }, sink);
    t = await startTestServer(engine, { WARDEN_HEALTH_INTERVAL: '1h' }, logger);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('GET /status reports version, engine, uptime, memory and table row counts', async () => {
    const res = await adminFetch(t.server.url, `/status`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      version: string;
      engine: string;
      server_version: string;
      memory: { rss_bytes: number };
      tables: { table: string; rows: number; exact: boolean }[];
    };
    expect(body.engine).toBe(engine);
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(body.server_version).toMatch(/^PostgreSQL 1\d/);
    expect(body.memory.rss_bytes).toBeGreaterThan(0);
    const migrations = body.tables.find((row) => row.table === 'warden_migrations');
    expect(migrations).toMatchObject({ exact: true });
    expect(migrations?.rows).toBeGreaterThanOrEqual(1);
    expect(body.tables.map((row) => row.table)).toContain('health_checks');
  });

  it('GET /database/status reports size, tables, pool, migrations, query statistics and backups', async () => {
    const res = await adminFetch(t.server.url, `/database/status`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      engine: string;
      size_bytes: number;
      tables: { table: string; total_bytes: number }[];
      pool: { total: number; idle: number; waiting: number; max: number } | null;
      migrations: { applied: number; pending: string[]; checksum_mismatches: string[] };
      queries: { count: number; p50_ms: number | null; p99_ms: number | null; error_rate: number };
      backups: { available: boolean; count: number; message: string };
      metrics: { raw_partitions: { count: number; newest: string | null } };
    };
    expect(body.engine).toBe(engine);
    // Day partitions of raw samples exist from today to three days ahead; the parent table is
    // listed once (its partitions are summed into it), never partition by partition.
    expect(body.metrics.raw_partitions.count).toBeGreaterThanOrEqual(4);
    const ahead = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '');
    expect(body.metrics.raw_partitions.newest).toBe(`metric_samples_p${ahead}`);
    expect(body.tables.some((row) => row.table === 'metric_samples')).toBe(true);
    expect(body.tables.some((row) => row.table.startsWith('metric_samples_p'))).toBe(false);
    expect(body.size_bytes).toBeGreaterThan(0);
    expect(body.tables.find((row) => row.table === 'health_checks')?.total_bytes).toBeGreaterThan(0);
    if (engine === 'postgresql') {
      expect(body.pool).toMatchObject({ max: 10 });
      expect(body.pool?.total).toBeGreaterThanOrEqual(1);
    } else {
      expect(body.pool).toBeNull();
    }
    expect(body.migrations.pending).toEqual([]);
    expect(body.migrations.checksum_mismatches).toEqual([]);
    expect(body.migrations.applied).toBeGreaterThanOrEqual(1);
    expect(body.queries.count).toBeGreaterThan(0);
    expect(body.queries.p50_ms).not.toBeNull();
    expect(body.queries.error_rate).toBe(0);
    expect(body.backups).toMatchObject({ available: false, count: 0 });
    expect(body.backups.message).toMatch(/no backups/i);
  });

  it('GET /metrics exposes process, HTTP, database and health metrics', async () => {
    await fetch(`${t.server.url}/health`);
    await fetch(`${t.server.url}/health/ready`);
    const res = await adminFetch(t.server.url, `/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).toMatch(
      /warden_http_request_duration_seconds_count\{method="GET",route="\/health",status="200"\} \d+/,
    );
    expect(text).toMatch(/warden_db_query_duration_seconds_count\{statement="select \?",engine="[a-z]+"\} \d+/);
    expect(text).toMatch(/warden_health_status\{component="database"\} 1/);
    if (engine === 'postgresql') {
      expect(text).toMatch(/warden_db_pool_connections\{state="total"\} \d+/);
    }
  });

  it('never writes the database password to the log', async () => {
    await adminFetch(t.server.url, `/status`);
    const output = logLines.join('');
    expect(output).toContain('Warden is serving');
    expect(output).not.toContain(TEST_PG_PASSWORD);
  });
});
