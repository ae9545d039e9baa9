/**
 * ImportService on both engines: batches keep a record whole, good records are stored
 * even when others are rejected, re-running stores nothing twice, the rollups cover the
 * imported range, and a sample ingest refuses rejects only its own record.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError, ValidationError } from '../../../src/errors.js';
import { ImportService, checkImportFile } from '../../../src/domain/metrics/import-service.js';
import { IngestService } from '../../../src/domain/metrics/ingest-service.js';
import { buildFieldMap } from '../../../src/domain/metrics/legacy-import.js';
import { RollupService } from '../../../src/domain/metrics/rollup-service.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-import-service-'));
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
function writeFile(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('checkImportFile', () => {
  it('names a missing file and refuses a directory', async () => {
    await expect(checkImportFile(path.join(dir, 'nope.json'))).rejects.toThrow(NotFoundError);
    await expect(checkImportFile(path.join(dir, 'nope.json'))).rejects.toThrow('nope.json does not exist');
    await expect(checkImportFile(dir)).rejects.toThrow(ValidationError);
    await expect(checkImportFile(dir)).rejects.toThrow('is a directory');
  });
});

describe.each(ENGINES)('ImportService on %s', (engine) => {
  let t: TestDatabase;
  let rollupRuns = 0;
  let service: (fieldMap?: ReturnType<typeof buildFieldMap>) => ImportService;
  // 40 days back: older than the raw retention (30 days), within the 1-hour rollup retention.
  const baseMs = Math.floor((Date.now() - 40 * DAY) / HOUR) * HOUR;

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    const rollups = new RollupService(t.database.db, t.config.metrics);
    const counting = {
      run: () => {
        rollupRuns += 1;
        return rollups.run();
      },
    };
    service = () => new ImportService(new IngestService(t.database.db, t.config.metrics), t.config.metrics, counting);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('imports in batches, keeps good records when others fail, rolls up once, and re-runs idempotently', async () => {
    const lines = [];
    for (let i = 0; i < 7; i += 1) {
      lines.push(JSON.stringify({ ts: (baseMs + i * 60_000) / 1000, host: 'legacy-1', cpu: i, memory: 50 + i }));
    }
    lines.splice(3, 0, JSON.stringify({ ts: baseMs / 1000, host: 'legacy-1', cpu: 'n/a' }));
    const file = writeFile('batches.jsonl', `${lines.join('\n')}\n`);
    const progress: string[] = [];

    const first = await service().importFile(file, {
      fieldMap: buildFieldMap([]),
      batchSize: 3, // two samples per record: a batch closes after every second record
      onProgress: (p) => progress.push(`${p.phase} ${p.samplesImported}`),
    });
    expect(first).toMatchObject({
      format: 'json-lines',
      recordsRead: 8,
      samplesImported: 14,
      duplicatesSkipped: 0,
      recordsRejected: 1,
      aborted: null,
      rollupError: null,
      firstTs: new Date(baseMs),
      lastTs: new Date(baseMs + 6 * 60_000),
    });
    expect(first.rejections).toEqual([
      { position: { line: 4 }, reason: 'cpu must be a number (mapped to cpu.usage_pct), got "n/a"' },
    ]);
    // After each batch, at the end, and before the rollup run.
    expect(progress).toEqual(['reading 4', 'reading 8', 'reading 12', 'reading 14', 'reading 14', 'rollup 14']);
    expect(rollupRuns).toBe(1);
    expect(first.rollup?.ran).toBe(true);

    const hours = await t.database.db
      .selectFrom('metric_rollups_1h')
      .innerJoin('metric_series', 'metric_series.id', 'metric_rollups_1h.series_id')
      .select(['metric_series.name', 'bucket', 'count', 'sum'])
      .orderBy('metric_series.name')
      .execute();
    expect(hours).toEqual([
      { name: 'cpu.usage_pct', bucket: new Date(baseMs), count: 7, sum: 21 },
      { name: 'mem.used_pct', bucket: new Date(baseMs), count: 7, sum: 371 },
    ]);
    // An imported host was seen when its records were written, not now: it does not look live.
    const host = await t.database.db
      .selectFrom('hosts')
      .select(['first_seen_at', 'last_seen_at'])
      .where('name', '=', 'legacy-1')
      .executeTakeFirstOrThrow();
    expect(host).toEqual({ first_seen_at: new Date(baseMs), last_seen_at: new Date(baseMs + 6 * 60_000) });

    const again = await service().importFile(file, { fieldMap: buildFieldMap([]), batchSize: 3 });
    expect(again).toMatchObject({ samplesImported: 0, duplicatesSkipped: 14, recordsRejected: 1, rollup: null });
    expect(rollupRuns).toBe(1);
  });

  it('a record whose sample ingest refuses is rejected alone; the rest of its batch is stored', async () => {
    // A map entry that bypasses --map parsing, so ingest itself refuses the metric name.
    const fieldMap = new Map([...buildFieldMap([]), ['bad_field', { metric: 'Not A Metric', labels: {} }]]);
    const file = writeFile(
      'refused.json',
      JSON.stringify([
        { ts: baseMs + DAY, host: 'legacy-2', cpu: 1 },
        { ts: baseMs + DAY, host: 'legacy-2', memory: 2, bad_field: 3 },
        { ts: baseMs + DAY + 60_000, host: 'legacy-2', cpu: 4 },
      ]),
    );
    const summary = await service().importFile(file, { fieldMap });
    expect(summary).toMatchObject({ format: 'array', recordsRead: 3, samplesImported: 2, recordsRejected: 1 });
    expect(summary.rejections[0]?.position).toMatchObject({ index: 1 });
    expect(summary.rejections[0]?.reason).toMatch(/^metric must match/);
  });

  it('a syntax error in an array file stops the import after storing the records before it', async () => {
    const broken = `  {"ts": ${baseMs + 2 * DAY}, "host": "legacy-3", "cpu": }`;
    const file = writeFile(
      'broken.json',
      `[\n  {"ts": ${baseMs + 2 * DAY}, "host": "legacy-3", "cpu": 1},\n${broken}\n]\n`,
    );
    const summary = await service().importFile(file, { fieldMap: buildFieldMap([]) });
    expect(summary).toMatchObject({ recordsRead: 2, samplesImported: 1, recordsRejected: 1 });
    const column = broken.indexOf('}') + 1;
    expect(summary.rejections[0]?.position).toEqual({ line: 3, column, index: 1 });
    expect(summary.aborted).toMatch(
      new RegExp(`^element \\[1\\] \\(line 3, column ${column}\\): Unexpected token '}'`),
    );
  });
});
