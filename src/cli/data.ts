/** `warden data …`: bulk data in and out. `import-json` reads metric records of earlier tools. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Config } from '../config/index.js';
import { Migrator, loadMigrations } from '../db/migrator.js';
import { IngestService } from '../domain/metrics/ingest-service.js';
import {
  DEFAULT_IMPORT_BATCH_SIZE,
  ImportService,
  checkImportFile,
  type ImportProgress,
  type ImportSummary,
} from '../domain/metrics/import-service.js';
import { formatPosition } from '../domain/metrics/json-records.js';
import { buildFieldMap, hostProblem, type FieldMap } from '../domain/metrics/legacy-import.js';
import { RollupService } from '../domain/metrics/rollup-service.js';
import { AppError } from '../errors.js';
import { CliExit, EXIT_CONFIG, EXIT_FAILURE, print } from './common.js';
import { withDatabase } from './db.js';

const MAX_BATCH_SIZE = 100_000;
/** The progress line is redrawn at most this often. */
const PROGRESS_INTERVAL_MS = 250;

interface ImportJsonOptions {
  host?: string;
  map?: string[];
  json?: boolean;
  allowPartial?: boolean;
  batchSize: number;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseBatchSize(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_BATCH_SIZE) {
    throw new InvalidArgumentError(`expected an integer from 1 to ${MAX_BATCH_SIZE}, got "${value}"`);
  }
  return Number(value);
}

const count = (n: number): string => n.toLocaleString('en-US');

/** A progress line on stderr, redrawn in place; only when stderr is a terminal. */
function progressLine(): { update: (p: ImportProgress) => void; clear: () => void } {
  if (process.stderr.isTTY !== true) {
    return { update: () => undefined, clear: () => undefined };
  }
  const started = performance.now();
  let last = 0;
  let shown = false;
  return {
    update(p) {
      const now = performance.now();
      if (now - last < PROGRESS_INTERVAL_MS && p.phase === 'reading') {
        return;
      }
      last = now;
      shown = true;
      const seconds = Math.max((now - started) / 1000, 0.001);
      process.stderr.write(
        `\r\x1b[K${count(p.recordsRead)} records read, ${count(p.samplesImported)} samples imported` +
          (p.recordsRejected > 0 ? `, ${count(p.recordsRejected)} rejected` : '') +
          (p.phase === 'rollup'
            ? '; rolling up the imported range into 1-minute and 1-hour buckets…'
            : ` (${count(Math.round(p.recordsRead / seconds))} records/s)`),
      );
    },
    clear() {
      if (shown) {
        process.stderr.write('\r\x1b[K');
      }
    },
  };
}

