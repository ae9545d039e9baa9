/**
 * Legacy JSON import: streams a file of old metric records into Warden.
 *
 * - Format: the first character that is not whitespace decides: `[` is a JSON array, read
 *   through a streaming splitter (never held whole); anything else is JSON-lines, read line
 *   by line.
 * - Records become samples through `legacy-import.ts`; a record that cannot be used is
 *   rejected with its position and reason and the import goes on. A line of JSON-lines
 *   that does not parse is one rejected record; a syntax error in an array file stops the
 *   import (the rest of the file cannot be split reliably), after storing what came before.
 * - Samples are stored in batches through `IngestService.ingest`, accepting times back to
 *   the 1-hour rollup retention. Good records are stored even when others are rejected;
 *   re-running stores nothing twice (duplicates are counted).
 * - When anything was stored, the rollup job runs once at the end so the 1-minute and
 *   1-hour rollups cover the imported range before raw retention removes old samples.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import readline from 'node:readline';
import type { MetricsConfig } from '../../config/index.js';
import { BatchValidationError, NotFoundError, ValidationError } from '../../errors.js';
import type { IngestService } from './ingest-service.js';
import { JsonArraySplitter, formatPosition, parseJsonLine, type RecordPosition } from './json-records.js';
import { mapLegacyRecord, type FieldMap, type RecordContext } from './legacy-import.js';
import { MAX_FUTURE_SKEW_MS, type SampleInput } from './types.js';

/** Default samples per ingest call. */
export const DEFAULT_IMPORT_BATCH_SIZE = 5000;
/** The summary lists this many rejections (all are counted). */
export const MAX_LISTED_REJECTIONS = 20;
/** Distinct unknown field names tracked (a file with generated keys would grow without bound). */
const MAX_UNKNOWN_FIELDS = 200;
/** Progress is reported at least every this many records. */
const PROGRESS_EVERY_RECORDS = 10_000;
const DAY_MS = 86_400_000;

export type ImportFormat = 'array' | 'json-lines';

/** The rollup job as the import needs it (RollupService). */
export interface RollupRunner {
  run(): Promise<{ readonly ran?: boolean; readonly buckets1m: number; readonly buckets1h: number }>;
}

export interface ImportOptions {
  readonly fieldMap: FieldMap;
  /** Host of records without a `host` field. */
  readonly defaultHost?: string;
  /** Samples per ingest call (default 5,000). */
  readonly batchSize?: number;
  /** Called after every batch and every 10,000 records; the caller throttles its output. */
  readonly onProgress?: (progress: ImportProgress) => void;
}

export interface ImportProgress {
  /** `reading` the file and storing samples, or `rollup`: the rollup run after the last batch. */
  readonly phase: 'reading' | 'rollup';
  readonly recordsRead: number;
  readonly samplesImported: number;
  readonly duplicatesSkipped: number;
  readonly recordsRejected: number;
}

export interface ImportRejection {
  readonly position: RecordPosition;
  /** Why, without the position (`formatPosition` gives "line 7" or "element [3] (line 9, column 3)"). */
  readonly reason: string;
}

export interface ImportSummary extends Omit<ImportProgress, 'phase'> {
  readonly file: string;
  readonly format: ImportFormat;
  /** The first 20 rejections, in file order. */
  readonly rejections: readonly ImportRejection[];
  /** Fields no mapping knows, with the number of records carrying each, most frequent first. */
  readonly unknownFields: readonly { readonly field: string; readonly records: number }[];
  /** Earliest and latest time of the records stored (or found already stored). */
  readonly firstTs: Date | null;
  readonly lastTs: Date | null;
  /** Set when a syntax error in an array file stopped the import. */
  readonly aborted: string | null;
  /** The rollup run after the import; null when nothing new was stored. */
  readonly rollup: { readonly ran: boolean; readonly buckets1m: number; readonly buckets1h: number } | null;
  /** Set when the rollup run failed (the samples are stored; the rollup job will cover them). */
  readonly rollupError: string | null;
  readonly durationMs: number;
}

/** Throws NotFoundError or ValidationError unless `file` is a readable regular file. */
export async function checkImportFile(file: string): Promise<void> {
  let info;
  try {
    info = await stat(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`${file} does not exist`);
    }
    throw new ValidationError('file', `${file} cannot be read: ${(error as Error).message}`);
  }
  if (info.isDirectory()) {
    throw new ValidationError('file', `${file} is a directory; give a JSON array or JSON-lines file`);
  }
  if (!info.isFile()) {
    throw new ValidationError('file', `${file} is not a regular file`);
  }
}

