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

export type Role = 'viewer' | 'operator' | 'admin';
export type Scope = 'read' | 'write' | 'ingest' | 'admin';
export type ActorType = 'user' | 'api_key' | 'system' | 'anonymous';

export interface UsersTable {
  id: Generated<number>;
  email: string;
  password_hash: string;
  role: Role;
  disabled_at: Date | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  last_login_at: Date | null;
}

export interface SessionsTable {
  id: Generated<number>;
  token_hash: string;
  user_id: number;
  created_at: CreatedAt;
  last_seen_at: ColumnType<Date, Date | undefined, Date>;
  expires_at: Date;
  ip: string | null;
  user_agent: string | null;
}

export interface ApiKeysTable {
  id: Generated<number>;
  user_id: number;
  name: string;
  prefix: string;
  key_hash: string;
  scopes: Scope[];
  created_at: CreatedAt;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

export interface ApiKeyUsageTable {
  api_key_id: number;
  bucket: Date;
  route: string;
  status_class: string;
  requests: number;
  total_duration_ms: number;
  max_duration_ms: number;
}

export interface AuditLogTable {
  id: Generated<number>;
  ts: ColumnType<Date, Date | undefined, never>;
  actor_type: ActorType;
  actor_id: number | null;
  actor_label: string;
  action: string;
  entity_type: string;
  entity_id: string | null;
  before: Json | null;
  after: Json | null;
  ip: string | null;
}

export interface HostsTable {
  id: Generated<number>;
  name: string;
  labels: ColumnType<Record<string, string>, string | undefined, string>;
  /** Reporting interval declared by the sender; a host is stale after 3 intervals without data. */
  interval_s: number | null;
  first_seen_at: ColumnType<Date, Date | undefined, Date>;
  last_seen_at: ColumnType<Date, Date | undefined, Date>;
  deleted_at: Date | null;
}

export interface MetricSeriesTable {
  id: Generated<number>;
  host_id: number;
  name: string;
  labels: ColumnType<Record<string, string>, string | undefined, string>;
  unit: string | null;
  created_at: CreatedAt;
}

export interface MetricSamplesTable {
  series_id: number;
  ts: Date;
  value: number;
}

/** One rollup bucket; `m2` is the sum of squared deviations from the bucket's mean. */
export interface MetricRollupsTable {
  series_id: number;
  bucket: Date;
  count: number;
  sum: number;
  min: number;
  max: number;
  m2: number;
}

export interface MetricRollupStateTable {
  id: boolean;
  /** 1-minute buckets before this were rolled up. */
  watermark: Date | null;
  /** Samples older than the grace window landed at or after this; the next run starts here. */
  rewind_to: Date | null;
  last_run_at: Date | null;
  last_duration_ms: number | null;
  last_buckets: number | null;
}

export interface SingletonJobRunsTable {
  name: string;
  claimed_by: string | null;
  /** While in the future, the claimer is running the job; other instances skip it. */
  lease_until: Date | null;
  last_started_at: Date | null;
  last_finished_at: Date | null;
  last_result: Json | null;
  last_error: string | null;
}

export type ScrapeStatus = 'ok' | 'failed';

export interface ScrapeTargetsTable {
  id: Generated<number>;
  name: string;
  url: string;
  host_name: string;
  interval_s: ColumnType<number, number | undefined, number>;
  timeout_ms: ColumnType<number, number | undefined, number>;
  include_patterns: ColumnType<string[], string[] | undefined, string[]>;
  exclude_patterns: ColumnType<string[], string[] | undefined, string[]>;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  deleted_at: Date | null;
  next_scrape_at: ColumnType<Date, Date | undefined, Date>;
  last_scrape_at: Date | null;
  last_status: ScrapeStatus | null;
  /** Why the last scrape failed; null after a successful one. */
  last_error: string | null;
  /** What the last successful scrape left out (samples over the cap, NaN values); null after a failed one. */
  last_notes: string | null;
  last_duration_ms: number | null;
  last_samples: number | null;
  consecutive_failures: ColumnType<number, number | undefined, number>;
}

export interface ScrapeRunsTable {
  id: Generated<number>;
  target_id: number;
  ts: ColumnType<Date, Date | undefined, never>;
  status: ScrapeStatus;
  duration_ms: number;
  samples: number;
  /** Why the scrape failed (status failed only). */
  error: string | null;
  /** What a successful scrape left out (status ok only). */
  notes: string | null;
}

export interface DB {
  warden_migrations: WardenMigrationsTable;
  health_checks: HealthChecksTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  api_key_usage: ApiKeyUsageTable;
  audit_log: AuditLogTable;
  hosts: HostsTable;
  metric_series: MetricSeriesTable;
  metric_samples: MetricSamplesTable;
  metric_rollups_1m: MetricRollupsTable;
  metric_rollups_1h: MetricRollupsTable;
  metric_rollup_state: MetricRollupStateTable;
  singleton_job_runs: SingletonJobRunsTable;
  scrape_targets: ScrapeTargetsTable;
  scrape_runs: ScrapeRunsTable;
}
