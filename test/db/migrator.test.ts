/**
 * The migrator on both engines, driven by a synthetic migration list: the real migrations
 * (already applied: test databases come migrated) plus extra ones that create tables.
 */
import { sql, type Kysely } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/engine.js';
import { MigrationError, Migrator, checksumOf, loadMigrations, type Migration } from '../../src/db/migrator.js';
import type { DB } from '../../src/db/schema.js';
import { createMetrics } from '../../src/metrics.js';
import { ENGINES, createTestDatabase, silentLogger, type TestDatabase } from '../helpers/db.js';

const ALPHA = '9001_test_alpha';
const BETA = '9002_test_beta';
const GAMMA = '9003_test_gamma';

const alpha: Migration = {
  name: ALPHA,
  up: sql`create table mig_test_alpha (id integer primary key, label text not null)`,
  down: sql`drop table mig_test_alpha`,
};

/** References alpha: applying it before alpha, or reverting alpha before it, fails. */
const beta: Migration = {
  name: BETA,
  up: sql`
    create table mig_test_beta (id integer primary key, alpha_id integer not null references mig_test_alpha (id));
    create index mig_test_beta_alpha_idx on mig_test_beta (alpha_id);
  `,
  down: sql`drop table mig_test_beta`,
};

const gamma: Migration = {
  name: GAMMA,
  up: sql`create table mig_test_gamma (id integer primary key)`,
  down: sql`drop table mig_test_gamma`,
};

/** Creates a table and writes a row, then fails: none of it may survive. */
const broken: Migration = {
  name: '9003_test_broken',
  up: sql`
    create table mig_test_broken (id integer primary key);
    insert into mig_test_broken (id) values (1);
    select * from mig_test_no_such_table;
  `,
  down: sql`drop table mig_test_broken`,
};

const EXTRA_TABLES = ['mig_test_alpha', 'mig_test_beta', 'mig_test_gamma', 'mig_test_broken'];

async function tableExists(db: Kysely<DB>, table: string): Promise<boolean> {
  const result = await sql<{ found: boolean }>`select to_regclass(${table}) is not null as found`.execute(db);
  return result.rows[0]?.found === true;
}

async function recorded(db: Kysely<DB>): Promise<{ name: string; checksum: string; duration_ms: number }[]> {
  return db.selectFrom('warden_migrations').select(['name', 'checksum', 'duration_ms']).orderBy('name').execute();
}

async function advisoryLocksHeld(db: Kysely<DB>): Promise<number> {
  const result = await sql<{ n: number }>`select count(*)::int as n from pg_locks where locktype = 'advisory'`.execute(
    db,
  );
  return result.rows[0]?.n ?? -1;
}

