/**
 * `warden data import-json` through the real CLI, on an embedded data directory and on a
 * PostgreSQL database: counts, stored values and times, idempotent re-runs, rejected
 * records with their lines, exit codes, --json, and a malformed array file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/index.js';
import { openDatabase } from '../../src/db/engine.js';
import { createMetrics } from '../../src/metrics.js';
import { runCli, show, SLOW } from '../helpers/cli.js';
import { clonePostgresDatabase, silentLogger, testConfig } from '../helpers/db.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-import-cli-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

interface StoredSample {
  host: string;
  metric: string;
  labels: Record<string, string>;
  ts: string;
  value: number;
}

function bySample(a: StoredSample, b: StoredSample): number {
  return (
    a.host.localeCompare(b.host) ||
    a.metric.localeCompare(b.metric) ||
    a.ts.localeCompare(b.ts) ||
    JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels))
  );
}

/** Every stored sample, in a stable order; opened after the CLI exited (it holds the data directory while running). */
async function storedSamples(config: Config): Promise<StoredSample[]> {
  const database = await openDatabase({
    config: config.database,
    logger: silentLogger,
    metrics: createMetrics({ defaultMetrics: false }),
  });
  try {
    const rows = await database.db
      .selectFrom('metric_samples')
      .innerJoin('metric_series', 'metric_series.id', 'metric_samples.series_id')
      .innerJoin('hosts', 'hosts.id', 'metric_series.host_id')
      .select(['hosts.name as host', 'metric_series.name as metric', 'metric_series.labels', 'ts', 'value'])
      .execute();
    return rows
      .map((r) => ({
        host: r.host,
        metric: r.metric,
        labels: r.labels,
        ts: r.ts.toISOString(),
        value: r.value,
      }))
      .sort(bySample);
  } finally {
    await database.close();
  }
}

// Old enough to be past the raw retention (30 days): only the 1-hour rollup retention admits it.
const baseMs = Math.floor((Date.now() - 45 * DAY) / HOUR) * HOUR;
const iso = (ms: number): string => new Date(ms).toISOString();

/** Three records: an ISO time with the host in the record, epoch seconds and epoch milliseconds with --host. */
function arrayFile(dir: string): string {
  const file = path.join(dir, 'legacy.json');
  const records = [
    { timestamp: iso(baseMs), host: 'old-web', cpu_percent: 12.5, memory_percent: 40, disk_percent: 71 },
    { ts: (baseMs + 60_000) / 1000, cpu: 13, network_in: 2048, gpu_temp: 60 },
    { time: baseMs + 120_000, cpu: 14.25, network_out: 512, gpu_temp: 61 },
  ];
  fs.writeFileSync(file, `[\n${records.map((r) => `  ${JSON.stringify(r)}`).join(',\n')}\n]\n`);
  return file;
}

const EXPECTED_ARRAY_SAMPLES: StoredSample[] = [
  { host: 'old-db', metric: 'cpu.usage_pct', labels: {}, ts: iso(baseMs + 60_000), value: 13 },
  { host: 'old-db', metric: 'cpu.usage_pct', labels: {}, ts: iso(baseMs + 120_000), value: 14.25 },
  { host: 'old-db', metric: 'net.rx_bytes_per_s', labels: {}, ts: iso(baseMs + 60_000), value: 2048 },
  { host: 'old-db', metric: 'net.tx_bytes_per_s', labels: {}, ts: iso(baseMs + 120_000), value: 512 },
  { host: 'old-web', metric: 'cpu.usage_pct', labels: {}, ts: iso(baseMs), value: 12.5 },
  { host: 'old-web', metric: 'disk.used_pct', labels: { mount: '/' }, ts: iso(baseMs), value: 71 },
  { host: 'old-web', metric: 'mem.used_pct', labels: {}, ts: iso(baseMs), value: 40 },
];

