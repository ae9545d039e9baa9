/**
 * Jobs that must run once across all Warden instances sharing a database (rollups,
 * retention). A run claims a lease row in `singleton_job_runs` with one conditional
 * update: only one instance's update matches, the others skip the run. The lease expires
 * by itself, so a claimer that dies does not block the job for longer than the lease.
 * Works the same on PGlite (one instance) and PostgreSQL (several), and holds no
 * connection or lock while the job runs.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { sql, type Kysely } from 'kysely';
import type { DB, JsonValue } from '../db/schema.js';

/** Identifies this process in `claimed_by`. */
export const INSTANCE_ID = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

export interface SingletonOptions {
  /** How long the claim holds if never released. */
  readonly leaseMs: number;
  /** A run is claimed only if the last one started at least this long ago (0: any time the lease is free). */
  readonly minIntervalMs: number;
}

export class SingletonJobs {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly instanceId = INSTANCE_ID,
  ) {}

  /** Claims `name`; true when this instance may run it now. */
  async claim(name: string, options: SingletonOptions): Promise<boolean> {
    await sql`insert into singleton_job_runs (name) values (${name}) on conflict (name) do nothing`.execute(this.db);
    const claimed = await sql<{ name: string }>`
      update singleton_job_runs
      set claimed_by = ${this.instanceId},
          lease_until = now() + ${options.leaseMs} * interval '1 millisecond',
          last_started_at = now()
      where name = ${name}
        and (lease_until is null or lease_until < now())
        and (last_started_at is null or last_started_at <= now() - ${options.minIntervalMs} * interval '1 millisecond')
      returning name
    `.execute(this.db);
    return claimed.rows.length === 1;
  }

  /** Ends this instance's claim and records the outcome. */
  async release(name: string, outcome: { result?: JsonValue; error?: string }): Promise<void> {
    await sql`
      update singleton_job_runs
      set lease_until = null,
          last_finished_at = now(),
          last_result = ${outcome.result === undefined ? null : JSON.stringify(outcome.result)}::jsonb,
          last_error = ${outcome.error ?? null}
      where name = ${name} and claimed_by = ${this.instanceId}
    `.execute(this.db);
  }

  /**
   * Runs `work` if the claim succeeds; returns its result, or undefined when another
   * instance holds the job or it ran too recently.
   */
  async runExclusive<T extends JsonValue>(
    name: string,
    options: SingletonOptions,
    work: () => Promise<T>,
  ): Promise<T | undefined> {
    if (!(await this.claim(name, options))) {
      return undefined;
    }
    try {
      const result = await work();
      await this.release(name, { result });
      return result;
    } catch (error) {
      await this.release(name, { error: error instanceof Error ? error.message : String(error) }).catch(() => {});
      throw error;
    }
  }
}