/** `[` as the first non-whitespace character (after a BOM) means a JSON array. */
export async function detectFormat(file: string): Promise<ImportFormat> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    let position = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) {
        return 'json-lines';
      }
      let start = 0;
      if (position === 0 && buffer[0] === 0xef && buffer[1] === 0xbb && buffer[2] === 0xbf) {
        start = 3;
      }
      for (let i = start; i < bytesRead; i += 1) {
        const byte = buffer[i];
        if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) {
          return byte === 0x5b ? 'array' : 'json-lines';
        }
      }
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/** One import run's counters and pending batch. */
class ImportRun {
  recordsRead = 0;
  samplesImported = 0;
  duplicatesSkipped = 0;
  recordsRejected = 0;
  readonly rejections: ImportRejection[] = [];
  readonly unknown = new Map<string, number>();
  firstTs = Infinity;
  lastTs = -Infinity;
  /** Pending samples and, per sample, the index of its record in `pendingRecords`. */
  pending: SampleInput[] = [];
  owners: number[] = [];
  pendingRecords: { position: RecordPosition; tsMs: number }[] = [];

  reject(position: RecordPosition, reason: string): void {
    this.recordsRejected += 1;
    if (this.rejections.length < MAX_LISTED_REJECTIONS) {
      this.rejections.push({ position, reason });
    }
  }

  countUnknown(fields: readonly string[]): void {
    for (const field of fields) {
      const count = this.unknown.get(field);
      if (count !== undefined) {
        this.unknown.set(field, count + 1);
      } else if (this.unknown.size < MAX_UNKNOWN_FIELDS) {
        this.unknown.set(field, 1);
      }
    }
  }

  progress(phase: ImportProgress['phase'] = 'reading'): ImportProgress {
    return {
      phase,
      recordsRead: this.recordsRead,
      samplesImported: this.samplesImported,
      duplicatesSkipped: this.duplicatesSkipped,
      recordsRejected: this.recordsRejected,
    };
  }
}

export class ImportService {
  constructor(
    private readonly ingest: IngestService,
    private readonly config: MetricsConfig,
    private readonly rollup: RollupRunner | null,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /**
   * Imports `file` (a JSON array or JSON-lines). Resolves with the summary once every good
   * record is stored and the rollups ran; rejected records are in the summary, not thrown.
   * Throws NotFoundError/ValidationError for a missing file or a directory.
   */
  async importFile(file: string, options: ImportOptions): Promise<ImportSummary> {
    const started = performance.now();
    await checkImportFile(file);
    const format = await detectFormat(file);
    const now = this.clock();
    const nowMs = now.getTime();
    const oldestMs = nowMs - this.config.retention1hDays * DAY_MS;
    const context: RecordContext = {
      fieldMap: options.fieldMap,
      defaultHost: options.defaultHost,
      latestMs: nowMs + MAX_FUTURE_SKEW_MS,
      oldestMs,
    };
    const batchSize = options.batchSize ?? DEFAULT_IMPORT_BATCH_SIZE;
    const run = new ImportRun();
    const report = (): void => options.onProgress?.(run.progress());

    const flush = async (): Promise<void> => {
      if (run.pending.length === 0) {
        return;
      }
      await this.store(run, { oldestMs, now });
      report();
    };
    const accept = async (position: RecordPosition, value: unknown): Promise<void> => {
      run.recordsRead += 1;
      const outcome = mapLegacyRecord(value, context);
      run.countUnknown(outcome.unknownFields);
      if (!outcome.ok) {
        run.reject(position, outcome.reason);
      } else if (outcome.record.samples.length > 0) {
        const owner = run.pendingRecords.length;
        run.pendingRecords.push({ position, tsMs: outcome.record.tsMs });
        for (const sample of outcome.record.samples) {
          run.pending.push(sample);
          run.owners.push(owner);
        }
        // A record's samples stay in one batch, so a record is stored whole or not at all.
        if (run.pending.length >= batchSize) {
          await flush();
        }
      }
      if (run.recordsRead % PROGRESS_EVERY_RECORDS === 0) {
        report();
      }
    };

    let aborted: string | null = null;
    const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 256 * 1024 });
    try {
      if (format === 'json-lines') {
        const lines = readline.createInterface({ input: stream, crlfDelay: Infinity });
        let line = 0;
        for await (const text of lines) {
          line += 1;
          const parsed = parseJsonLine(text, line);
          if (parsed === undefined) {
            continue;
          }
          if (parsed.ok) {
            await accept({ line }, parsed.value);
          } else {
            run.recordsRead += 1;
            run.reject(parsed.problem.position, `malformed JSON: ${parsed.problem.message}`);
          }
        }
      } else {
        const splitter = new JsonArraySplitter();
        for await (const chunk of stream) {
          for (const element of splitter.push(chunk as string)) {
            await accept(element.position, element.value);
          }
          if (splitter.problem !== undefined) {
            break;
          }
        }
        if (splitter.problem === undefined) {
          for (const element of splitter.end()) {
            await accept(element.position, element.value);
          }
        }
        const problem = splitter.problem;
        if (problem !== undefined) {
          run.recordsRead += 1;
          run.reject(problem.position, `malformed JSON: ${problem.message}`);
          aborted =
            `${formatPosition(problem.position)}: ${problem.message}; ` +
            'the rest of the file was not read (records before it were imported)';
        }
      }
      await flush();
    } finally {
      stream.destroy();
    }
    report();

