/** `warden db …`: migrations and the schema snapshot. */
import type { Command } from 'commander';
import type { Config } from '../config/index.js';
import { openDatabase, type Database } from '../db/engine.js';
import { Migrator, createMigrationFile, loadMigrations, type MigrationState } from '../db/migrator.js';
import { dumpSchema } from '../db/schema-snapshot.js';
import { RetentionService, type CleanupReport } from '../domain/metrics/retention-service.js';
import { createLogger } from '../logger.js';
import { createMetrics } from '../metrics.js';
import { CliExit, EXIT_FAILURE, parsePositiveInt, print } from './common.js';

export async function withDatabase<T>(config: Config, fn: (database: Database) => Promise<T>): Promise<T> {
  // CLI output is the summary; the logger only speaks up for problems.
  const logger = createLogger({ level: config.log.level === 'info' ? 'warn' : config.log.level, format: 'json' });
  const database = await openDatabase({
    config: config.database,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
  });
  try {
    return await fn(database);
  } finally {
    await database.close();
  }
}

function describeState(state: MigrationState): string {
  const lines = [`applied: ${state.applied.length}, pending: ${state.pending.length}`];
  for (const m of state.applied) {
    const flag = m.missingFile ? '  (file missing)' : m.checksumOk ? '' : '  CHECKSUM MISMATCH: edited after it ran';
    lines.push(`  [applied] ${m.name}  ${m.appliedAt.toISOString()}${flag}`);
  }
  for (const name of state.pending) {
    lines.push(`  [pending] ${name}`);
  }
  if (state.checksumMismatches.length > 0) {
    lines.push(
      `error: ${state.checksumMismatches.length} applied migration(s) were edited; \`warden db migrate\` will refuse to run.`,
    );
  }
  return lines.join('\n');
}

function describeCleanup(report: CleanupReport): string {
  const verb = report.dryRun ? 'would remove' : 'removed';
  const width = Math.max(...report.tables.map((t) => t.table.length));
  const lines = report.tables.map(
    (t) =>
      `  ${t.table.padEnd(width)}  ${verb} ${String(t.rows).padStart(10)} rows older than ${t.cutoff.toISOString()}`,
  );
  lines.push(`${report.dryRun ? 'dry run: nothing removed; ' : ''}${report.totalRows} rows in ${report.durationMs} ms`);
  return lines.join('\n');
}

export function registerDbCommands(program: Command, config: () => Config): void {
  const db = program.command('db').description('database operations: migrations and schema');

  db.command('migrate')
    .description('apply pending migrations (each in its own transaction, under an advisory lock)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withDatabase(config(), async (database) => {
        const migrator = new Migrator(database.db, await loadMigrations());
        const applied = await migrator.migrate((name, ms) => {
          if (opts.json !== true) {
            process.stdout.write(`applied ${name} (${ms} ms)\n`);
          }
        });
        print(
          opts.json === true,
          { applied },
          applied.length === 0 ? 'nothing to migrate' : `${applied.length} applied`,
        );
      });
    });

  db.command('rollback')
    .description('revert the most recent migrations')
    .option('--steps <n>', 'how many migrations to revert', parsePositiveInt, 1)
    .option('--json', 'print JSON')
    .action(async (opts: { steps: number; json?: boolean }) => {
      await withDatabase(config(), async (database) => {
        const migrator = new Migrator(database.db, await loadMigrations());
        const reverted = await migrator.rollback(opts.steps);
        print(
          opts.json === true,
          { reverted },
          reverted.length === 0 ? 'nothing to roll back' : reverted.map((n) => `reverted ${n}`).join('\n'),
        );
      });
    });

  db.command('status')
    .description('applied and pending migrations and their checksum state (exit 1 on an edited migration)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const state = await withDatabase(config(), async (database) =>
        new Migrator(database.db, await loadMigrations()).status(),
      );
      print(opts.json === true, state, describeState(state));
      if (state.checksumMismatches.length > 0) {
        throw new CliExit(EXIT_FAILURE, '');
      }
    });

  db.command('history')
    .description('when each migration was applied and how long it took')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const state = await withDatabase(config(), async (database) =>
        new Migrator(database.db, await loadMigrations()).status(),
      );
      const rows = [...state.applied].sort((a, b) => a.appliedAt.getTime() - b.appliedAt.getTime());
      print(
        opts.json === true,
        rows.map((r) => ({ name: r.name, applied_at: r.appliedAt, duration_ms: r.durationMs, checksum: r.checksum })),
        rows.length === 0
          ? 'no migrations applied'
          : rows.map((r) => `${r.appliedAt.toISOString()}  ${r.name}  ${r.durationMs} ms`).join('\n'),
      );
    });

  db.command('create')
    .description('write a new numbered migration file in src/db/migrations')
    .argument('<name>', 'what the migration does, e.g. add_hosts')
    .action((name: string) => {
      const file = createMigrationFile(name);
      process.stdout.write(
        `created ${file}\nFill in up and down, then rebuild (npm run build) and run \`warden db migrate\`.\n`,
      );
    });

  db.command('cleanup')
    .description(
      'remove data past its retention now (raw samples, rollups, scrape runs, health checks, key usage, expired sessions) and report rows per table',
    )
    .option(
      '--days-old <n>',
      'remove raw data (samples, scrape runs, health checks, key usage) older than N days instead of its retention; rollups keep theirs',
      parsePositiveInt,
    )
    .option('--dry-run', 'count what would be removed; remove nothing')
    .option('--json', 'print JSON')
    .action(async (opts: { daysOld?: number; dryRun?: boolean; json?: boolean }) => {
      const cfg = config();
      const report = await withDatabase(cfg, (database) =>
        new RetentionService(database.db, cfg.metrics, cfg.health).cleanup({
          daysOld: opts.daysOld,
          dryRun: opts.dryRun === true,
        }),
      );
      print(
        opts.json === true,
        {
          dry_run: report.dryRun,
          total_rows: report.totalRows,
          duration_ms: report.durationMs,
          tables: report.tables.map((t) => ({ table: t.table, cutoff: t.cutoff.toISOString(), rows: t.rows })),
        },
        describeCleanup(report),
      );
    });

  db.command('schema')
    .description('print the schema of the migrated database (the snapshot kept in schema.sql)')
    .action(async () => {
      const text = await withDatabase(config(), (database) => dumpSchema(database.db));
      process.stdout.write(text);
    });
}
