/**
 * The real `warden` CLI as a child process (`node --import tsx src/cli/main.ts …`) against
 * an embedded data directory of its own, plus `createMigrationFile` in a temp folder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/engine.js';
import { MigrationError, createMigrationFile, loadMigrations, type MigrationState } from '../../src/db/migrator.js';
import { createMetrics } from '../../src/metrics.js';
import { runCli, show, SLOW } from '../helpers/cli.js';
import { silentLogger, testConfig } from '../helpers/db.js';

const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('warden CLI', () => {
  it('--help lists the serve and db commands', { timeout: SLOW }, async () => {
    const result = await runCli(['--help'], { WARDEN_DATA_DIR: tempDir('warden-cli-help-') });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toMatch(/^Usage: warden /m);
    expect(result.stdout).toMatch(/^\s+serve\s/m);
    expect(result.stdout).toMatch(/^\s+db\s/m);
  });

  it('db --help lists the migration commands', { timeout: SLOW }, async () => {
    const result = await runCli(['db', '--help'], { WARDEN_DATA_DIR: tempDir('warden-cli-help-') });
    expect(result.code, show(result)).toBe(0);
    for (const command of ['migrate', 'rollback', 'status', 'history', 'create', 'schema']) {
      expect(result.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    }
  });
});

describe('warden db on an embedded data directory', () => {
  let dataDir: string;
  let env: Record<string, string>;
  let names: string[];

  beforeAll(async () => {
    dataDir = tempDir('warden-cli-db-');
    env = { WARDEN_DATA_DIR: dataDir };
    names = (await loadMigrations()).map((m) => m.name);
  });

  it('status on a fresh data directory shows every migration pending', { timeout: SLOW }, async () => {
    const result = await runCli(['db', 'status'], env);
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toContain(`applied: 0, pending: ${names.length}`);
    for (const name of names) {
      expect(result.stdout).toContain(`[pending] ${name}`);
    }
  });

  it('migrate applies the pending migrations and prints each', { timeout: SLOW }, async () => {
    const result = await runCli(['db', 'migrate'], env);
    expect(result.code, show(result)).toBe(0);
    for (const name of names) {
      expect(result.stdout).toMatch(new RegExp(`^applied ${name} \\(\\d+ ms\\)$`, 'm'));
    }
    expect(result.stdout).toContain(`${names.length} applied`);

    const again = await runCli(['db', 'migrate'], env);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout.trim()).toBe('nothing to migrate');
  });

  it('history lists when each migration was applied', { timeout: SLOW }, async () => {
    const result = await runCli(['db', 'history'], env);
    expect(result.code, show(result)).toBe(0);
    for (const name of names) {
      expect(result.stdout).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z  ${name}  \\d+ ms$`, 'm'));
    }
  });

  it('status --json prints parseable JSON', { timeout: SLOW }, async () => {
    const result = await runCli(['db', 'status', '--json'], env);
    expect(result.code, show(result)).toBe(0);
    const state = JSON.parse(result.stdout) as MigrationState;
    expect(state.pending).toEqual([]);
    expect(state.checksumMismatches).toEqual([]);
    expect(state.missingFiles).toEqual([]);
    expect(state.applied.map((a) => a.name)).toEqual(names);
    expect(state.applied.every((a) => a.checksumOk && /^[0-9a-f]{64}$/.test(a.checksum))).toBe(true);
  });

  it('rollback --steps 1 reverts the newest migration', { timeout: SLOW }, async () => {
    const newest = names[names.length - 1];
    const result = await runCli(['db', 'rollback', '--steps', '1'], env);
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout.trim()).toBe(`reverted ${newest}`);

    const status = await runCli(['db', 'status', '--json'], env);
    expect(status.code, show(status)).toBe(0);
    expect((JSON.parse(status.stdout) as MigrationState).pending).toEqual([newest]);
  });

  it('rollback --steps abc is rejected before touching the database', { timeout: SLOW }, async () => {
    const result = await runCli(['db', 'rollback', '--steps', 'abc'], env);
    expect(result.code, show(result)).not.toBe(0);
    expect(result.stderr).toContain('expected a positive integer, got "abc"');
    expect(result.stdout).not.toContain('reverted');
  });

  it(
    'an edited applied migration: status exits 1 with CHECKSUM MISMATCH, migrate refuses',
    { timeout: SLOW },
    async () => {
      const migrated = await runCli(['db', 'migrate'], env);
      expect(migrated.code, show(migrated)).toBe(0);

      // The child has exited and released the data directory: tamper with it in-process.
      const database = await openDatabase({
        config: testConfig({ WARDEN_DATA_DIR: dataDir }).database,
        logger: silentLogger,
        metrics: createMetrics({ defaultMetrics: false }),
      });
      try {
        await sql`update warden_migrations set checksum = 'edited'`.execute(database.db);
      } finally {
        await database.close();
      }

      const status = await runCli(['db', 'status'], env);
      expect(status.code, show(status)).toBe(1);
      expect(status.stdout).toContain('CHECKSUM MISMATCH');
      expect(status.stdout).toContain('`warden db migrate` will refuse to run');

      const migrate = await runCli(['db', 'migrate'], env);
      expect(migrate.code, show(migrate)).not.toBe(0);
      expect(migrate.stderr).toContain('Refusing to migrate');
      expect(migrate.stderr).toContain(names[0]);
    },
  );
});

describe('warden serve refuses to start on bad configuration or a database that is not up to date', () => {
  it('WARDEN_PORT=80a exits 2 naming the variable, the value and what is allowed', { timeout: SLOW }, async () => {
    const dataDir = tempDir('warden-cli-serve-');
    const result = await runCli(['serve'], { WARDEN_DATA_DIR: dataDir, WARDEN_PORT: '80a' });
    expect(result.code, show(result)).toBe(2);
    expect(result.stderr).toContain('WARDEN_PORT must be an integer 1-65535, got "80a"');
    // Configuration is checked before anything is opened.
    expect(fs.readdirSync(dataDir)).toEqual([]);
  });

  it('an unparseable DATABASE_URL exits 2 without echoing the value', { timeout: SLOW }, async () => {
    const password = 'Sup3r-Secret-Pw';
    const result = await runCli(['serve'], {
      WARDEN_DATA_DIR: tempDir('warden-cli-serve-'),
      DATABASE_URL: `postgres://warden:${password}@db.example:notaport/warden`,
    });
    expect(result.code, show(result)).toBe(2);
    expect(result.stderr).toContain('DATABASE_URL must be a URL like');
    expect(result.stderr + result.stdout).not.toContain(password);
    expect(result.stderr + result.stdout).not.toContain('notaport');
  });

  it('WARDEN_AUTO_MIGRATE=false on a fresh data directory refuses to serve', { timeout: SLOW }, async () => {
    const result = await runCli(['serve'], {
      WARDEN_DATA_DIR: tempDir('warden-cli-serve-'),
      WARDEN_AUTO_MIGRATE: 'false',
      WARDEN_HOST: '127.0.0.1',
      WARDEN_PORT: '0',
    });
    expect(result.code, show(result)).not.toBe(0);
    expect(result.stderr).toMatch(/\d+ pending \(/);
    expect(result.stderr).toContain('`warden db migrate`');
    expect(result.stdout).not.toContain('Warden is serving');
  });
});

describe('createMigrationFile', () => {
  it('continues the numbering from the highest existing migration and slugifies the name', () => {
    const dir = tempDir('warden-migrations-');
    for (const file of ['0001_first.ts', '0007_seventh.ts', '0003_third.js', 'README.md', '9999_Not-A-Migration.ts']) {
      fs.writeFileSync(path.join(dir, file), '');
    }
    const file = createMigrationFile('  Add Things: hosts & Tags!  ', dir);
    expect(file).toBe(path.join(dir, '0008_add_things_hosts_tags.ts'));
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain("import { sql } from 'kysely';");
    expect(text).toMatch(/export const up = sql`/);
    expect(text).toMatch(/export const down = sql`/);

    expect(createMigrationFile('add_more', dir)).toBe(path.join(dir, '0009_add_more.ts'));
  });

  it('starts at 0001 in an empty folder', () => {
    const dir = tempDir('warden-migrations-');
    expect(createMigrationFile('init', dir)).toBe(path.join(dir, '0001_init.ts'));
  });

  it('rejects a name with no letters or digits and writes nothing', () => {
    const dir = tempDir('warden-migrations-');
    for (const bad of ['', '   ', '---', '!!! ???']) {
      expect(() => createMigrationFile(bad, dir), JSON.stringify(bad)).toThrow(MigrationError);
    }
    expect(() => createMigrationFile('***', dir)).toThrow('Migration name must contain letters or digits, got "***"');
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
