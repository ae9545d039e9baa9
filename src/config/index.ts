/**
 * Warden's configuration: one typed, validated, frozen object built from the
 * environment. This is the only module that reads `process.env`; everything else
 * receives a {@link Config}.
 */
import os from 'node:os';
import path from 'node:path';
import {
  ConfigError,
  type EnvReader,
  readBoolean,
  readDuration,
  readEnum,
  readInteger,
  readSecret,
  readString,
  readUrl,
} from './parse.js';

export { ConfigError } from './parse.js';

export type LogFormat = 'json' | 'pretty' | 'auto';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Settings of the PostgreSQL connection pool (only used when DATABASE_URL is set). */
export interface PoolConfig {
  /** Maximum connections in the pool (WARDEN_DB_POOL_MAX, default 10). */
  readonly max: number;
  /** How long to wait for a new connection, ms (WARDEN_DB_CONNECTION_TIMEOUT_MS, default 5000). */
  readonly connectionTimeoutMs: number;
  /** Idle connections are closed after this many ms (WARDEN_DB_IDLE_TIMEOUT_MS, default 30000). */
  readonly idleTimeoutMs: number;
  /** A connection is retired after this many seconds (WARDEN_DB_MAX_LIFETIME_S, default 300). */
  readonly maxLifetimeS: number;
  /** Server-side statement_timeout, ms (WARDEN_DB_STATEMENT_TIMEOUT_MS, default 60000). */
  readonly statementTimeoutMs: number;
  /** Server-side lock_timeout, ms (WARDEN_DB_LOCK_TIMEOUT_MS, default 10000). */
  readonly lockTimeoutMs: number;
  /** idle_in_transaction_session_timeout, ms (WARDEN_DB_IDLE_IN_TX_TIMEOUT_MS, default 60000). */
  readonly idleInTransactionTimeoutMs: number;
  /** application_name reported to the server (WARDEN_DB_APPLICATION_NAME, default "warden"). */
  readonly applicationName: string;
}

export interface DatabaseConfig {
  /** `pglite` (embedded, the default) or `postgresql` (DATABASE_URL is set). */
  readonly engine: 'pglite' | 'postgresql';
  /** Data directory of the embedded database (WARDEN_DATA_DIR, default ./warden-data). */
  readonly dataDir: string;
  /** PostgreSQL connection string (DATABASE_URL); never logged with its password. */
  readonly url: string | undefined;
  /** Reserved for a read replica (DATABASE_READ_URL); accepted and validated, not used yet. */
  readonly readUrl: string | undefined;
  /** How long start-up keeps retrying an unreachable PostgreSQL, ms (WARDEN_DB_CONNECT_TIMEOUT, default 30s). */
  readonly connectTimeoutMs: number;
  /** Queries slower than this are logged, ms (WARDEN_SLOW_QUERY_MS, default 1000). */
  readonly slowQueryMs: number;
  /** Migrate on start (WARDEN_AUTO_MIGRATE, default true); when false, start refuses while migrations are pending. */
  readonly autoMigrate: boolean;
  readonly pool: PoolConfig;
}

export interface HttpConfig {
  /** Listen address (WARDEN_HOST, default 127.0.0.1). */
  readonly host: string;
  /** Listen port (WARDEN_PORT, default 8080; 0 picks a free port). */
  readonly port: number;
  /** Largest accepted request body in bytes (WARDEN_BODY_LIMIT_BYTES, default 4 MiB). */
  readonly bodyLimitBytes: number;
  /** How long shutdown waits for requests in flight, ms (WARDEN_SHUTDOWN_TIMEOUT, default 10s). */
  readonly shutdownTimeoutMs: number;
}

export interface HealthConfig {
  /** Interval of the self-health job, ms (WARDEN_HEALTH_INTERVAL, default 60s). */
  readonly intervalMs: number;
  /** health_checks rows older than this are removed (WARDEN_HEALTH_RETENTION_DAYS, default 30). */
  readonly retentionDays: number;
  /** Readiness fails when the data directory's file system has less free space, MiB (WARDEN_MIN_FREE_DISK_MB, default 256). */
  readonly minFreeDiskMb: number;
  /** Readiness fails when the event-loop delay p99 exceeds this, ms (WARDEN_MAX_EVENT_LOOP_DELAY_MS, default 1000). */
  readonly maxEventLoopDelayMs: number;
  /** Readiness fails when the V8 heap is fuller than this percent of its limit (WARDEN_MAX_HEAP_PCT, default 90). */
  readonly maxHeapPct: number;
}

