import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IngestService } from '../../../src/domain/metrics/ingest-service.js';
import {
  PARTITIONS_AHEAD,
  SamplePartitions,
  dayStart,
  parsePartitionName,
  partitionName,
} from '../../../src/domain/metrics/partitions.js';
import { RetentionService } from '../../../src/domain/metrics/retention-service.js';
import { RollupService } from '../../../src/domain/metrics/rollup-service.js';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../helpers/db.js';

const DAY = 86_400_000;

describe('day partition names', () => {
  it('name a UTC day and parse back to its range', () => {
    const ms = Date.UTC(2026, 10, 23, 17, 5);
    expect(partitionName(dayStart(ms))).toBe('metric_samples_p20261123');
    expect(parsePartitionName('metric_samples_p20261123')).toEqual({
      name: 'metric_samples_p20261123',
      from: new Date(Date.UTC(2026, 10, 23)),
      to: new Date(Date.UTC(2026, 10, 24)),
    });
    expect(parsePartitionName('metric_samples_default')).toBeUndefined();
  });
});

describe.each(ENGINES)('raw sample partitions on %s', (engine) => {
  let t: TestDatabase;
  let partitions: SamplePartitions;
  let ingest: IngestService;
  const now = Date.now();

  async function partitionOf(ts: number): Promise<string | undefined> {
    const rows = await sql<{ part: string }>`
      select tableoid::regclass::text as part from metric_samples where ts = ${new Date(ts)}`.execute(t.database.db);
    return rows.rows[0]?.part;
  }

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    partitions = new SamplePartitions(t.database.db);
    ingest = new IngestService(t.database.db, t.config.metrics);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('creates today and the next days ahead once, and live samples land in their day', async () => {
    // Rows of three days ago already sit in the default partition: that day is skipped, not an error.
    await ingest.ingest([{ host: 'h', metric: 'load.1', value: 1, ts: now - 3 * DAY }]);
    const created = await partitions.ensure(now, now - 3 * DAY);
    expect(created).not.toContain(partitionName(dayStart(now - 3 * DAY)));
    expect(created).toContain(partitionName(dayStart(now - 2 * DAY)));
    expect(created).toContain(partitionName(dayStart(now)));
    expect(created).toContain(partitionName(dayStart(now) + PARTITIONS_AHEAD * DAY));
    expect(await partitions.ensure(now)).toEqual([]);

    await ingest.ingest([
      { host: 'h', metric: 'load.1', value: 2, ts: now },
      { host: 'h', metric: 'load.1', value: 3, ts: now - 2 * DAY },
      { host: 'h', metric: 'load.1', value: 4, ts: now - 10 * DAY },
    ]);
    expect(await partitionOf(now)).toBe(partitionName(dayStart(now)));
    expect(await partitionOf(now - 2 * DAY)).toBe(partitionName(dayStart(now - 2 * DAY)));
    expect(await partitionOf(now - 3 * DAY)).toBe('metric_samples_default');
    expect(await partitionOf(now - 10 * DAY)).toBe('metric_samples_default');
    // Re-sent samples are duplicates in a partition too.
    const again = await ingest.ingest([{ host: 'h', metric: 'load.1', value: 2, ts: now }]);
    expect(again.duplicates).toBe(1);
  });

  it('retention drops whole expired day partitions and deletes old rows from the default partition', async () => {
    const retention = new RetentionService(t.database.db, t.config.metrics, t.config.health);
    // Before the first rollup run nothing raw is removed: it would be lost without rollups.
    expect((await retention.cleanup({ daysOld: 1 })).tables.find((x) => x.table === 'metric_samples')?.rows).toBe(0);
    await new RollupService(t.database.db, t.config.metrics).run();
    const dry = await retention.cleanup({ daysOld: 1, dryRun: true });
    const samplesOf = (r: typeof dry): number | undefined => r.tables.find((x) => x.table === 'metric_samples')?.rows;
    // Cut at midnight one day back: the samples of 2, 3 and 10 days ago.
    expect(samplesOf(dry)).toBe(3);
    expect((await partitions.list()).some((p) => p.name === partitionName(dayStart(now - 2 * DAY)))).toBe(true);

    const report = await retention.cleanup({ daysOld: 1 });
    expect(samplesOf(report)).toBe(3);
    const names = (await partitions.list()).map((p) => p.name);
    expect(names).not.toContain(partitionName(dayStart(now - 2 * DAY)));
    expect(names).toContain(partitionName(dayStart(now)));
    const left = await sql<{ ts: Date }>`select ts from metric_samples order by ts`.execute(t.database.db);
    expect(left.rows.map((r) => r.ts.getTime())).toEqual([now]);
  });
});
