import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactUrl, type Config } from '../../src/config/index.js';
import { parseDuration } from '../../src/config/parse.js';

const CWD = path.resolve('/srv/warden');

/** The problems loadConfig reports for `env`; fails the test when it does not throw. */
function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env, CWD);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

function onlyProblem(env: Record<string, string>): string {
  const problems = problemsOf(env);
  expect(problems).toHaveLength(1);
  return problems[0] ?? '';
}

describe('loadConfig defaults', () => {
  it('an empty environment gives the documented defaults', () => {
    const config = loadConfig({}, CWD);
    expect(config).toEqual({
      http: { host: '127.0.0.1', port: 8080, bodyLimitBytes: 4 * 1024 * 1024, shutdownTimeoutMs: 10_000 },
      database: {
        engine: 'pglite',
        dataDir: path.join(CWD, 'warden-data'),
        url: undefined,
        readUrl: undefined,
        connectTimeoutMs: 30_000,
        slowQueryMs: 1000,
        autoMigrate: true,
        pool: {
          max: 10,
          connectionTimeoutMs: 5000,
          idleTimeoutMs: 30_000,
          maxLifetimeS: 300,
          statementTimeoutMs: 60_000,
          lockTimeoutMs: 10_000,
          idleInTransactionTimeoutMs: 60_000,
          applicationName: 'warden',
        },
      },
      health: { intervalMs: 60_000, retentionDays: 30, minFreeDiskMb: 256, maxEventLoopDelayMs: 1000, maxHeapPct: 90 },
      auth: {
        adminEmail: 'admin@localhost',
        adminPassword: undefined,
        cookieSecure: false,
        sessionTtlMs: 7 * 86_400_000,
        metricsPublic: false,
        rateLimitPerKeyPerMin: 1200,
        rateLimitPerIpPerMin: 2400,
      },
      metrics: {
        selfCollect: true,
        collectIntervalMs: 10_000,
        hostName: os.hostname(),
        retentionRawDays: 30,
        retention1mDays: 90,
        retention1hDays: 730,
        rollupIntervalMs: 60_000,
        rollupGraceMs: 300_000,
        scrapePollIntervalMs: 2000,
      },
      log: { level: 'info', format: 'auto' },
    } satisfies Config);
  });

  it('never echoes a too-short admin password', () => {
    expect(() => loadConfig({ WARDEN_ADMIN_PASSWORD: 'short-pw' }, CWD)).toThrow(
      /WARDEN_ADMIN_PASSWORD must be at least 12 characters long \(value not shown\)/,
    );
    try {
      loadConfig({ WARDEN_ADMIN_PASSWORD: 'short-pw' }, CWD);
    } catch (error) {
      expect(String(error)).not.toContain('short-pw');
    }
  });

  it('empty and blank values count as unset', () => {
    const config = loadConfig({ WARDEN_PORT: '', WARDEN_LOG_LEVEL: '   ', DATABASE_URL: '' }, CWD);
    expect(config.http.port).toBe(8080);
    expect(config.log.level).toBe('info');
    expect(config.database.engine).toBe('pglite');
  });

  it('reads set values, trimming whitespace, and resolves the data dir against cwd', () => {
    const config = loadConfig(
      {
        WARDEN_HOST: '0.0.0.0',
        WARDEN_PORT: ' 9090 ',
        WARDEN_DATA_DIR: 'data/warden',
        WARDEN_AUTO_MIGRATE: 'no',
        WARDEN_LOG_LEVEL: 'debug',
        WARDEN_LOG_FORMAT: 'json',
        WARDEN_DB_POOL_MAX: '25',
      },
      CWD,
    );
    expect(config.http.host).toBe('0.0.0.0');
    expect(config.http.port).toBe(9090);
    expect(config.database.dataDir).toBe(path.join(CWD, 'data', 'warden'));
    expect(config.database.autoMigrate).toBe(false);
    expect(config.log).toEqual({ level: 'debug', format: 'json' });
    expect(config.database.pool.max).toBe(25);
  });

  it('WARDEN_PORT=0 (pick a free port) is accepted', () => {
    expect(loadConfig({ WARDEN_PORT: '0' }, CWD).http.port).toBe(0);
  });

  it('DATABASE_URL selects the postgresql engine and keeps the URL as given', () => {
    const url = 'postgres://warden:s3cret@db.internal:5432/warden';
    const config = loadConfig({ DATABASE_URL: url, DATABASE_READ_URL: 'postgresql://ro@replica/warden' }, CWD);
    expect(config.database.engine).toBe('postgresql');
    expect(config.database.url).toBe(url);
    expect(config.database.readUrl).toBe('postgresql://ro@replica/warden');
  });

  it.each(['true', 'TRUE', '1', 'yes', 'on'])('boolean %s is true', (value) => {
    expect(loadConfig({ WARDEN_AUTO_MIGRATE: value }, CWD).database.autoMigrate).toBe(true);
  });

  it.each(['false', 'False', '0', 'no', 'off'])('boolean %s is false', (value) => {
    expect(loadConfig({ WARDEN_AUTO_MIGRATE: value }, CWD).database.autoMigrate).toBe(false);
  });
});

describe('loadConfig durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['2', 2000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
  ])('WARDEN_DB_CONNECT_TIMEOUT=%s is %d ms', (value, ms) => {
    expect(loadConfig({ WARDEN_DB_CONNECT_TIMEOUT: value }, CWD).database.connectTimeoutMs).toBe(ms);
    expect(parseDuration(value)).toBe(ms);
  });

  it('parseDuration rejects unknown units and garbage', () => {
    for (const bad of ['5d', '-1s', 's', '', '1 m', 'abc']) {
      expect(parseDuration(bad), bad).toBeUndefined();
    }
  });

  it('a duration below its minimum is rejected with the allowed range', () => {
    const problem = onlyProblem({ WARDEN_HEALTH_INTERVAL: '500ms' });
    expect(problem).toContain('WARDEN_HEALTH_INTERVAL');
    expect(problem).toContain('"500ms"');
    expect(problem).toContain('between 1000ms and 86400s');
  });
});

