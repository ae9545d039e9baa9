/** `warden db cleanup` on an embedded data directory: a dry run counts, a real run removes, per table. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/index.js';
import { openDatabase, type Database } from '../../src/db/engine.js';
import { IngestService } from '../../src/domain/metrics/ingest-service.js';
import { RollupService } from '../../src/domain/metrics/rollup-service.js';
import { createMetrics } from '../../src/metrics.js';
import { runCli, show, SLOW } from '../helpers/cli.js';
import { silentLogger, testConfig } from '../helpers/db.js';

const DAY = 86_400_000;

interface CleanupJson {
  dry_run: boolean;
  total_rows: number;
  tables: { table: string; rows: number; cutoff: string }[];
}

describe('warden db cleanup', () => {
  let dataDir: string;

  /** Opens the CLI's data directory in this process (the CLI is not running then). */
  async function withDataDir<T>(fn: (database: Database, config: Config) => Promise<T>): Promise<T> {
    const config = testConfig({ WARDEN_DATA_DIR: dataDir });
    const metrics = createMetrics({ defaultMetrics: false });
    const database = await openDatabase({ config: config.database, logger: silentLogger, metrics });
    try {
      return await fn(database, config);
    } finally {
      await database.close();
    }
  }

  const sampleCount = (): Promise<number> =>
    withDataDir(async (database) => {
      const rows = await sql<{ n: number }>`select count(*)::int8 as n from metric_samples`.execute(database.db);
      return rows.rows[0]?.n ?? -1;
    });

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cli-cleanup-'));
    const migrated = await runCli(['db', 'migrate'], { WARDEN_DATA_DIR: dataDir });
    expect(migrated.code, show(migrated)).toBe(0);
    await withDataDir(async (database, config) => {
      const now = Date.now();
      await new IngestService(database.db, config.metrics).ingest([
        { host: 'web-1', metric: 'load.1', value: 1, ts: now - 20 * DAY },
        { host: 'web-1', metric: 'load.1', value: 2, ts: now - 15 * DAY },
        { host: 'web-1', metric: 'load.1', value: 3, ts: now - DAY },
      ]);
      await new RollupService(database.db, config.metrics).run();
    });
  }, SLOW);
  afterAll(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('--dry-run --json counts rows per table and removes nothing', { timeout: SLOW }, async () => {
    const result = await runCli(['db', 'cleanup', '--days-old', '10', '--dry-run', '--json'], {
      WARDEN_DATA_DIR: dataDir,
    });
    expect(result.code, show(result)).toBe(0);
    const report = JSON.parse(result.stdout) as CleanupJson;
    expect(report.dry_run).toBe(true);
    expect(report.tables.find((t) => t.table === 'metric_samples')?.rows).toBe(2);
    expect(report.tables.map((t) => t.table)).toEqual(
      expect.arrayContaining(['metric_samples', 'metric_rollups_1m', 'metric_rollups_1h', 'health_checks']),
    );
    expect(await sampleCount()).toBe(3);
  });

  it('removes what is older than --days-old and prints rows per table', { timeout: SLOW }, async () => {
    const result = await runCli(['db', 'cleanup', '--days-old', '10'], { WARDEN_DATA_DIR: dataDir });
    expect(result.code, show(result)).toBe(0);
    expect(result.stdout).toMatch(/metric_samples\s+removed\s+2 rows older than/);
    expect(await sampleCount()).toBe(1);
    const bad = await runCli(['db', 'cleanup', '--days-old', 'ten'], { WARDEN_DATA_DIR: dataDir });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('expected a positive integer');
  });
});
