import { sql } from 'kysely';

/**
 * People and access: users, login sessions, API keys with aggregated usage, and the
 * append-only audit log. Tokens and keys are stored only as SHA-256 hashes.
 */
export const up = sql`
  create table users (
    id bigint generated always as identity primary key,
    email text not null,
    password_hash text not null,
    role text not null check (role in ('viewer', 'operator', 'admin')),
    disabled_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    last_login_at timestamptz
  );
  create unique index users_email_key on users (lower(email));

  create table sessions (
    id bigint generated always as identity primary key,
    token_hash text not null unique,
    user_id bigint not null references users (id) on delete cascade,
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    expires_at timestamptz not null,
    ip text,
    user_agent text
  );
  create index sessions_user_id_idx on sessions (user_id);
  create index sessions_expires_at_idx on sessions (expires_at);

  create table api_keys (
    id bigint generated always as identity primary key,
    user_id bigint not null references users (id) on delete cascade,
    name text not null,
    prefix text not null unique,
    key_hash text not null,
    scopes text[] not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz
  );
  create index api_keys_user_id_idx on api_keys (user_id);

  create table api_key_usage (
    api_key_id bigint not null references api_keys (id) on delete cascade,
    bucket timestamptz not null,
    route text not null,
    status_class text not null,
    requests bigint not null,
    total_duration_ms double precision not null,
    max_duration_ms double precision not null,
    primary key (api_key_id, bucket, route, status_class)
  );
  create index api_key_usage_bucket_idx on api_key_usage (bucket);

  create table audit_log (
    id bigint generated always as identity primary key,
    ts timestamptz not null default now(),
    actor_type text not null check (actor_type in ('user', 'api_key', 'system', 'anonymous')),
    actor_id bigint,
    actor_label text not null,
    action text not null,
    entity_type text not null,
    entity_id text,
    before jsonb,
    after jsonb,
    ip text
  );
  create index audit_log_ts_idx on audit_log (ts desc, id desc);
  create index audit_log_entity_idx on audit_log (entity_type, entity_id, ts desc);
  create index audit_log_actor_idx on audit_log (actor_type, actor_id, ts desc);
`;

export const down = sql`
  drop table audit_log;
  drop table api_key_usage;
  drop table api_keys;
  drop table sessions;
  drop table users;
`;