describe('loadConfig rejects bad values, naming the variable, the value and what is allowed', () => {
  it('an integer that is not an integer', () => {
    expect(onlyProblem({ WARDEN_PORT: '80a' })).toBe('WARDEN_PORT must be an integer 1-65535, got "80a"');
    expect(onlyProblem({ WARDEN_DB_POOL_MAX: '2.5' })).toBe('WARDEN_DB_POOL_MAX must be an integer 1-1000, got "2.5"');
  });

  it('an integer out of range', () => {
    expect(onlyProblem({ WARDEN_PORT: '70000' })).toBe('WARDEN_PORT must be an integer 1-65535, got "70000"');
    expect(onlyProblem({ WARDEN_MAX_HEAP_PCT: '0' })).toBe('WARDEN_MAX_HEAP_PCT must be an integer 1-100, got "0"');
    expect(onlyProblem({ WARDEN_DB_POOL_MAX: '-3' })).toBe('WARDEN_DB_POOL_MAX must be an integer 1-1000, got "-3"');
  });

  it('a boolean', () => {
    expect(onlyProblem({ WARDEN_AUTO_MIGRATE: 'maybe' })).toBe(
      'WARDEN_AUTO_MIGRATE must be true or false, got "maybe"',
    );
  });

  it('an enum', () => {
    expect(onlyProblem({ WARDEN_LOG_LEVEL: 'verbose' })).toBe(
      'WARDEN_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"',
    );
    expect(onlyProblem({ WARDEN_LOG_FORMAT: 'xml' })).toBe(
      'WARDEN_LOG_FORMAT must be one of json, pretty, auto, got "xml"',
    );
  });

  it('a duration', () => {
    const problem = onlyProblem({ WARDEN_SHUTDOWN_TIMEOUT: '10 minutes' });
    expect(problem).toMatch(/^WARDEN_SHUTDOWN_TIMEOUT must be a duration between 0ms and 600s /);
    expect(problem).toContain('e.g. 30s, 500ms, 5m');
    expect(problem).toContain('got "10 minutes"');
  });

  it('a URL with the wrong protocol', () => {
    expect(onlyProblem({ DATABASE_URL: 'mysql://root@localhost/warden' })).toBe(
      'DATABASE_URL must use one of postgres:, postgresql:, got "mysql:"',
    );
    expect(onlyProblem({ DATABASE_READ_URL: 'http://replica/warden' })).toBe(
      'DATABASE_READ_URL must use one of postgres:, postgresql:, got "http:"',
    );
  });

  it('an unparseable URL is reported without echoing its value (it may hold a password)', () => {
    const secret = 'hunter2-secret';
    const problem = onlyProblem({ DATABASE_URL: `postgres://warden:${secret}@db:notaport/warden` });
    expect(problem).toContain('DATABASE_URL must be a URL like postgres://');
    expect(problem).not.toContain(secret);
    try {
      loadConfig({ DATABASE_URL: `postgres://warden:${secret}@db:notaport/warden` }, CWD);
    } catch (error) {
      expect((error as Error).message).not.toContain(secret);
    }
  });

  it('reports every problem at once, in one ConfigError whose message lists them all', () => {
    const env = {
      WARDEN_PORT: '80a',
      WARDEN_AUTO_MIGRATE: 'maybe',
      WARDEN_LOG_LEVEL: 'loud',
      WARDEN_HEALTH_INTERVAL: 'soon',
      DATABASE_URL: 'mysql://x@y/z',
      WARDEN_MAX_HEAP_PCT: '101',
    };
    let caught: unknown;
    try {
      loadConfig(env, CWD);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.problems).toHaveLength(6);
    for (const name of Object.keys(env)) {
      expect(
        error.problems.some((p) => p.startsWith(`${name} `)),
        name,
      ).toBe(true);
      expect(error.message).toContain(name);
    }
    expect(error.message.startsWith('Invalid configuration:\n  - ')).toBe(true);
    expect(error.message.split('\n  - ')).toHaveLength(7);
  });
});

describe('loadConfig result', () => {
  it('is deeply frozen', () => {
    const config = loadConfig({}, CWD);
    expect(Object.isFrozen(config)).toBe(true);
    for (const section of [config.http, config.database, config.database.pool, config.health, config.log]) {
      expect(Object.isFrozen(section)).toBe(true);
    }
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.database.pool as { max: number }).max = 1;
    }).toThrow(TypeError);
    expect(config.http.port).toBe(8080);
    expect(config.database.pool.max).toBe(10);
  });

  it('does not read process.env when an environment is passed', () => {
    const saved = process.env.WARDEN_PORT;
    process.env.WARDEN_PORT = 'not-a-port';
    try {
      expect(loadConfig({}, CWD).http.port).toBe(8080);
    } finally {
      if (saved === undefined) {
        delete process.env.WARDEN_PORT;
      } else {
        process.env.WARDEN_PORT = saved;
      }
    }
  });
});

describe('redactUrl', () => {
  it('replaces the password and keeps the rest', () => {
    expect(redactUrl('postgres://warden:s3cret@db:5432/warden')).toBe('postgres://warden:***@db:5432/warden');
    expect(redactUrl('postgres://warden@db/warden')).toBe('postgres://warden@db/warden');
  });

  it('never returns an unparseable value', () => {
    expect(redactUrl('postgres://warden:s3cret@db:notaport/warden')).toBe('<unparseable url>');
  });
});
