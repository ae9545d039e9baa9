import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHealthJob } from '../../../src/domain/health/jobs.js';
import { HealthRepository } from '../../../src/domain/health/repository.js';
import { HealthService } from '../../../src/domain/health/service.js';
import { ENGINES, createTestDatabase, silentLogger, type TestDatabase } from '../../helpers/db.js';

const DAY_MS = 86_400_000;

describe.each(ENGINES)('self-health history on %s', (engine) => {
  let t: TestDatabase;
  let service: HealthService;
  let repository: HealthRepository;
  let clock = new Date('2026-06-01T12:00:00Z');

  beforeAll(async () => {
    t = await createTestDatabase(engine, { WARDEN_HEALTH_RETENTION_DAYS: '30', WARDEN_HEALTH_INTERVAL: '1s' });
    repository = new HealthRepository(t.database.db);
    service = new HealthService(
      t.database,
      repository,
      async () => ({ pending: [], checksumMismatches: [] }),
      t.config.health,
      t.metrics,
      () => clock,
    );
  });
  afterAll(async () => {
    service.dispose();
    await t.cleanup();
  });

  it('stores one row per component per run and summarizes availability and p95 latency', async () => {
    await service.recordChecks();
    clock = new Date(clock.getTime() + 60_000);
    await service.recordChecks(['database']);
    const history = await service.history(24);
    const database = history.summary.find((s) => s.component === 'database');
    expect(database).toMatchObject({ checks: 2, failures: 0, availabilityPct: 100, lastStatus: 'pass' });
    expect(database?.p95LatencyMs).not.toBeNull();
    expect(history.summary.find((s) => s.component === 'memory')?.checks).toBe(1);
    expect(history.checks).toHaveLength(6);
  });

  it('counts failures in the availability of a component', async () => {
    const ts = new Date(clock.getTime() - 10 * 60_000);
    await repository.insertChecks([
      { ts, component: 'disk', status: 'fail', latencyMs: 4, detail: { free_mb: 1 } },
      { ts: new Date(ts.getTime() + 1000), component: 'disk', status: 'fail', latencyMs: 8, detail: null },
    ]);
    const history = await service.history(24);
    const disk = history.summary.find((s) => s.component === 'disk');
    // One pass from the first test plus two failures.
    expect(disk).toMatchObject({ checks: 3, failures: 2 });
    expect(disk?.availabilityPct).toBeCloseTo(33.333, 2);
  });

  it('only returns the requested window and rejects a bad window', async () => {
    const old = new Date(clock.getTime() - 3 * 3_600_000);
    await repository.insertChecks([{ ts: old, component: 'database', status: 'pass', latencyMs: 1, detail: null }]);
    const lastHour = await service.history(1);
    expect(lastHour.checks.every((c) => c.ts.getTime() >= clock.getTime() - 3_600_000)).toBe(true);
    const lastDay = await service.history(24);
    expect(lastDay.checks.some((c) => c.ts.getTime() === old.getTime())).toBe(true);
    await expect(service.history(0)).rejects.toMatchObject({ code: 'validation', field: 'hours' });
  });

  it('removes rows older than the retention and keeps newer ones', async () => {
    await repository.insertChecks([
      { ts: new Date(clock.getTime() - 31 * DAY_MS), component: 'memory', status: 'pass', latencyMs: 1, detail: null },
      { ts: new Date(clock.getTime() - 29 * DAY_MS), component: 'memory', status: 'pass', latencyMs: 1, detail: null },
    ]);
    const removed = await service.enforceRetention();
    expect(removed).toBe(1);
    const left = await sql<{
      n: number;
    }>`select count(*)::int8 as n from health_checks where ts < ${new Date(clock.getTime() - 30 * DAY_MS)}`.execute(
      t.database.db,
    );
    expect(left.rows[0]?.n).toBe(0);
    const kept = await sql<{
      n: number;
    }>`select count(*)::int8 as n from health_checks where ts < ${new Date(clock.getTime() - 28 * DAY_MS)}`.execute(
      t.database.db,
    );
    expect(kept.rows[0]?.n).toBe(1);
  });

  it('the health job records runs on its interval and stops cleanly', async () => {
    const before = await sql<{ n: number }>`select count(*)::int8 as n from health_checks`.execute(t.database.db);
    const job = createHealthJob(service, t.config.health, silentLogger, t.metrics);
    job.start();
    // runAtStart plus at least one interval (1 s): poll, bounded.
    let after = before.rows[0]?.n ?? 0;
    for (let i = 0; i < 60 && after < (before.rows[0]?.n ?? 0) + 10; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const rows = await sql<{ n: number }>`select count(*)::int8 as n from health_checks`.execute(t.database.db);
      after = rows.rows[0]?.n ?? 0;
    }
    await job.stop();
    expect(after).toBeGreaterThanOrEqual((before.rows[0]?.n ?? 0) + 10);
    const stopped = await sql<{ n: number }>`select count(*)::int8 as n from health_checks`.execute(t.database.db);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const later = await sql<{ n: number }>`select count(*)::int8 as n from health_checks`.execute(t.database.db);
    expect(later.rows[0]?.n).toBe(stopped.rows[0]?.n);
  });
});
