/**
 * Kysely table types for Warden's database. Each area adds its tables here; the
 * migrations in `migrations/` are the source of truth and `schema.sql` is the
 * reviewed snapshot of the result.
 *
 * Type mapping (the same on both engines, see `types.ts`): int8 and numeric are
 * returned as JS numbers (safe below 2^53, which ids and byte counts stay under),
 * timestamptz as Date, json/jsonb as parsed values.
 */
import type { ColumnType, Generated } from 'kysely';

/** A JSON value as stored in a jsonb column. */
export type Json = ColumnType<JsonValue, JsonValue, JsonValue>;
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Timestamps written by the database default and readable as Date. */
export type CreatedAt = ColumnType<Date, Date | string | undefined, never>;

export interface WardenMigrationsTable {
  name: string;
  checksum: string;
  applied_at: ColumnType<Date, Date | undefined, never>;
  duration_ms: number;
}

/** Outcome of one readiness check. */
export type HealthStatus = 'pass' | 'fail';

export interface HealthChecksTable {
  id: Generated<number>;
  /** Defaults to now() when omitted. */
  ts: ColumnType<Date, Date | undefined, Date>;
  component: string;
  status: HealthStatus;
  latency_ms: number | null;
  detail: Json | null;
}

export interface DB {
  warden_migrations: WardenMigrationsTable;
  health_checks: HealthChecksTable;
}
