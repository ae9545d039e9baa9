/**
 * `schema.sql` at the repository root is the dump of a freshly migrated database. The dump
 * must equal it on both engines (and so the engines agree with each other): a migration
 * that changes the schema must come with the updated snapshot.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpSchema } from '../../src/db/schema-snapshot.js';
import { packageRoot } from '../../src/paths.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../helpers/db.js';

const SCHEMA_FILE = path.join(packageRoot(), 'schema.sql');
const UPDATE_HINT =
  'schema.sql does not match the migrated database: run `npm run schema:update` and commit the result';

describe.each(ENGINES)('schema snapshot on %s', (engine) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(engine);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('dumpSchema of a freshly migrated database equals the checked-in schema.sql', async () => {
    expect(fs.existsSync(SCHEMA_FILE), `${SCHEMA_FILE} is missing: run \`npm run schema:update\``).toBe(true);
    const checkedIn = fs.readFileSync(SCHEMA_FILE, 'utf8');
    const dump = await dumpSchema(t.database.db);
    expect(dump, UPDATE_HINT).toBe(checkedIn);
  });

  it('the dump names every table the migrations create', async () => {
    const dump = await dumpSchema(t.database.db);
    expect(dump).toContain('create table warden_migrations (');
    expect(dump).toContain('create table health_checks (');
  });
});
