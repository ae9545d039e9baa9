import { sql } from 'kysely';

/**
 * Host metrics: hosts, their metric series, raw samples, 1-minute and 1-hour rollups with
 * the rollup job's watermark, Prometheus scrape targets with their scrape history, and the
 * claim table that lets a daily job run once across instances.
 *
 * metric_samples is partitioned by UTC day (`metric_samples_pYYYYMMDD`, created ahead by the
 * partition job; see domain/metrics/partitions.ts) so retention drops whole days instead
 * of deleting rows; samples outside every day partition (old imports) land in
 * metric_samples_default. It has no foreign key to metric_series on purpose: the check would cost a
 * lookup per row on the hottest write path, series are never hard-deleted (hosts are soft
 * deleted), and retention removes samples by time. Its primary key (series_id, ts) serves
 * every read (one series over a range) and makes re-sent samples (agent retries, repeated
 * imports) no-ops through ON CONFLICT DO NOTHING. The BRIN index on ts serves retention and
 * the rollup job's range scans at almost no write cost, since samples arrive in time order.
 *
 * Rollups keep count, sum, min, max and m2 (the sum of squared deviations from the
 * bucket's mean), which combine exactly across buckets (Chan et al.) into the variance of
 * the whole range without the cancellation a sum of squares suffers on large values.
 */
export const up = sql`
  create table hosts (
    id bigint generated always as identity primary key,
    name text not null,
    labels jsonb not null default '{}',
    interval_s integer check (interval_s between 1 and 86400),
    first_seen_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    deleted_at timestamptz
  );
  create unique index hosts_name_key on hosts (name);

  create table metric_series (
    id bigint generated always as identity primary key,
    host_id bigint not null references hosts (id) on delete cascade,
    name text not null,
    labels jsonb not null default '{}',
    unit text,
    created_at timestamptz not null default now()
  );
  create unique index metric_series_key on metric_series (host_id, name, labels);
  create index metric_series_name_idx on metric_series (name);

  create table metric_samples (
    series_id bigint not null,
    ts timestamptz not null,
    value double precision not null,
    primary key (series_id, ts)
  ) partition by range (ts);
  create index metric_samples_ts_brin on metric_samples using brin (ts);
  create table metric_samples_default partition of metric_samples default;

  create table metric_rollups_1m (
    series_id bigint not null,
    bucket timestamptz not null,
    count integer not null,
    sum double precision not null,
    min double precision not null,
    max double precision not null,
    m2 double precision not null,
    primary key (series_id, bucket)
  );
  create index metric_rollups_1m_bucket_brin on metric_rollups_1m using brin (bucket);

  create table metric_rollups_1h (
    series_id bigint not null,
    bucket timestamptz not null,
    count integer not null,
    sum double precision not null,
    min double precision not null,
    max double precision not null,
    m2 double precision not null,
    primary key (series_id, bucket)
  );
  create index metric_rollups_1h_bucket_brin on metric_rollups_1h using brin (bucket);

  create table metric_rollup_state (
    id boolean primary key default true check (id),
    watermark timestamptz,
    rewind_to timestamptz,
    last_run_at timestamptz,
    last_duration_ms double precision,
    last_buckets integer
  );
  insert into metric_rollup_state (id) values (true);

  create table singleton_job_runs (
    name text primary key,
    claimed_by text,
    lease_until timestamptz,
    last_started_at timestamptz,
    last_finished_at timestamptz,
    last_result jsonb,
    last_error text
  );

  create table scrape_targets (
    id bigint generated always as identity primary key,
    name text not null,
    url text not null,
    host_name text not null,
    interval_s integer not null default 30 check (interval_s between 5 and 86400),
    timeout_ms integer not null default 5000 check (timeout_ms between 100 and 60000),
    include_patterns text[] not null default '{}',
    exclude_patterns text[] not null default '{}',
    enabled boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deleted_at timestamptz,
    next_scrape_at timestamptz not null default now(),
    last_scrape_at timestamptz,
    last_status text check (last_status in ('ok', 'failed')),
    last_error text,
    last_notes text,
    last_duration_ms double precision,
    last_samples integer,
    consecutive_failures integer not null default 0
  );
  create unique index scrape_targets_name_key on scrape_targets (lower(name)) where deleted_at is null;
  create index scrape_targets_due_idx on scrape_targets (next_scrape_at) where enabled and deleted_at is null;

  create table scrape_runs (
    id bigint generated always as identity primary key,
    target_id bigint not null references scrape_targets (id) on delete cascade,
    ts timestamptz not null default now(),
    status text not null check (status in ('ok', 'failed')),
    duration_ms double precision not null,
    samples integer not null default 0,
    error text,
    notes text
  );
  create index scrape_runs_target_ts_idx on scrape_runs (target_id, ts desc);
  create index scrape_runs_ts_idx on scrape_runs (ts);
`;

export const down = sql`
  drop table scrape_runs;
  drop table scrape_targets;
  drop table singleton_job_runs;
  drop table metric_rollup_state;
  drop table metric_rollups_1h;
  drop table metric_rollups_1m;
  drop table metric_samples;
  drop table metric_series;
  drop table hosts;
`;
