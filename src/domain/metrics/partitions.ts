/**
 * Day partitions of `metric_samples`: `metric_samples_pYYYYMMDD` holds [that UTC day,
 * the next). Partitions are created ahead of time (today and the next PARTITIONS_AHEAD
 * days), so live samples never land in the default partition; samples outside every day
 * partition (imports of old data, a clock far off) go to `metric_samples_default`.
 *
 * Retention drops whole day partitions that end at or before the cutoff (a catalog
 * operation, however many rows) and deletes the rows before the cutoff from the default
 * partition. A day partition cannot be created while the default partition holds rows of
 * that day; such a day simply stays in the default partition.
 */
import { sql, type Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import type { Logger } from '../../logger.js';

const DAY_MS = 86_400_000;
/** Days after today that always have a partition. */
export const PARTITIONS_AHEAD = 3;
const PARTITION_NAME = /^metric_samples_p(\d{4})(\d{2})(\d{2})$/;

export interface DayPartition {
  readonly name: string;
  /** Start of the day (inclusive). */
  readonly from: Date;
  /** Start of the next day (exclusive). */
  readonly to: Date;
}

/** `metric_samples_p20261123` for any time on 2026-11-23 (UTC). */
export function partitionName(dayStartMs: number): string {
  return `metric_samples_p${new Date(dayStartMs).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

export function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** The day partition a table name stands for, or undefined for any other table. */
export function parsePartitionName(name: string): DayPartition | undefined {
  const match = PARTITION_NAME.exec(name);
  if (match === null) {
    return undefined;
  }
  const from = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return { name, from: new Date(from), to: new Date(from + DAY_MS) };
}

export class SamplePartitions {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly logger?: Logger,
  ) {}

  /** Existing day partitions, oldest first. */
  async list(): Promise<DayPartition[]> {
    const result = await sql<{ name: string }>`
      select c.relname as name
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'metric_samples'::regclass
    `.execute(this.db);
    return result.rows
      .map((r) => parsePartitionName(r.name))
      .filter((p): p is DayPartition => p !== undefined)
      .sort((a, b) => a.from.getTime() - b.from.getTime());
  }

  /**
   * Creates the missing day partitions from the day of `fromMs` to PARTITIONS_AHEAD days
   * after the day of `nowMs`. Returns the names created. A day whose rows already sit in
   * the default partition is skipped (logged at debug); a partition created at the same
   * moment by another instance counts as existing.
   */
  async ensure(nowMs: number, fromMs = nowMs): Promise<string[]> {
    const existing = new Set((await this.list()).map((p) => p.name));
    const created: string[] = [];
    for (let day = dayStart(fromMs); day <= dayStart(nowMs) + PARTITIONS_AHEAD * DAY_MS; day += DAY_MS) {
      const name = partitionName(day);
      if (existing.has(name)) {
        continue;
      }
      try {
        await sql`
          create table if not exists ${sql.table(name)} partition of metric_samples
          for values from (${sql.lit(new Date(day).toISOString())}) to (${sql.lit(new Date(day + DAY_MS).toISOString())})
        `.execute(this.db);
        created.push(name);
      } catch (error) {
        const code = (error as { code?: string }).code;
        // 23514: the default partition holds rows of that day; 42P07/23505: created concurrently.
        if (code === '23514' || code === '42P07' || code === '23505') {
          this.logger?.debug({ partition: name, code }, 'day partition not created');
          continue;
        }
        throw error;
      }
    }
    return created;
  }

  /** Day partitions that end at or before `cutoff`. */
  async expired(cutoff: Date): Promise<DayPartition[]> {
    return (await this.list()).filter((p) => p.to.getTime() <= cutoff.getTime());
  }

  /** Rows in a partition (for reports and dry runs). */
  async rowCount(partition: DayPartition): Promise<number> {
    const result = await sql<{ n: number }>`select count(*)::int8 as n from ${sql.table(partition.name)}`.execute(
      this.db,
    );
    return result.rows[0]?.n ?? 0;
  }

  /** Drops a day partition with its rows. */
  async drop(partition: DayPartition): Promise<void> {
    await sql`drop table if exists ${sql.table(partition.name)}`.execute(this.db);
  }
}
