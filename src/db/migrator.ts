/**
 * Migrations: ordered files in `migrations/` named `NNNN_name.ts`, each exporting `up`
 * and `down` as plain SQL (Kysely `sql`). Each runs in its own transaction, under a
 * session advisory lock so two processes starting at once never both migrate. The
 * checksum of each applied migration's `up` SQL is recorded; an edited applied migration
 * is reported by `status` and refused by `migrate`.
 *
 * The checksum covers `up` only: fixing the `down` of an applied migration is legitimate
 * (it has not run yet), while changing its `up` means databases already migrated differ
 * from new ones.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { packageRoot } from '../paths.js';
import type { DB } from './schema.js';

export interface Migration {
  readonly name: string;
  readonly up: RawBuilder<unknown>;
  readonly down: RawBuilder<unknown>;
}

export interface AppliedMigration {
  readonly name: string;
  readonly checksum: string;
  readonly appliedAt: Date;
  readonly durationMs: number;
}

export interface MigrationState {
  readonly applied: (AppliedMigration & { readonly checksumOk: boolean; readonly missingFile: boolean })[];
  readonly pending: string[];
  /** Applied migrations whose file changed since they ran. */
  readonly checksumMismatches: string[];
  /** Applied migrations with no file (a newer Warden's migrations, or a deleted file). */
  readonly missingFiles: string[];
}

export class MigrationError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

/** Key of the session advisory lock held while migrating ("warden" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x7761_7264_656e;

const MIGRATION_FILE = /^(\d{4}_[a-z0-9_]+)\.(?:js|ts)$/;

/** Directory of the migration modules next to this file (src/ under tests, dist/ when built). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));

/** Loads every migration module from `dir`, ordered by name. */
export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const names = fs
    .readdirSync(dir)
    .filter((file) => MIGRATION_FILE.test(file) && !file.endsWith('.d.ts'))
    .sort();
  const migrations: Migration[] = [];
  for (const file of names) {
    const name = MIGRATION_FILE.exec(file)?.[1] ?? file;
    const module = (await import(pathToFileURL(path.join(dir, file)).href)) as Partial<Migration>;
    if (module.up === undefined || module.down === undefined) {
      throw new MigrationError(`Migration ${file} must export both "up" and "down"`);
    }
    migrations.push({ name, up: module.up, down: module.down });
  }
  return migrations;
}

export function checksumOf(db: Kysely<DB>, migration: Migration): string {
  const text = migration.up.compile(db).sql.trim();
  return createHash('sha256').update(text).digest('hex');
}

