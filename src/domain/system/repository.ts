/** Catalog queries about Warden's own database: sizes, row estimates, counts, cache hits. */
import { sql, type Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';

export interface TableStats {
  readonly table: string;
  readonly rowEstimate: number;
  readonly totalBytes: number;
}

/** Tables below this estimate are counted exactly for `/status`; larger ones report the estimate. */
const EXACT_COUNT_LIMIT = 100_000;

export class SystemRepository {
  constructor(private readonly db: Kysely<DB>) {}

  async databaseSizeBytes(): Promise<number> {
    const result = await sql<{ bytes: number }>`select pg_database_size(current_database())::int8 as bytes`.execute(
      this.db,
    );
    return result.rows[0]?.bytes ?? 0;
  }

  /**
   * Per-table row estimate and total size (table, indexes, TOAST). The estimate is
   * reltuples, which is -1 before the first ANALYZE; then the live-tuple counter is used.
   */
  async tableStats(): Promise<TableStats[]> {
    const result = await sql<{ table: string; estimate: number; live: number | null; bytes: number }>`
      select c.relname as table,
             c.reltuples::int8 as estimate,
             s.n_live_tup::int8 as live,
             pg_total_relation_size(c.oid)::int8 as bytes
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_stat_user_tables s on s.relid = c.oid
      where n.nspname = 'public' and c.relkind in ('r', 'p')
      order by c.relname
    `.execute(this.db);
    return result.rows.map((r) => ({
      table: r.table,
      rowEstimate: r.estimate >= 0 ? r.estimate : (r.live ?? 0),
      totalBytes: r.bytes,
    }));
  }

  /** Row count per table: exact for small tables, the estimate for large ones. */
  async rowCounts(): Promise<{ table: string; rows: number; exact: boolean }[]> {
    const stats = await this.tableStats();
    const counts: { table: string; rows: number; exact: boolean }[] = [];
    for (const table of stats) {
      if (table.rowEstimate >= EXACT_COUNT_LIMIT) {
        counts.push({ table: table.table, rows: table.rowEstimate, exact: false });
        continue;
      }
      const result = await sql<{ n: number }>`select count(*)::int8 as n from ${sql.table(table.table)}`.execute(
        this.db,
      );
      counts.push({ table: table.table, rows: result.rows[0]?.n ?? 0, exact: true });
    }
    return counts;
  }

  /** Buffer cache hit ratio of this database since the statistics were reset (null when unknown). */
  async cacheHitRatio(): Promise<number | null> {
    const result = await sql<{ hit: number | null; read: number | null }>`
      select blks_hit::int8 as hit, blks_read::int8 as read
      from pg_stat_database where datname = current_database()
    `.execute(this.db);
    const row = result.rows[0];
    if (row === undefined || row.hit === null || row.read === null || row.hit + row.read === 0) {
      return null;
    }
    return Math.round((row.hit / (row.hit + row.read)) * 10_000) / 10_000;
  }
}
