/**
 * Readiness: each component (database, migrations, disk, event loop, memory) is checked
 * and reported with its status, latency and detail. The same checks feed `/health/ready`,
 * the self-health history and the health gauges.
 */
import fs from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import v8 from 'node:v8';
import { sql } from 'kysely';
import type { HealthConfig } from '../../config/index.js';
import type { Database } from '../../db/engine.js';
import type { JsonValue } from '../../db/schema.js';
import { ValidationError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import type { ComponentSummary, HealthCheckRow, HealthRepository } from './repository.js';

export const COMPONENTS = ['database', 'migrations', 'disk', 'event_loop', 'memory'] as const;
export type Component = (typeof COMPONENTS)[number];

export interface ComponentResult {
  readonly status: 'pass' | 'fail';
  readonly latencyMs: number;
  readonly detail: { [key: string]: JsonValue };
}

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checkedAt: Date;
  readonly failing: Component[];
  readonly components: Partial<Record<Component, ComponentResult>>;
}

export interface HealthHistory {
  readonly hours: number;
  readonly since: Date;
  readonly summary: ComponentSummary[];
  readonly checks: HealthCheckRow[];
}

/** Pending-migration count; a function so the service does not depend on the migrator. */
export type PendingMigrations = () => Promise<{ pending: string[]; checksumMismatches: string[] }>;

/** A database round trip slower than this counts as a failure. */
const DATABASE_CHECK_TIMEOUT_MS = 3000;
const HISTORY_ROW_LIMIT = 10_000;

function timeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class HealthService {
  private readonly loopDelay: IntervalHistogram;

  constructor(
    private readonly database: Database,
    private readonly repository: HealthRepository,
    private readonly pendingMigrations: PendingMigrations,
    private readonly config: HealthConfig,
    private readonly metrics: Metrics,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.loopDelay = monitorEventLoopDelay({ resolution: 20 });
    this.loopDelay.enable();
  }

  /** Stops measuring the event loop; call on shutdown. */
  dispose(): void {
    this.loopDelay.disable();
  }

  /** Runs the readiness checks (all, or the named ones) and updates the health gauges. */
  async checkReadiness(only: readonly Component[] = COMPONENTS): Promise<ReadinessReport> {
    const entries = await Promise.all(
      only.map(async (component) => [component, await this.measure(component)] as const),
    );
    const components: Partial<Record<Component, ComponentResult>> = {};
    const failing: Component[] = [];
    for (const [component, result] of entries) {
      components[component] = result;
      if (result.status === 'fail') {
        failing.push(component);
      }
      this.metrics.healthStatus.set({ component }, result.status === 'pass' ? 1 : 0);
      this.metrics.healthLatency.set({ component }, result.latencyMs / 1000);
    }
    return { ready: failing.length === 0, checkedAt: this.now(), failing, components };
  }

  /** Runs the checks and stores one history row per component. */
  async recordChecks(only: readonly Component[] = COMPONENTS): Promise<ReadinessReport> {
    const report = await this.checkReadiness(only);
    await this.repository.insertChecks(
      Object.entries(report.components).map(([component, result]) => ({
        ts: report.checkedAt,
        component,
        status: result.status,
        latencyMs: result.latencyMs,
        detail: result.detail,
      })),
    );
    return report;
  }

  /** History of the last `hours` with a per-component summary. */
  async history(hours: number): Promise<HealthHistory> {
    if (!Number.isFinite(hours) || hours <= 0 || hours > 24 * 366) {
      throw new ValidationError('hours', `hours must be a number between 0 and 8784, got ${hours}`);
    }
    const since = new Date(this.now().getTime() - hours * 3_600_000);
    const [summary, checks] = await Promise.all([
      this.repository.summarySince(since),
      this.repository.listSince(since, HISTORY_ROW_LIMIT),
    ]);
    return { hours, since, summary, checks };
  }

  /** Removes history older than the retention; returns rows removed. */
  async enforceRetention(): Promise<number> {
    const cutoff = new Date(this.now().getTime() - this.config.retentionDays * 86_400_000);
    return this.repository.deleteOlderThan(cutoff);
  }

  private async measure(component: Component): Promise<ComponentResult> {
    const started = performance.now();
    try {
      const { ok, detail } = await this.run(component);
      return { status: ok ? 'pass' : 'fail', latencyMs: elapsed(started), detail };
    } catch (error) {
      return { status: 'fail', latencyMs: elapsed(started), detail: { error: messageOf(error) } };
    }
  }

  private async run(component: Component): Promise<{ ok: boolean; detail: { [key: string]: JsonValue } }> {
    switch (component) {
      case 'database': {
        const started = performance.now();
        await timeout(sql`select 1`.execute(this.database.db), DATABASE_CHECK_TIMEOUT_MS, 'The database');
        return { ok: true, detail: { engine: this.database.engine, round_trip_ms: elapsed(started) } };
      }
      case 'migrations': {
        const state = await timeout(this.pendingMigrations(), DATABASE_CHECK_TIMEOUT_MS, 'The database');
        const ok = state.pending.length === 0 && state.checksumMismatches.length === 0;
        return { ok, detail: { pending: state.pending, checksum_mismatches: state.checksumMismatches } };
      }
      case 'disk': {
        const dir = this.database.dataDir;
        if (dir === undefined) {
          return { ok: true, detail: { note: 'no local data directory (PostgreSQL server or in-memory engine)' } };
        }
        const stats = fs.statfsSync(dir);
        const freeMb = Math.round((stats.bavail * stats.bsize) / 1_048_576);
        const totalMb = Math.round((stats.blocks * stats.bsize) / 1_048_576);
        return {
          ok: freeMb >= this.config.minFreeDiskMb,
          detail: { path: dir, free_mb: freeMb, total_mb: totalMb, min_free_mb: this.config.minFreeDiskMb },
        };
      }
      case 'event_loop': {
        const p99Ms = this.loopDelay.percentile(99) / 1e6;
        const maxMs = this.loopDelay.max / 1e6;
        this.loopDelay.reset();
        return {
          ok: p99Ms <= this.config.maxEventLoopDelayMs,
          detail: { p99_ms: round(p99Ms), max_ms: round(maxMs), limit_ms: this.config.maxEventLoopDelayMs },
        };
      }
      case 'memory': {
        const heap = v8.getHeapStatistics();
        const heapPct = (heap.used_heap_size / heap.heap_size_limit) * 100;
        return {
          ok: heapPct <= this.config.maxHeapPct,
          detail: {
            rss_mb: Math.round(process.memoryUsage.rss() / 1_048_576),
            heap_used_mb: Math.round(heap.used_heap_size / 1_048_576),
            heap_limit_mb: Math.round(heap.heap_size_limit / 1_048_576),
            heap_used_pct: round(heapPct),
            limit_pct: this.config.maxHeapPct,
          },
        };
      }
    }
  }
}

function elapsed(started: number): number {
  return round(performance.now() - started);
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