export class Migrator {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly migrations: readonly Migration[],
  ) {}

  private async ensureTable(db: Kysely<DB>): Promise<void> {
    await sql`
      create table if not exists warden_migrations (
        name text primary key,
        checksum text not null,
        applied_at timestamptz not null default now(),
        duration_ms integer not null
      )
    `.execute(db);
  }

  private async readApplied(db: Kysely<DB>): Promise<AppliedMigration[]> {
    const exists = await sql<{ found: boolean }>`select to_regclass('warden_migrations') is not null as found`.execute(
      db,
    );
    if (exists.rows[0]?.found !== true) {
      return [];
    }
    const rows = await db.selectFrom('warden_migrations').selectAll().orderBy('name').execute();
    return rows.map((row) => ({
      name: row.name,
      checksum: row.checksum,
      appliedAt: row.applied_at,
      durationMs: row.duration_ms,
    }));
  }

  private stateFrom(applied: AppliedMigration[]): MigrationState {
    const byName = new Map(this.migrations.map((m) => [m.name, m]));
    const appliedNames = new Set(applied.map((a) => a.name));
    const rows = applied.map((a) => {
      const file = byName.get(a.name);
      return {
        ...a,
        missingFile: file === undefined,
        checksumOk: file === undefined ? true : checksumOf(this.db, file) === a.checksum,
      };
    });
    return {
      applied: rows,
      pending: this.migrations.filter((m) => !appliedNames.has(m.name)).map((m) => m.name),
      checksumMismatches: rows.filter((r) => !r.checksumOk).map((r) => r.name),
      missingFiles: rows.filter((r) => r.missingFile).map((r) => r.name),
    };
  }

  /** Applied, pending and checksum state. Reads only; takes no lock. */
  async status(): Promise<MigrationState> {
    return this.stateFrom(await this.readApplied(this.db));
  }

  /** Runs `fn` on one connection holding the migration advisory lock. */
  private async withLock<T>(fn: (db: Kysely<DB>) => Promise<T>): Promise<T> {
    return this.db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`.execute(conn);
      try {
        return await fn(conn);
      } finally {
        await sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`.execute(conn);
      }
    });
  }

  /**
   * Applies every pending migration in order, each in its own transaction. Refuses (and
   * applies nothing) when an applied migration's checksum no longer matches its file.
   */
  async migrate(onApplied?: (name: string, durationMs: number) => void): Promise<string[]> {
    return this.withLock(async (conn) => {
      await this.ensureTable(conn);
      const state = this.stateFrom(await this.readApplied(conn));
      if (state.checksumMismatches.length > 0) {
        throw new MigrationError(
          `Refusing to migrate: applied migration(s) ${state.checksumMismatches.join(', ')} were edited after they ran ` +
            '(checksum mismatch). Restore the original file, or add a new migration for the change.',
        );
      }
      const done: string[] = [];
      for (const name of state.pending) {
        const migration = this.migrations.find((m) => m.name === name);
        if (migration === undefined) {
          continue;
        }
        const started = performance.now();
        try {
          await conn.transaction().execute(async (trx) => {
            // Schema changes may legitimately take longer than the pool's statement_timeout.
            await sql`set local statement_timeout = 0`.execute(trx);
            await migration.up.execute(trx);
            const durationMs = Math.round(performance.now() - started);
            await trx
              .insertInto('warden_migrations')
              .values({ name, checksum: checksumOf(this.db, migration), duration_ms: durationMs })
              .execute();
          });
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          throw new MigrationError(`Migration ${name} failed and was rolled back: ${reason}`, { cause: error });
        }
        const durationMs = Math.round(performance.now() - started);
        done.push(name);
        onApplied?.(name, durationMs);
      }
      return done;
    });
  }

  /** Reverts the last `steps` applied migrations, newest first, each in its own transaction. */
  async rollback(steps = 1): Promise<string[]> {
    return this.withLock(async (conn) => {
      const applied = await this.readApplied(conn);
      const targets = applied
        .map((a) => a.name)
        .sort()
        .reverse()
        .slice(0, steps);
      const done: string[] = [];
      for (const name of targets) {
        const migration = this.migrations.find((m) => m.name === name);
        if (migration === undefined) {
          throw new MigrationError(`Cannot roll back ${name}: its migration file is missing`);
        }
        try {
          await conn.transaction().execute(async (trx) => {
            await sql`set local statement_timeout = 0`.execute(trx);
            await migration.down.execute(trx);
            await trx.deleteFrom('warden_migrations').where('name', '=', name).execute();
          });
        } catch (error) {
          const reason = error instanceof Error ? error.message : String(error);
          throw new MigrationError(`Rolling back ${name} failed and was undone: ${reason}`, { cause: error });
        }
        done.push(name);
      }
      return done;
    });
  }
}

/** Writes a new numbered migration file in `src/db/migrations` and returns its path. */
export function createMigrationFile(
  rawName: string,
  dir = path.join(packageRoot(), 'src', 'db', 'migrations'),
): string {
  const name = rawName
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (name === '') {
    throw new MigrationError(`Migration name must contain letters or digits, got ${JSON.stringify(rawName)}`);
  }
  const numbers = fs
    .readdirSync(dir)
    .map((file) => MIGRATION_FILE.exec(file)?.[1])
    .filter((n): n is string => n !== undefined)
    .map((n) => Number(n.slice(0, 4)));
  const next = String((numbers.length === 0 ? 0 : Math.max(...numbers)) + 1).padStart(4, '0');
  const file = path.join(dir, `${next}_${name}.ts`);
  fs.writeFileSync(
    file,
    `import { sql } from 'kysely';\n\n/** TODO: say what this migration changes and why. */\nexport const up = sql\`\n\`;\n\nexport const down = sql\`\n\`;\n`,
    { flag: 'wx' },
  );
  return file;
}