    let rollup: ImportSummary['rollup'] = null;
    let rollupError: string | null = null;
    if (run.samplesImported > 0 && this.rollup !== null) {
      options.onProgress?.(run.progress('rollup'));
      try {
        const result = await this.rollup.run();
        rollup = { ran: result.ran ?? true, buckets1m: result.buckets1m, buckets1h: result.buckets1h };
      } catch (error) {
        rollupError = error instanceof Error ? error.message : String(error);
      }
    }

    return {
      file,
      format,
      recordsRead: run.recordsRead,
      samplesImported: run.samplesImported,
      duplicatesSkipped: run.duplicatesSkipped,
      recordsRejected: run.recordsRejected,
      rejections: run.rejections,
      unknownFields: [...run.unknown]
        .map(([field, records]) => ({ field, records }))
        .sort((a, b) => b.records - a.records || a.field.localeCompare(b.field)),
      firstTs: Number.isFinite(run.firstTs) ? new Date(run.firstTs) : null,
      lastTs: Number.isFinite(run.lastTs) ? new Date(run.lastTs) : null,
      aborted,
      rollup,
      rollupError,
      durationMs: Math.round(performance.now() - started),
    };
  }

  /**
   * Stores the pending batch. The records were checked as ingest checks them, so a batch
   * is not expected to be refused; if ingest still refuses some samples (a rule added
   * there later), their records are rejected with ingest's message and the rest is stored.
   */
  private async store(run: ImportRun, options: { oldestMs: number; now: Date }): Promise<void> {
    let samples = run.pending;
    let owners = run.owners;
    const records = run.pendingRecords;
    const rejected = new Set<number>();
    run.pending = [];
    run.owners = [];
    run.pendingRecords = [];
    while (samples.length > 0) {
      try {
        const result = await this.ingest.ingest(samples, { ...options, seenAt: 'sample-time' });
        run.samplesImported += result.inserted;
        run.duplicatesSkipped += result.duplicates;
        break;
      } catch (error) {
        if (!(error instanceof BatchValidationError) || error.problems.length === 0) {
          throw error;
        }
        const before = rejected.size;
        for (const problem of error.problems) {
          const owner = owners[problem.index];
          const record = owner === undefined ? undefined : records[owner];
          if (owner !== undefined && record !== undefined && !rejected.has(owner)) {
            rejected.add(owner);
            run.reject(record.position, `${problem.field.replace(/^samples\[\d+\]\./, '')} ${problem.message}`);
          }
        }
        if (rejected.size === before) {
          throw error;
        }
        const keep = samples.map((_, i) => !rejected.has(owners[i] ?? -1));
        samples = samples.filter((_, i) => keep[i]);
        owners = owners.filter((_, i) => keep[i]);
      }
    }
    records.forEach((record, owner) => {
      if (!rejected.has(owner)) {
        run.firstTs = Math.min(run.firstTs, record.tsMs);
        run.lastTs = Math.max(run.lastTs, record.tsMs);
      }
    });
  }
}