function describeSummary(s: ImportSummary): string {
  const lines = [
    `imported ${s.file} (${s.format === 'array' ? 'JSON array' : 'JSON-lines'})`,
    `  records read:        ${count(s.recordsRead)}`,
    `  samples imported:    ${count(s.samplesImported)}`,
    `  duplicates skipped:  ${count(s.duplicatesSkipped)}`,
    `  records rejected:    ${count(s.recordsRejected)}`,
  ];
  for (const rejection of s.rejections) {
    lines.push(`    ${formatPosition(rejection.position)}: ${rejection.reason}`);
  }
  if (s.recordsRejected > s.rejections.length) {
    lines.push(`    … and ${count(s.recordsRejected - s.rejections.length)} more`);
  }
  if (s.unknownFields.length > 0) {
    lines.push(
      `  unknown fields:      ${s.unknownFields.map((u) => `${u.field} (${count(u.records)})`).join(', ')}`,
      '                       ignored; import them with --map field=metric, silence them with --map field=-',
    );
  }
  if (s.firstTs !== null && s.lastTs !== null) {
    lines.push(`  time range:          ${s.firstTs.toISOString()} … ${s.lastTs.toISOString()}`);
  }
  if (s.rollup !== null) {
    lines.push(
      s.rollup.ran
        ? `  rollups:             ${count(s.rollup.buckets1m)} 1-minute and ${count(s.rollup.buckets1h)} 1-hour buckets`
        : '  rollups:             another instance is rolling up; its next run covers the import',
    );
  }
  if (s.rollupError !== null) {
    lines.push(
      `  rollups:             FAILED: ${s.rollupError} (the rollup job of a running server will cover the import)`,
    );
  }
  if (s.aborted !== null) {
    lines.push(`  stopped:             ${s.aborted}`);
  }
  lines.push(`  time taken:          ${(s.durationMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}

function summaryJson(s: ImportSummary): unknown {
  return {
    file: s.file,
    format: s.format,
    records_read: s.recordsRead,
    samples_imported: s.samplesImported,
    duplicates_skipped: s.duplicatesSkipped,
    records_rejected: s.recordsRejected,
    rejections: s.rejections.map((r) => ({
      line: r.position.line,
      column: r.position.column ?? null,
      index: r.position.index ?? null,
      reason: r.reason,
    })),
    unknown_fields: s.unknownFields,
    first_ts: s.firstTs,
    last_ts: s.lastTs,
    aborted: s.aborted,
    rollup:
      s.rollup === null ? null : { ran: s.rollup.ran, buckets_1m: s.rollup.buckets1m, buckets_1h: s.rollup.buckets1h },
    rollup_error: s.rollupError,
    duration_ms: s.durationMs,
  };
}

/** Usage problems (exit 2) are found before the database is opened. */
async function checkUsage(file: string, opts: ImportJsonOptions): Promise<FieldMap> {
  try {
    const fieldMap = buildFieldMap(opts.map ?? []);
    if (opts.host !== undefined) {
      const problem = hostProblem(opts.host);
      if (problem !== undefined) {
        throw new CliExit(EXIT_CONFIG, `--host: ${problem}`);
      }
    }
    await checkImportFile(file);
    return fieldMap;
  } catch (error) {
    if (error instanceof AppError) {
      throw new CliExit(EXIT_CONFIG, error.message);
    }
    throw error;
  }
}

export function registerDataCommands(program: Command, config: () => Config): void {
  const data = program.command('data').description('bulk data: import metric history');

  data
    .command('import-json')
    .description(
      'import metric records of earlier tools from a JSON array or JSON-lines file ' +
        '(see "Legacy JSON import" in README.md for the field table)',
    )
    .argument('<file>', 'a JSON array of records or JSON-lines (one record per line)')
    .option('--host <name>', 'host of records without a "host" field')
    .option(
      '--map <field=metric>',
      'map a field to a metric, e.g. gpu_temp=gpu.temp_c or fs=disk.used_pct{mount="/data"}; field=- ignores it (repeatable)',
      collect,
    )
    .option('--json', 'print the summary as JSON')
    .option('--allow-partial', 'exit 0 even when some records were rejected')
    .option('--batch-size <n>', 'samples per database write', parseBatchSize, DEFAULT_IMPORT_BATCH_SIZE)
    // Usage errors (missing argument, bad option value) exit 2 like other bad usage.
    .exitOverride((error) => {
      throw new CliExit(error.exitCode === 0 ? 0 : EXIT_CONFIG, '');
    })
    .action(async (file: string, opts: ImportJsonOptions) => {
      const fieldMap = await checkUsage(file, opts);
      const cfg = config();
      const progress = progressLine();
      const summary = await withDatabase(cfg, async (database) => {
        const state = await new Migrator(database.db, await loadMigrations()).status();
        if (state.pending.length > 0 || state.checksumMismatches.length > 0) {
          throw new CliExit(
            EXIT_FAILURE,
            `the database is not up to date (${state.pending.length} pending, ` +
              `${state.checksumMismatches.length} edited migrations); run \`warden db migrate\` first`,
          );
        }
        const service = new ImportService(
          new IngestService(database.db, cfg.metrics),
          cfg.metrics,
          new RollupService(database.db, cfg.metrics),
        );
        try {
          return await service.importFile(file, {
            fieldMap,
            defaultHost: opts.host,
            batchSize: opts.batchSize,
            onProgress: progress.update,
          });
        } finally {
          progress.clear();
        }
      });
      print(opts.json === true, summaryJson(summary), describeSummary(summary));
      if (summary.aborted !== null) {
        throw new CliExit(EXIT_FAILURE, `import stopped at a syntax error: ${summary.aborted}`);
      }
      if (summary.rollupError !== null) {
        throw new CliExit(EXIT_FAILURE, `the samples were imported but the rollup run failed: ${summary.rollupError}`);
      }
      if (summary.recordsRejected > 0 && opts.allowPartial !== true) {
        throw new CliExit(
          EXIT_FAILURE,
          `${count(summary.recordsRejected)} records rejected (the others were imported; fix them and re-run, ` +
            'nothing is imported twice, or pass --allow-partial)',
        );
      }
    });
}
