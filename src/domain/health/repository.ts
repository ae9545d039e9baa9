/** All SQL of the self-health history (`health_checks`). */
import { sql, type Kysely } from 'kysely';
import type { DB, HealthStatus, JsonValue } from '../../db/schema.js';

export interface HealthCheckRow {
  readonly ts: Date;
  readonly component: string;
  readonly status: HealthStatus;
  readonly latencyMs: number | null;
  readonly detail: JsonValue | null;
}

export interface ComponentSummary {
  readonly component: string;
  readonly checks: number;
  readonly failures: number;
  readonly availabilityPct: number;
  readonly p95LatencyMs: number | null;
  readonly lastStatus: HealthStatus;
  readonly lastCheckedAt: Date;
}

export class HealthRepository {
  constructor(private readonly db: Kysely<DB>) {}

  /** Inserts a run's rows in one statement. */
  async insertChecks(rows: readonly HealthCheckRow[]): Promise<void> {
    if (rows.length === 0) {
      return;
    }
    await sql`
      insert into health_checks (ts, component, status, latency_ms, detail)
      select * from unnest(
        ${rows.map((r) => r.ts.toISOString())}::timestamptz[],
        ${rows.map((r) => r.component)}::text[],
        ${rows.map((r) => r.status)}::text[],
        ${rows.map((r) => r.latencyMs)}::float8[],
        ${rows.map((r) => (r.detail === null ? null : JSON.stringify(r.detail)))}::jsonb[]
      )
    `.execute(this.db);
  }

  async listSince(since: Date, limit: number): Promise<HealthCheckRow[]> {
    const rows = await this.db
      .selectFrom('health_checks')
      .select(['ts', 'component', 'status', 'latency_ms', 'detail'])
      .where('ts', '>=', since)
      .orderBy('ts', 'desc')
      .orderBy('component')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      ts: r.ts,
      component: r.component,
      status: r.status,
      latencyMs: r.latency_ms,
      detail: r.detail,
    }));
  }

  async summarySince(since: Date): Promise<ComponentSummary[]> {
    const result = await sql<{
      component: string;
      checks: number;
      failures: number;
      p95: number | null;
      last_status: HealthStatus;
      last_ts: Date;
    }>`
      select component,
             count(*)::int8 as checks,
             count(*) filter (where status = 'fail')::int8 as failures,
             percentile_cont(0.95) within group (order by latency_ms) as p95,
             (array_agg(status order by ts desc))[1] as last_status,
             max(ts) as last_ts
      from health_checks
      where ts >= ${since}
      group by component
      order by component
    `.execute(this.db);
    return result.rows.map((r) => ({
      component: r.component,
      checks: r.checks,
      failures: r.failures,
      availabilityPct: r.checks === 0 ? 100 : Math.round(((r.checks - r.failures) / r.checks) * 100_000) / 1000,
      p95LatencyMs: r.p95 === null ? null : Math.round(r.p95 * 1000) / 1000,
      lastStatus: r.last_status,
      lastCheckedAt: r.last_ts,
    }));
  }

  /** Removes rows older than `cutoff`; returns how many. */
  async deleteOlderThan(cutoff: Date): Promise<number> {
    const result = await this.db.deleteFrom('health_checks').where('ts', '<', cutoff).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
