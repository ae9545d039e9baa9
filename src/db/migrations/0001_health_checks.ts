import { sql } from 'kysely';

/** Self-health history: one row per readiness component per run of the health job. */
export const up = sql`
  create table health_checks (
    id bigint generated always as identity primary key,
    ts timestamptz not null default now(),
    component text not null,
    status text not null check (status in ('pass', 'fail')),
    latency_ms double precision,
    detail jsonb
  );
  create index health_checks_ts_idx on health_checks (ts);
  create index health_checks_component_ts_idx on health_checks (component, ts);
`;

export const down = sql`
  drop table health_checks;
`;
