/** What Warden reports about itself: `/status` and `/database/status`. */
import type { Database, PoolStats } from '../../db/engine.js';
import { serverVersion } from '../../db/engine.js';
import type { QueryStats } from '../../db/instrumentation.js';
import type { MigrationState } from '../../db/migrator.js';
import type { Metrics } from '../../metrics.js';
import { VERSION } from '../../version.js';
import type { MetricsUpkeep, SystemRepository, TableStats } from './repository.js';

export interface ProcessMemory {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
}

export interface SystemStatus {
  readonly version: string;
  readonly engine: Database['engine'];
  readonly serverVersion: string;
  readonly uptimeS: number;
  readonly memory: ProcessMemory;
  readonly tables: { table: string; rows: number; exact: boolean }[];
}

export interface BackupsStatus {
  readonly available: false;
  readonly count: 0;
  readonly message: string;
}

export interface DatabaseStatus {
  readonly engine: Database['engine'];
  readonly serverVersion: string;
  readonly sizeBytes: number;
  readonly cacheHitRatio: number | null;
  readonly tables: TableStats[];
  readonly pool: PoolStats | null;
  readonly migrations: { applied: number; pending: string[]; checksumMismatches: string[]; missingFiles: string[] };
  readonly queries: QueryStats;
  readonly backups: BackupsStatus;
  readonly metrics: MetricsUpkeep;
}

export class SystemService {
  private versionCache: string | undefined;

  constructor(
    private readonly database: Database,
    private readonly repository: SystemRepository,
    private readonly migrationState: () => Promise<MigrationState>,
    private readonly startedAt: number = Date.now(),
  ) {}

  private async serverVersion(): Promise<string> {
    this.versionCache ??= await serverVersion(this.database.db);
    return this.versionCache;
  }

  uptimeS(): number {
    return Math.round((Date.now() - this.startedAt) / 1000);
  }

  /** Version, engine, uptime, memory and row counts of the tables. */
  async status(): Promise<SystemStatus> {
    const memory = process.memoryUsage();
    return {
      version: VERSION,
      engine: this.database.engine,
      serverVersion: await this.serverVersion(),
      uptimeS: this.uptimeS(),
      memory: {
        rssBytes: memory.rss,
        heapUsedBytes: memory.heapUsed,
        heapTotalBytes: memory.heapTotal,
        externalBytes: memory.external,
      },
      tables: await this.repository.rowCounts(),
    };
  }

  /** Copies the pool state into the pool gauges (called before each scrape). */
  refreshPoolGauges(metrics: Metrics): void {
    const pool = this.database.poolStats();
    if (pool === undefined) {
      return;
    }
    metrics.dbPoolConnections.set({ state: 'total' }, pool.total);
    metrics.dbPoolConnections.set({ state: 'idle' }, pool.idle);
    metrics.dbPoolConnections.set({ state: 'waiting' }, pool.waiting);
    metrics.dbPoolConnections.set({ state: 'max' }, pool.max);
  }

  /** Everything an operator wants to know about the database at a glance. */
  async databaseStatus(): Promise<DatabaseStatus> {
    const [version, sizeBytes, tables, cacheHitRatio, migrations, metricsUpkeep] = await Promise.all([
      this.serverVersion(),
      this.repository.databaseSizeBytes(),
      this.repository.tableStats(),
      this.repository.cacheHitRatio(),
      this.migrationState(),
      this.repository.metricsUpkeep(),
    ]);
    return {
      engine: this.database.engine,
      serverVersion: version,
      sizeBytes,
      cacheHitRatio,
      tables,
      pool: this.database.poolStats() ?? null,
      migrations: {
        applied: migrations.applied.length,
        pending: migrations.pending,
        checksumMismatches: migrations.checksumMismatches,
        missingFiles: migrations.missingFiles,
      },
      queries: this.database.instrumentation.stats(),
      backups: {
        available: false,
        count: 0,
        message: 'No backups exist: backups are not implemented in this version of Warden yet.',
      },
      metrics: metricsUpkeep,
    };
  }
}
