/**
 * Test databases on both engines. Each call gives a database of its own:
 * - pglite: a fresh in-memory PGlite, migrated;
 * - postgresql: a new database cloned from the run's migrated template
 *   (`CREATE DATABASE … TEMPLATE …`) on the server started by global-setup.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config/index.js';
import { openDatabase, type Database, type EngineName } from '../../src/db/engine.js';
import { Migrator, loadMigrations } from '../../src/db/migrator.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import { startServer, type RunningServer } from '../../src/server.js';

export const ENGINES: readonly EngineName[] = ['pglite', 'postgresql'];

/** The first admin every test server creates (see WARDEN_ADMIN_*). */
export const TEST_ADMIN_EMAIL = 'admin@warden.test';
export const TEST_ADMIN_PASSWORD = 'test-admin-password-1234';

export const silentLogger: Logger = createLogger({ level: 'silent', format: 'json' });

/** A config for tests: quiet logs, a free port on 127.0.0.1, plus the given variables. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    WARDEN_LOG_LEVEL: 'silent',
    WARDEN_LOG_FORMAT: 'json',
    WARDEN_HOST: '127.0.0.1',
    WARDEN_PORT: '0',
    WARDEN_DB_CONNECT_TIMEOUT: '10s',
    WARDEN_ADMIN_EMAIL: TEST_ADMIN_EMAIL,
    WARDEN_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD,
    // The self collector adds a host every test would have to account for; tests of it turn it on.
    WARDEN_SELF_COLLECT: 'false',
    ...env,
  });
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

/** Creates a database cloned from the migrated template; returns its URL and a drop function. */
export async function clonePostgresDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `warden_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name} template ${inject('pgTemplate')}`);
  const url = new URL(inject('pgAdminUrl'));
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => adminQuery(`drop database if exists ${name} with (force)`),
  };
}

export interface TestDatabase {
  readonly database: Database;
  readonly metrics: Metrics;
  readonly config: Config;
  /** Closes the database and removes it. */
  cleanup(): Promise<void>;
}

/** An open, migrated database of its own on the given engine. */
export async function createTestDatabase(engine: EngineName, env: Record<string, string> = {}): Promise<TestDatabase> {
  const metrics = createMetrics({ defaultMetrics: false });
  if (engine === 'pglite') {
    const config = testConfig(env);
    const database = await openDatabase({ config: config.database, logger: silentLogger, metrics, inMemory: true });
    await new Migrator(database.db, await loadMigrations()).migrate();
    return { database, metrics, config, cleanup: () => database.close() };
  }
  const clone = await clonePostgresDatabase();
  const config = testConfig({ ...env, DATABASE_URL: clone.url });
  const database = await openDatabase({ config: config.database, logger: silentLogger, metrics });
  return {
    database,
    metrics,
    config,
    async cleanup() {
      await database.close();
      await clone.drop();
    },
  };
}

export interface TestServer {
  readonly server: RunningServer;
  cleanup(): Promise<void>;
}

/** A Warden server listening on 127.0.0.1 (free port) with a database of its own. */
export async function startTestServer(
  engine: EngineName,
  env: Record<string, string> = {},
  logger: Logger = silentLogger,
): Promise<TestServer> {
  if (engine === 'pglite') {
    const server = await startServer({ config: testConfig(env), logger, inMemory: true });
    return { server, cleanup: () => server.close() };
  }
  const clone = await clonePostgresDatabase();
  const server = await startServer({ config: testConfig({ ...env, DATABASE_URL: clone.url }), logger });
  return {
    server,
    async cleanup() {
      await server.close();
      await clone.drop();
    },
  };
}

/** Logs in over HTTP and returns the Cookie header value of the session. */
export async function login(
  baseUrl: string,
  email = TEST_ADMIN_EMAIL,
  password = TEST_ADMIN_PASSWORD,
): Promise<string> {
  const res = await fetch(`${baseUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (res.status !== 200) {
    throw new Error(`login as ${email} failed with ${res.status}: ${await res.text()}`);
  }
  const setCookie = res.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0];
  if (cookie === undefined || cookie === '') {
    throw new Error('login answered without a session cookie');
  }
  return cookie;
}

/** fetch with the admin's session cookie. */
export async function adminFetch(baseUrl: string, path: string, init: RequestInit = {}): Promise<Response> {
  const cookie = await adminCookie(baseUrl);
  return fetch(`${baseUrl}${path}`, { ...init, headers: { ...(init.headers as Record<string, string>), cookie } });
}

/** Creates an API key as the admin over HTTP and returns its secret. */
export async function createApiKey(baseUrl: string, name: string, scopes: readonly string[]): Promise<string> {
  const res = await adminFetch(baseUrl, '/api/v1/api-keys', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, scopes }),
  });
  if (res.status !== 201) {
    throw new Error(`creating API key ${JSON.stringify(name)} failed with ${res.status}: ${await res.text()}`);
  }
  return ((await res.json()) as { key: string }).key;
}

const cookies = new Map<string, Promise<string>>();
function adminCookie(baseUrl: string): Promise<string> {
  let cookie = cookies.get(baseUrl);
  if (cookie === undefined) {
    cookie = login(baseUrl);
    cookies.set(baseUrl, cookie);
  }
  return cookie;
}
