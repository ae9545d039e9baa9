/**
 * PostgreSQL faults: unreachable at start, reachable only later, lost and regained while
 * serving, and the pool's session settings. Each outage scenario runs its own PostgreSQL
 * server (it is stopped on purpose); the settings scenario uses clones on the shared one.
 */
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseUnavailableError } from '../../src/db/engine.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { createApiKey, createTestDatabase, testConfig, type TestDatabase, adminFetch } from '../helpers/db.js';
import { freePort, startTestPostgres, type TestPostgres } from '../helpers/postgres-server.js';

interface CapturedLog {
  readonly logger: Logger;
  /** Everything written so far, one JSON line per entry. */
  text(): string;
  /** Parsed entries whose `msg` is the given message. */
  entries(msg: string): Record<string, unknown>[];
}

function captureLogger(): CapturedLog {
  const chunks: string[] = [];
  const logger = createLogger(
    { level: 'debug', format: 'json' },
    {
      write(chunk: string) {
        chunks.push(chunk);
      },
    },
  );
  const text = (): string => chunks.join('');
  return {
    logger,
    text,
    entries: (msg) =>
      text()
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((entry) => entry.msg === msg),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `GET url` every `intervalMs` until `accept` holds; bounded by `timeoutMs`. */
async function pollStatus(
  url: string,
  accept: (status: number) => boolean,
  timeoutMs: number,
  intervalMs = 250,
): Promise<{ status: number; body: unknown; attempts: number }> {
  const deadline = Date.now() + timeoutMs;
  const maxAttempts = Math.ceil(timeoutMs / intervalMs) + 1;
  let last: { status: number; body: unknown } = { status: 0, body: undefined };
  for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    last = { status: res.status, body: await res.json() };
    if (accept(last.status)) {
      return { ...last, attempts: attempt };
    }
    if (Date.now() >= deadline) {
      break;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${url} did not reach the expected status within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/** Records unhandled rejections and uncaught exceptions while a scenario runs. */
function watchUnhandled(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const onError = (error: unknown): void => {
    errors.push(error);
  };
  process.on('unhandledRejection', onError);
  process.on('uncaughtException', onError);
  return {
    errors,
    stop() {
      process.off('unhandledRejection', onError);
      process.off('uncaughtException', onError);
    },
  };
}

interface ReadyBody {
  status: string;
  failing: string[];
  components: Record<string, { status: string; detail: Record<string, unknown> }>;
}

describe('PostgreSQL not reachable at start', () => {
  it('retries, then fails with a clear error that names the server but not the password', async () => {
    const port = await freePort();
    const password = 'pw-that-must-never-leak-7f3a';
    const log = captureLogger();
    const started = Date.now();
    let outcome: unknown;
    try {
      const server = await startServer({
        config: testConfig({
          DATABASE_URL: `postgres://warden:${password}@127.0.0.1:${port}/warden`,
          WARDEN_DB_CONNECT_TIMEOUT: '2s',
        }),
        logger: log.logger,
      });
      await server.close();
      outcome = new Error('startServer resolved although nothing listens');
    } catch (error) {
      outcome = error;
    }
    const elapsedMs = Date.now() - started;

    expect(outcome).toBeInstanceOf(DatabaseUnavailableError);
    const error = outcome as DatabaseUnavailableError;
    expect(error.message).toContain(`127.0.0.1:${port}`);
    const attempts = Number(/after (\d+) attempts/.exec(error.message)?.[1]);
    expect(attempts).toBeGreaterThan(1);
    expect(error.message).toMatch(/retry/i);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.message).not.toContain(password);
    expect(String(error.stack)).not.toContain(password);
    expect(String((error.cause as Error | undefined)?.message)).not.toContain(password);
    // It kept trying for about the configured 2 s, and not much longer.
    expect(elapsedMs).toBeGreaterThanOrEqual(1500);
    expect(elapsedMs).toBeLessThan(10_000);

    const retries = log.entries('PostgreSQL not reachable yet, retrying');
    expect(retries.length).toBeGreaterThan(1);
    expect(retries.length).toBe(attempts - 1);
    expect(retries.map((entry) => entry.attempt)).toEqual(retries.map((_, i) => i + 1));
    for (const entry of retries) {
      expect(String(entry.target)).toContain(`127.0.0.1:${port}`);
      expect(String(entry.target)).toContain('***');
    }
    expect(log.text()).not.toContain(password);
  });
});

describe('PostgreSQL reachable only after a while', () => {
  let pg: TestPostgres | undefined;
  let starting: Promise<{ running: RunningServer } | { error: unknown }> | undefined;
  afterEach(async () => {
    // Even when the test failed early, wait for start-up to settle so no pool outlives the file.
    const result = await starting;
    if (result !== undefined && 'running' in result) {
      await result.running.close();
    }
    await pg?.destroy();
  });

  it('keeps retrying and starts once the server is up', { timeout: 90_000 }, async () => {
    const port = await freePort();
    const log = captureLogger();
    starting = startServer({
      config: testConfig({
        DATABASE_URL: `postgres://postgres:warden-test@127.0.0.1:${port}/postgres`,
        WARDEN_DB_CONNECT_TIMEOUT: '30s',
        WARDEN_HEALTH_INTERVAL: '1h',
      }),
      logger: log.logger,
    }).then(
      (running) => ({ running }),
      (error: unknown) => ({ error }),
    );

    await sleep(1500);
    pg = await startTestPostgres({ port });
    const result = await starting;
    if ('error' in result) {
      throw result.error;
    }
    const server = result.running;

    expect(log.entries('PostgreSQL not reachable yet, retrying').length).toBeGreaterThanOrEqual(1);
    expect(log.entries('connected to PostgreSQL')).toHaveLength(1);
    const res = await fetch(`${server.url}/health/ready`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as ReadyBody).status).toBe('ready');
  });
});

describe('PostgreSQL stops while Warden serves', () => {
  let pg: TestPostgres;
  let server: RunningServer;
  let log: CapturedLog;

  beforeAll(async () => {
    pg = await startTestPostgres();
    log = captureLogger();
    server = await startServer({
      config: testConfig({
        DATABASE_URL: pg.url(),
        // The health job runs during the outage too; its failures must stay contained.
        WARDEN_HEALTH_INTERVAL: '1s',
        WARDEN_DB_CONNECTION_TIMEOUT_MS: '1000',
      }),
      logger: log.logger,
    });
  });
  afterAll(async () => {
    await server?.close();
    await pg?.destroy();
  });

  it('reports not ready, stays alive, answers 503 errors, and recovers by itself', { timeout: 120_000 }, async () => {
    const watch = watchUnhandled();
    try {
      const before = await fetch(`${server.url}/health/ready`);
      expect(before.status).toBe(200);
      // Log in while the database is up; the session is then checked during the outage.
      expect((await adminFetch(server.url, '/status')).status).toBe(200);

      await pg.stop();

      const down = await pollStatus(`${server.url}/health/ready`, (status) => status === 503, 15_000);
      const body = down.body as ReadyBody;
      expect(body.status).toBe('not_ready');
      expect(body.failing).toContain('database');
      expect(body.components.database?.status).toBe('fail');
      expect(typeof body.components.database?.detail.error).toBe('string');

      const live = await fetch(`${server.url}/health`);
      expect(live.status).toBe(200);
      expect(((await live.json()) as { status: string }).status).toBe('ok');

      const status = await adminFetch(server.url, `/status`);
      expect(status.status).toBe(503);
      expect(status.headers.get('content-type')).toContain('application/json');
      const statusBody = (await status.json()) as { error: { code: string; message: string } };
      expect(statusBody.error.code).toBe('unavailable');
      expect(statusBody.error.message).not.toContain('warden-test');

      // Several requests in a row while down: each one fails fast and cleanly.
      for (let i = 0; i < 5; i += 1) {
        const again = await fetch(`${server.url}/health/ready`, { signal: AbortSignal.timeout(10_000) });
        expect(again.status).toBe(503);
        await again.arrayBuffer();
      }

      await pg.start();

      const up = await pollStatus(`${server.url}/health/ready`, (s) => s === 200, 30_000);
      expect((up.body as ReadyBody).status).toBe('ready');
      const statusAfter = await adminFetch(server.url, `/status`);
      expect(statusAfter.status).toBe(200);
      expect(((await statusAfter.json()) as { engine: string }).engine).toBe('postgresql');

      // Idle clients dropped by the server went through the pool's error handler (logged, not thrown).
      const idleFailures = log.entries('idle database connection failed');
      expect(idleFailures.length).toBeGreaterThanOrEqual(1);
      expect(idleFailures.map((entry) => (entry.err as { code?: string }).code)).toContain('57P01');
      expect(log.text()).not.toContain('warden-test');
      expect(watch.errors).toEqual([]);
    } finally {
      watch.stop();
    }
  });
  it(
    'metric ingest answers 503 while the database is down, keeps what was accepted, and works again after',
    { timeout: 120_000 },
    async () => {
      const watch = watchUnhandled();
      try {
        const key = await createApiKey(server.url, 'outage-ingest', ['ingest']);
        const push = (value: number): Promise<Response> =>
          fetch(`${server.url}/api/v1/metrics`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify({ samples: [{ host: 'outage-host', metric: 'load.1', value, ts: Date.now() }] }),
            signal: AbortSignal.timeout(15_000),
          });
        expect((await push(1)).status).toBe(202);

        await pg.stop();
        await pollStatus(`${server.url}/health/ready`, (status) => status === 503, 15_000);
        const down = await push(2);
        expect(down.status).toBe(503);
        expect(((await down.json()) as { error: { code: string } }).error.code).toBe('unavailable');

        await pg.start();
        await pollStatus(`${server.url}/health/ready`, (s) => s === 200, 30_000);
        // The first attempt after the restart may meet a pooled connection the server dropped.
        let after = await push(3);
        for (let i = 0; i < 5 && after.status === 503; i += 1) {
          after = await push(3);
        }
        expect(after.status).toBe(202);
        const values = await sql<{ value: number }>`
        select m.value from metric_samples m join metric_series s on s.id = m.series_id
        join hosts h on h.id = s.host_id where h.name = 'outage-host' order by m.ts`.execute(server.database.db);
        expect(values.rows.map((r) => r.value)).toEqual([1, 3]);
        expect(watch.errors).toEqual([]);
      } finally {
        watch.stop();
      }
    },
  );

  it('survives a restart under load: no uncaught client errors, only 200 or 503', { timeout: 120_000 }, async () => {
    expect((await adminFetch(server.url, '/status')).status).toBe(200);
    const watch = watchUnhandled();
    let running = true;
    const httpStatuses = new Map<number, number>();
    const queryErrors = new Set<string>();
    let queriesOk = 0;
    // Bounded: each loop stops at the flag or after 20 000 iterations.
    const queryLoops = Array.from({ length: 6 }, async () => {
      for (let i = 0; running && i < 20_000; i += 1) {
        try {
          await sql`select 1`.execute(server.database.db);
          queriesOk += 1;
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          queryErrors.add(typeof code === 'string' ? code : error instanceof Error ? error.message : String(error));
          await sleep(5);
        }
      }
    });
    const httpLoops = ['/status', '/health/ready'].map(async (route) => {
      for (let i = 0; running && i < 20_000; i += 1) {
        const res = await adminFetch(server.url, route, { signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        httpStatuses.set(res.status, (httpStatuses.get(res.status) ?? 0) + 1);
      }
    });
    try {
      await sleep(300);
      expect(queriesOk).toBeGreaterThan(0);
      await pg.stop();
      await sleep(1000);
      running = false;
      await Promise.all([...queryLoops, ...httpLoops]);

      expect(queryErrors.size).toBeGreaterThan(0);
      expect([...httpStatuses.keys()].filter((status) => status !== 200 && status !== 503)).toEqual([]);
      expect(httpStatuses.get(503) ?? 0).toBeGreaterThan(0);
      expect(
        watch.errors.map((e) =>
          e instanceof Error ? `${e.message} code=${String((e as { code?: unknown }).code)}` : String(e),
        ),
      ).toEqual([]);

      await pg.start();
      await pollStatus(`${server.url}/health/ready`, (status) => status === 200, 30_000);
      const after = await sql<{ one: number }>`select 1 as one`.execute(server.database.db);
      expect(after.rows[0]?.one).toBe(1);
    } finally {
      running = false;
      await Promise.allSettled([...queryLoops, ...httpLoops]);
      watch.stop();
    }
  });
});

describe('pool settings reach the PostgreSQL session', () => {
  const opened: TestDatabase[] = [];
  afterAll(async () => {
    await Promise.all(opened.map((t) => t.cleanup()));
  });

  it('applies statement, lock and idle-in-transaction timeouts, time zone and application name', async () => {
    const t = await createTestDatabase('postgresql', {
      WARDEN_DB_STATEMENT_TIMEOUT_MS: '1234',
      WARDEN_DB_LOCK_TIMEOUT_MS: '567',
      WARDEN_DB_IDLE_IN_TX_TIMEOUT_MS: '4321',
      WARDEN_DB_APPLICATION_NAME: 'warden-test',
    });
    opened.push(t);
    const db = t.database.db;
    const show = async (name: string): Promise<unknown> => {
      const result = await sql<Record<string, unknown>>`show ${sql.raw(name)}`.execute(db);
      return Object.values(result.rows[0] ?? {})[0];
    };
    expect(await show('statement_timeout')).toBe('1234ms');
    expect(await show('lock_timeout')).toBe('567ms');
    expect(await show('idle_in_transaction_session_timeout')).toBe('4321ms');
    expect(await show('TimeZone')).toBe('UTC');
    const app = await sql<{ name: string }>`select current_setting('application_name') as name`.execute(db);
    expect(app.rows[0]?.name).toBe('warden-test');
  });

  it('cancels a query past statement_timeout with SQLSTATE 57014 and counts it', async () => {
    const t = await createTestDatabase('postgresql', { WARDEN_DB_STATEMENT_TIMEOUT_MS: '200' });
    opened.push(t);
    const errorsBefore = t.database.instrumentation.stats().errors;
    const started = Date.now();
    const failure = await sql`select pg_sleep(2)`.execute(t.database.db).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(Date.now() - started).toBeLessThan(1900);
    expect(failure).toBeInstanceOf(Error);
    expect((failure as { code?: string }).code).toBe('57014');
    expect(t.database.instrumentation.stats().errors).toBe(errorsBefore + 1);
    const text = await t.metrics.registry.metrics();
    expect(text).toMatch(/^warden_db_query_errors_total\{[^}]*sqlstate="57014"[^}]*\} 1$/m);

    // The connection is still usable afterwards.
    const ok = await sql<{ one: number }>`select 1 as one`.execute(t.database.db);
    expect(ok.rows[0]?.one).toBe(1);
  });
});