export interface AuthConfig {
  /** E-mail of the first admin created on an empty database (WARDEN_ADMIN_EMAIL, default admin@localhost). */
  readonly adminEmail: string;
  /** Password of the first admin (WARDEN_ADMIN_PASSWORD); when unset one is generated and printed once. */
  readonly adminPassword: string | undefined;
  /** Mark the session cookie Secure (WARDEN_COOKIE_SECURE, default false; always Secure over TLS). */
  readonly cookieSecure: boolean;
  /** Session lifetime, sliding (WARDEN_SESSION_TTL, default 7 days). */
  readonly sessionTtlMs: number;
  /** Serve /metrics without credentials to loopback clients (WARDEN_METRICS_PUBLIC, default false). */
  readonly metricsPublic: boolean;
  /** Requests per minute allowed for one API key (WARDEN_RATE_LIMIT_PER_KEY, default 1200). */
  readonly rateLimitPerKeyPerMin: number;
  /** Requests per minute allowed from one IP address (WARDEN_RATE_LIMIT_PER_IP, default 2400). */
  readonly rateLimitPerIpPerMin: number;
}

export interface MetricsConfig {
  /** Record Warden's own host every collect interval (WARDEN_SELF_COLLECT, default true). */
  readonly selfCollect: boolean;
  /** Interval of the self collector (and the agent's default), ms (WARDEN_COLLECT_INTERVAL, default 10s). */
  readonly collectIntervalMs: number;
  /** Name Warden's own host is recorded under (WARDEN_HOST_NAME, default the OS host name). */
  readonly hostName: string;
  /** Raw samples are kept this many days (WARDEN_RETENTION_RAW_DAYS, default 30). */
  readonly retentionRawDays: number;
  /** 1-minute rollups are kept this many days (WARDEN_RETENTION_1M_DAYS, default 90). */
  readonly retention1mDays: number;
  /** 1-hour rollups are kept this many days (WARDEN_RETENTION_1H_DAYS, default 730). */
  readonly retention1hDays: number;
  /** Interval of the rollup job, ms (WARDEN_ROLLUP_INTERVAL, default 60s). */
  readonly rollupIntervalMs: number;
  /**
   * Every rollup run recomputes the buckets of this window before its watermark, so samples
   * arriving this late are folded in without any bookkeeping (WARDEN_ROLLUP_GRACE, default 5m).
   * Older late samples rewind the watermark instead.
   */
  readonly rollupGraceMs: number;
  /** How often the scraper looks for due Prometheus targets, ms (WARDEN_SCRAPE_POLL_INTERVAL, default 2s). */
  readonly scrapePollIntervalMs: number;
}

export interface LogConfig {
  /** WARDEN_LOG_LEVEL, default info. */
  readonly level: LogLevel;
  /** WARDEN_LOG_FORMAT: json, pretty, or auto (pretty on a terminal), default auto. */
  readonly format: LogFormat;
}