describe('warden data import-json on an embedded data directory', () => {
  const dataDir = tempDir();
  const env = { WARDEN_DATA_DIR: dataDir };
  const files = tempDir();

  it(
    'refuses while migrations are pending, then imports an array file with the right values and times',
    { timeout: SLOW },
    async () => {
      const file = arrayFile(files);
      const refused = await runCli(['data', 'import-json', file, '--host', 'old-db'], env);
      expect(refused.code, show(refused)).toBe(1);
      expect(refused.stderr).toContain('run `warden db migrate` first');

      const migrated = await runCli(['db', 'migrate'], env);
      expect(migrated.code, show(migrated)).toBe(0);

      const imported = await runCli(['data', 'import-json', file, '--host', 'old-db'], env);
      expect(imported.code, show(imported)).toBe(0);
      expect(imported.stdout).toContain(`imported ${file} (JSON array)`);
      expect(imported.stdout).toMatch(/records read: +3$/m);
      expect(imported.stdout).toMatch(/samples imported: +7$/m);
      expect(imported.stdout).toMatch(/duplicates skipped: +0$/m);
      expect(imported.stdout).toMatch(/records rejected: +0$/m);
      expect(imported.stdout).toMatch(/unknown fields: +gpu_temp \(2\)/);
      expect(imported.stdout).toMatch(/rollups: +\d+ 1-minute and \d+ 1-hour buckets/);
      // Nothing but the summary: progress is drawn only on a terminal.
      expect(imported.stderr).toBe('');
      expect(await storedSamples(testConfig(env))).toEqual(EXPECTED_ARRAY_SAMPLES);

      const again = await runCli(['data', 'import-json', file, '--host', 'old-db', '--json'], env);
      expect(again.code, show(again)).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({
        format: 'array',
        records_read: 3,
        samples_imported: 0,
        duplicates_skipped: 7,
        records_rejected: 0,
        first_ts: iso(baseMs),
        last_ts: iso(baseMs + 120_000),
      });
    },
  );

  it(
    'a JSON-lines file with bad records: exit 1 naming lines and reasons, good records stored; --allow-partial exits 0',
    { timeout: SLOW },
    async () => {
      const file = path.join(files, 'partial.jsonl');
      const t = baseMs + DAY;
      fs.writeFileSync(
        file,
        [
          JSON.stringify({ ts: t / 1000, host: 'old-cache', memory: 61 }),
          JSON.stringify({ ts: t / 1000, host: 'old-cache', memory: 'full' }),
          '',
          '{"ts": 1, "host": "old-cache", "memory": }',
          JSON.stringify({ ts: t / 1000 + 60, memory: 62 }),
          JSON.stringify({ ts: t / 1000 + 120, host: 'old-cache', memory: 63, load: 0.5 }),
        ].join('\n') + '\n',
      );
      const partial = await runCli(['data', 'import-json', file], env);
      expect(partial.code, show(partial)).toBe(1);
      expect(partial.stdout).toMatch(/records read: +5$/m);
      expect(partial.stdout).toMatch(/samples imported: +3$/m);
      expect(partial.stdout).toMatch(/records rejected: +3$/m);
      expect(partial.stdout).toContain('line 2: memory must be a number (mapped to mem.used_pct), got "full"');
      expect(partial.stdout).toMatch(/line 4, column 42: malformed JSON: Unexpected token '}'/);
      expect(partial.stdout).toContain('line 5: record has no "host" field and no --host was given');
      expect(partial.stderr).toContain('3 records rejected');

      const samples = (await storedSamples(testConfig(env))).filter((s) => s.host === 'old-cache');
      expect(samples).toEqual([
        { host: 'old-cache', metric: 'load.1', labels: {}, ts: iso(t + 120_000), value: 0.5 },
        { host: 'old-cache', metric: 'mem.used_pct', labels: {}, ts: iso(t), value: 61 },
        { host: 'old-cache', metric: 'mem.used_pct', labels: {}, ts: iso(t + 120_000), value: 63 },
      ]);

      const allowed = await runCli(['data', 'import-json', file, '--allow-partial', '--json'], env);
      expect(allowed.code, show(allowed)).toBe(0);
      const summary = JSON.parse(allowed.stdout) as {
        samples_imported: number;
        duplicates_skipped: number;
        rejections: { line: number; reason: string }[];
      };
      expect(summary.samples_imported).toBe(0);
      expect(summary.duplicates_skipped).toBe(3);
      expect(summary.rejections.map((r) => r.line)).toEqual([2, 4, 5]);
    },
  );

  it('a malformed array file exits 1 with the line and column; bad usage exits 2', { timeout: SLOW }, async () => {
    const file = path.join(files, 'broken.json');
    fs.writeFileSync(file, `[\n  {"ts": ${baseMs / 1000}, "host": "h", "cpu": 1},\n  {"ts": 1 "host": "h"}\n]\n`);
    const broken = await runCli(['data', 'import-json', file], env);
    expect(broken.code, show(broken)).toBe(1);
    expect(broken.stdout).toContain(
      `element [1] (line 3, column 12): malformed JSON: Expected ',' or '}' after property value`,
    );
    expect(broken.stderr).toContain('import stopped at a syntax error');

    const missing = await runCli(['data', 'import-json', path.join(files, 'nope.json')], env);
    expect(missing.code, show(missing)).toBe(2);
    expect(missing.stderr).toContain('nope.json does not exist');

    const badMap = await runCli(['data', 'import-json', file, '--map', 'gpu_temp=GPU temp'], env);
    expect(badMap.code, show(badMap)).toBe(2);
    expect(badMap.stderr).toContain('--map "gpu_temp=GPU temp": metric name must match');
  });
});

describe('warden data import-json on PostgreSQL', () => {
  let env: Record<string, string>;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const clone = await clonePostgresDatabase();
    env = { DATABASE_URL: clone.url, WARDEN_DATA_DIR: tempDir() };
    drop = clone.drop;
  });
  afterAll(async () => {
    await drop();
  });

  it('imports an array file and a JSON-lines file; a re-run imports nothing new', { timeout: SLOW }, async () => {
    const files = tempDir();
    const file = arrayFile(files);
    const imported = await runCli(['data', 'import-json', file, '--host', 'old-db', '--json'], env);
    expect(imported.code, show(imported)).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ records_read: 3, samples_imported: 7, duplicates_skipped: 0 });

    const lines = path.join(files, 'more.jsonl');
    fs.writeFileSync(
      lines,
      `${JSON.stringify({ created_at: iso(baseMs + 2 * DAY), host: 'old-web', disk: 72, fs_data: 10 })}\n`,
    );
    const mapped = await runCli(['data', 'import-json', lines, '--map', 'fs_data=disk.used_pct{mount="/data"}'], env);
    expect(mapped.code, show(mapped)).toBe(0);
    expect(mapped.stdout).toMatch(/samples imported: +2$/m);

    expect(await storedSamples(testConfig(env))).toEqual(
      [
        ...EXPECTED_ARRAY_SAMPLES,
        { host: 'old-web', metric: 'disk.used_pct', labels: { mount: '/' }, ts: iso(baseMs + 2 * DAY), value: 72 },
        { host: 'old-web', metric: 'disk.used_pct', labels: { mount: '/data' }, ts: iso(baseMs + 2 * DAY), value: 10 },
      ].sort(bySample),
    );

    const again = await runCli(['data', 'import-json', file, '--host', 'old-db'], env);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toMatch(/samples imported: +0$/m);
    expect(again.stdout).toMatch(/duplicates skipped: +7$/m);
  });
});