describe.each(ENGINES)('migrator on %s', (engine) => {
  let t: TestDatabase;
  let db: Kysely<DB>;
  let real: Migration[];
  let realNames: string[];

  // One database per engine (a fresh PGlite takes seconds); each test starts from the
  // migrated state: the extra tables and their records are removed after it.
  beforeAll(async () => {
    t = await createTestDatabase(engine);
    db = t.database.db;
    real = await loadMigrations();
    realNames = real.map((m) => m.name);
  });
  afterAll(async () => {
    await t.cleanup();
  });
  afterEach(async () => {
    await sql`drop table if exists ${sql.join(EXTRA_TABLES.map((name) => sql.table(name)))} cascade`.execute(db);
    await db.deleteFrom('warden_migrations').where('name', 'not in', realNames).execute();
  });

  it('the test database starts with exactly the real migrations applied', async () => {
    expect(realNames.length).toBeGreaterThan(0);
    const state = await new Migrator(db, real).status();
    expect(state.applied.map((a) => a.name)).toEqual(realNames);
    expect(state.pending).toEqual([]);
    expect(await new Migrator(db, real).migrate()).toEqual([]);
  });

  it('migrate applies pending migrations in order and records their checksums', async () => {
    // Beta references alpha's table: applying them out of order would fail.
    const migrator = new Migrator(db, [...real, alpha, beta]);
    const reported: string[] = [];
    const applied = await migrator.migrate((name, durationMs) => {
      expect(durationMs).toBeGreaterThanOrEqual(0);
      reported.push(name);
    });
    expect(applied).toEqual([ALPHA, BETA]);
    expect(reported).toEqual([ALPHA, BETA]);
    expect(await tableExists(db, 'mig_test_alpha')).toBe(true);
    expect(await tableExists(db, 'mig_test_beta')).toBe(true);

    const rows = await recorded(db);
    expect(rows.map((r) => r.name)).toEqual([...realNames, ALPHA, BETA]);
    for (const [migration, row] of [
      [alpha, rows.find((r) => r.name === ALPHA)],
      [beta, rows.find((r) => r.name === BETA)],
    ] as const) {
      expect(row?.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(row?.checksum).toBe(checksumOf(db, migration));
      expect(row?.duration_ms).toBeGreaterThanOrEqual(0);
    }
    expect(await migrator.migrate()).toEqual([]);
    expect(await advisoryLocksHeld(db)).toBe(0);
  });

  it('status lists applied and pending migrations', async () => {
    const migrator = new Migrator(db, [...real, alpha, beta]);
    const before = await migrator.status();
    expect(before.applied.map((a) => a.name)).toEqual(realNames);
    expect(before.pending).toEqual([ALPHA, BETA]);
    expect(before.checksumMismatches).toEqual([]);
    expect(before.missingFiles).toEqual([]);

    await migrator.migrate();
    const after = await migrator.status();
    expect(after.applied.map((a) => a.name)).toEqual([...realNames, ALPHA, BETA]);
    expect(after.pending).toEqual([]);
    for (const row of after.applied) {
      expect(row.checksumOk).toBe(true);
      expect(row.missingFile).toBe(false);
      expect(row.appliedAt).toBeInstanceOf(Date);
    }

    // A migrator that does not know the extra files (e.g. an older Warden) reports them as missing.
    const older = await new Migrator(db, real).status();
    expect(older.missingFiles).toEqual([ALPHA, BETA]);
    expect(older.checksumMismatches).toEqual([]);
    expect(older.pending).toEqual([]);
  });

  it('rollback --steps 2 reverts the newest first and drops their tables', async () => {
    const migrator = new Migrator(db, [...real, alpha, beta, gamma]);
    await migrator.migrate();
    expect(await tableExists(db, 'mig_test_gamma')).toBe(true);

    expect(await migrator.rollback(2)).toEqual([GAMMA, BETA]);
    expect(await tableExists(db, 'mig_test_gamma')).toBe(false);
    expect(await tableExists(db, 'mig_test_beta')).toBe(false);
    expect(await tableExists(db, 'mig_test_alpha')).toBe(true);
    const state = await migrator.status();
    expect(state.applied.map((a) => a.name)).toEqual([...realNames, ALPHA]);
    expect(state.pending).toEqual([BETA, GAMMA]);

    // Beta references alpha: reverting alpha works only because beta went first.
    expect(await migrator.rollback()).toEqual([ALPHA]);
    expect(await tableExists(db, 'mig_test_alpha')).toBe(false);
    expect((await recorded(db)).map((r) => r.name)).toEqual(realNames);

    // Re-applying after a rollback works.
    expect(await migrator.migrate()).toEqual([ALPHA, BETA, GAMMA]);
    expect(await advisoryLocksHeld(db)).toBe(0);
  });

  it('rollback of a migration whose file is missing refuses and reverts nothing', async () => {
    await new Migrator(db, [...real, alpha]).migrate();
    await expect(new Migrator(db, real).rollback()).rejects.toThrow(
      new MigrationError(`Cannot roll back ${ALPHA}: its migration file is missing`),
    );
    expect(await tableExists(db, 'mig_test_alpha')).toBe(true);
    expect((await recorded(db)).map((r) => r.name)).toContain(ALPHA);
  });

  it('a migration whose SQL fails is rolled back completely, not recorded, and named in the error', async () => {
    const migrator = new Migrator(db, [...real, alpha, beta, broken, { ...gamma, name: '9004_test_gamma' }]);
    const reported: string[] = [];
    const error = await migrator
      .migrate((name) => reported.push(name))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).message).toMatch(/^Migration 9003_test_broken failed and was rolled back: /);
    expect((error as MigrationError).message).toContain('mig_test_no_such_table');
    expect((error as MigrationError).cause).toBeInstanceOf(Error);

    // The migrations before it stay applied (each has its own transaction); nothing after it ran.
    expect(reported).toEqual([ALPHA, BETA]);
    expect(await tableExists(db, 'mig_test_broken')).toBe(false);
    expect(await tableExists(db, 'mig_test_gamma')).toBe(false);
    const rows = await recorded(db);
    expect(rows.map((r) => r.name)).toEqual([...realNames, ALPHA, BETA]);
    expect((await migrator.status()).pending).toEqual(['9003_test_broken', '9004_test_gamma']);

    // The lock was released and the connection is usable: a fixed list migrates.
    expect(await advisoryLocksHeld(db)).toBe(0);
    const fixed = new Migrator(db, [...real, alpha, beta, { ...gamma, name: '9004_test_gamma' }]);
    expect(await fixed.migrate()).toEqual(['9004_test_gamma']);
  });

  it('an applied migration whose up changed is a checksum mismatch; migrate refuses and applies nothing', async () => {
    await new Migrator(db, [...real, alpha]).migrate();
    const edited: Migration = {
      ...alpha,
      up: sql`create table mig_test_alpha (id integer primary key, label text not null, extra text)`,
    };
    const migrator = new Migrator(db, [...real, edited, beta]);

    const state = await migrator.status();
    expect(state.checksumMismatches).toEqual([ALPHA]);
    expect(state.applied.find((a) => a.name === ALPHA)?.checksumOk).toBe(false);
    expect(state.pending).toEqual([BETA]);

    const error = await migrator.migrate().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toMatch(/^Refusing to migrate: /);
    expect((error as Error).message).toContain(ALPHA);
    expect(await tableExists(db, 'mig_test_beta')).toBe(false);
    expect((await recorded(db)).map((r) => r.name)).toEqual([...realNames, ALPHA]);
    expect(await advisoryLocksHeld(db)).toBe(0);
  });

  it('editing only the down of an applied migration is not a mismatch', async () => {
    await new Migrator(db, [...real, alpha]).migrate();
    const fixedDown: Migration = { ...alpha, down: sql`drop table if exists mig_test_alpha` };
    const migrator = new Migrator(db, [...real, fixedDown]);
    expect((await migrator.status()).checksumMismatches).toEqual([]);
    expect(await migrator.rollback()).toEqual([ALPHA]);
    expect(await tableExists(db, 'mig_test_alpha')).toBe(false);
  });

  it('two migrators running at once apply each migration exactly once', async () => {
    // Each migration sleeps so that the two runs certainly overlap.
    const slow = (m: Migration): Migration => ({
      ...m,
      up: sql`select pg_sleep(0.3); ${m.up}`,
    });
    const migrations = [...real, slow(alpha), slow(beta), slow(gamma)];
    // PostgreSQL: a second pool, as a second Warden process would have (the advisory lock
    // serializes them). PGlite has one connection per process: the second migrator shares it
    // and the connection mutex serializes them.
    const second =
      engine === 'postgresql'
        ? await openDatabase({
            config: t.config.database,
            logger: silentLogger,
            metrics: createMetrics({ defaultMetrics: false }),
          })
        : undefined;
    try {
      const results = await Promise.all([
        new Migrator(db, migrations).migrate(),
        new Migrator(second?.db ?? db, migrations).migrate(),
      ]);
      // One run applied everything (in order), the other waited for the lock and found nothing to do.
      expect(results.map((r) => r.length).sort()).toEqual([0, 3]);
      expect(results.flat()).toEqual([ALPHA, BETA, GAMMA]);
      const rows = await recorded(db);
      expect(rows.map((r) => r.name)).toEqual([...realNames, ALPHA, BETA, GAMMA]);
      expect(await advisoryLocksHeld(db)).toBe(0);
    } finally {
      await second?.close();
    }
  });
});