export interface Config {
  readonly http: HttpConfig;
  readonly database: DatabaseConfig;
  readonly health: HealthConfig;
  readonly auth: AuthConfig;
  readonly metrics: MetricsConfig;
  readonly log: LogConfig;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOG_FORMATS = ['json', 'pretty', 'auto'] as const;

/**
 * Builds the configuration from an environment (defaults to `process.env`).
 * Every problem is collected; a {@link ConfigError} lists all of them at once.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const r: EnvReader = { env, problems: [] };

  const url = readUrl(r, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  const readUrlValue = readUrl(r, 'DATABASE_READ_URL', ['postgres:', 'postgresql:']);

  const config: Config = {
    http: {
      host: readString(r, 'WARDEN_HOST', '127.0.0.1'),
      port: readInteger(r, 'WARDEN_PORT', 8080, 0, 65535, 'an integer 1-65535'),
      bodyLimitBytes: readInteger(r, 'WARDEN_BODY_LIMIT_BYTES', 4 * 1024 * 1024, 1024, 256 * 1024 * 1024),
      shutdownTimeoutMs: readDuration(r, 'WARDEN_SHUTDOWN_TIMEOUT', 10_000, 0, 600_000),
    },
    database: {
      engine: url === undefined ? 'pglite' : 'postgresql',
      dataDir: path.resolve(cwd, readString(r, 'WARDEN_DATA_DIR', './warden-data')),
      url,
      readUrl: readUrlValue,
      connectTimeoutMs: readDuration(r, 'WARDEN_DB_CONNECT_TIMEOUT', 30_000, 0, 3_600_000),
      slowQueryMs: readInteger(r, 'WARDEN_SLOW_QUERY_MS', 1000, 0, 3_600_000),
      autoMigrate: readBoolean(r, 'WARDEN_AUTO_MIGRATE', true),
      pool: {
        max: readInteger(r, 'WARDEN_DB_POOL_MAX', 10, 1, 1000),
        connectionTimeoutMs: readInteger(r, 'WARDEN_DB_CONNECTION_TIMEOUT_MS', 5000, 1, 600_000),
        idleTimeoutMs: readInteger(r, 'WARDEN_DB_IDLE_TIMEOUT_MS', 30_000, 0, 86_400_000),
        maxLifetimeS: readInteger(r, 'WARDEN_DB_MAX_LIFETIME_S', 300, 0, 86_400),
        statementTimeoutMs: readInteger(r, 'WARDEN_DB_STATEMENT_TIMEOUT_MS', 60_000, 0, 86_400_000),
        lockTimeoutMs: readInteger(r, 'WARDEN_DB_LOCK_TIMEOUT_MS', 10_000, 0, 86_400_000),
        idleInTransactionTimeoutMs: readInteger(r, 'WARDEN_DB_IDLE_IN_TX_TIMEOUT_MS', 60_000, 0, 86_400_000),
        applicationName: readString(r, 'WARDEN_DB_APPLICATION_NAME', 'warden'),
      },
    },
    health: {
      intervalMs: readDuration(r, 'WARDEN_HEALTH_INTERVAL', 60_000, 1000, 86_400_000),
      retentionDays: readInteger(r, 'WARDEN_HEALTH_RETENTION_DAYS', 30, 1, 3650),
      minFreeDiskMb: readInteger(r, 'WARDEN_MIN_FREE_DISK_MB', 256, 0, 10_000_000),
      maxEventLoopDelayMs: readInteger(r, 'WARDEN_MAX_EVENT_LOOP_DELAY_MS', 1000, 1, 600_000),
      maxHeapPct: readInteger(r, 'WARDEN_MAX_HEAP_PCT', 90, 1, 100),
    },
    auth: {
      adminEmail: readString(r, 'WARDEN_ADMIN_EMAIL', 'admin@localhost'),
      adminPassword: readSecret(r, 'WARDEN_ADMIN_PASSWORD', 12),
      cookieSecure: readBoolean(r, 'WARDEN_COOKIE_SECURE', false),
      sessionTtlMs: readDuration(r, 'WARDEN_SESSION_TTL', 7 * 86_400_000, 60_000, 366 * 86_400_000),
      metricsPublic: readBoolean(r, 'WARDEN_METRICS_PUBLIC', false),
      rateLimitPerKeyPerMin: readInteger(r, 'WARDEN_RATE_LIMIT_PER_KEY', 1200, 1, 10_000_000),
      rateLimitPerIpPerMin: readInteger(r, 'WARDEN_RATE_LIMIT_PER_IP', 2400, 1, 10_000_000),
    },
    metrics: {
      selfCollect: readBoolean(r, 'WARDEN_SELF_COLLECT', true),
      collectIntervalMs: readDuration(r, 'WARDEN_COLLECT_INTERVAL', 10_000, 1000, 3_600_000),
      hostName: readString(r, 'WARDEN_HOST_NAME', os.hostname()),
      retentionRawDays: readInteger(r, 'WARDEN_RETENTION_RAW_DAYS', 30, 1, 3650),
      retention1mDays: readInteger(r, 'WARDEN_RETENTION_1M_DAYS', 90, 1, 3650),
      retention1hDays: readInteger(r, 'WARDEN_RETENTION_1H_DAYS', 730, 1, 36500),
      rollupIntervalMs: readDuration(r, 'WARDEN_ROLLUP_INTERVAL', 60_000, 1000, 3_600_000),
      rollupGraceMs: readDuration(r, 'WARDEN_ROLLUP_GRACE', 300_000, 0, 86_400_000),
      scrapePollIntervalMs: readDuration(r, 'WARDEN_SCRAPE_POLL_INTERVAL', 2000, 100, 600_000),
    },
    log: {
      level: readEnum(r, 'WARDEN_LOG_LEVEL', LOG_LEVELS, 'info'),
      format: readEnum(r, 'WARDEN_LOG_FORMAT', LOG_FORMATS, 'auto'),
    },
  };

  if (r.problems.length > 0) {
    throw new ConfigError(r.problems);
  }
  return deepFreeze(config);
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (child !== null && typeof child === 'object') {
      deepFreeze(child as object);
    }
  }
  return Object.freeze(value);
}

/** A connection string safe to log: the password is replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') {
      parsed.password = '***';
    }
    return parsed.toString();
  } catch {
    return '<unparseable url>';
  }
}

/** Settings of `warden agent` that come from the environment rather than its arguments. */
export interface AgentConfig {
  /**
   * API key (scope `ingest`) the agent sends with its samples (WARDEN_AGENT_API_KEY); used
   * when `--api-key` is not given, so the key need not appear in `ps`. Never logged.
   */
  readonly apiKey: string | undefined;
}

/** Reads the agent's environment variables; a {@link ConfigError} names each problem. */
export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const r: EnvReader = { env, problems: [] };
  const apiKey = readSecret(r, 'WARDEN_AGENT_API_KEY', 8);
  if (r.problems.length > 0) {
    throw new ConfigError(r.problems);
  }
  return Object.freeze({ apiKey: apiKey?.trim() });
}
