/**
 * The host collector: one sweep of a machine's vital figures (CPU, load, memory, swap, file
 * systems, disk and network throughput, process count) as samples, read straight from Linux
 * `/proc` (cheap, no dependency), or from `node:os` where there is no /proc.
 *
 * Rates and CPU percentages are deltas against the previous sweep: the first sweep of a
 * collector has only the instantaneous figures (load, memory, swap, file systems, process
 * count) and records the baseline; every later sweep has all of them. A counter that went
 * backwards (reboot, wrap) gives no figure for that interval rather than a negative one.
 * The metric names are listed in README.md ("Host metrics — metric names").
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { IntervalJob } from '../../jobs/interval-job.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import {
  DISKSTATS_SECTOR_BYTES,
  countProcesses,
  cpuUsagePct,
  parseCpuStat,
  parseDiskStats,
  parseLoadAvg,
  parseMeminfo,
  parseMounts,
  parseNetDev,
  ratePerSecond,
  selectPhysicalDisks,
  selectRealFileSystems,
  type CpuStat,
  type CpuTimes,
  type DiskCounters,
  type NetCounters,
} from './procfs.js';
import { MAX_LABEL_VALUE_LENGTH, type Labels, type SampleInput } from './types.js';

/** Every metric name the collector produces (README.md: "Host metrics — metric names"). */
export const HOST_METRIC_NAMES: ReadonlySet<string> = new Set([
  'cpu.usage_pct',
  'cpu.core_usage_pct',
  'load.1',
  'load.5',
  'load.15',
  'mem.total_bytes',
  'mem.used_bytes',
  'mem.available_bytes',
  'mem.used_pct',
  'swap.total_bytes',
  'swap.used_bytes',
  'swap.used_pct',
  'disk.total_bytes',
  'disk.used_bytes',
  'disk.used_pct',
  'disk.read_bytes_per_s',
  'disk.write_bytes_per_s',
  'net.rx_bytes_per_s',
  'net.tx_bytes_per_s',
  'proc.count',
]);

/** What `fs.statfsSync` gives that the collector uses. */
export interface FileSystemSize {
  /** Fundamental block size in bytes. */
  readonly bsize: number;
  /** Blocks in the file system. */
  readonly blocks: number;
  /** Free blocks (including those reserved for root). */
  readonly bfree: number;
  /** Free blocks available to unprivileged users. */
  readonly bavail: number;
}

export interface HostCollectorOptions {
  /** Host name every sample is recorded under. */
  readonly hostName: string;
  /** Root of the proc file system (default `/proc`); tests point it at a fixture directory. */
  readonly procRoot?: string;
  /**
   * `procfs` reads procRoot, `os` uses `node:os` (CPU, load, memory only), `auto` (default)
   * uses procfs when `<procRoot>/stat` exists.
   */
  readonly source?: 'auto' | 'procfs' | 'os';
  /** Wall clock for sample timestamps, ms since the epoch (default Date.now). */
  readonly now?: () => number;
  /** Monotonic clock for rate intervals, ms (default performance.now), immune to clock steps. */
  readonly monotonicNow?: () => number;
  /** Size of the file system mounted at a path (default fs.statfsSync). */
  readonly statfs?: (mountPoint: string) => FileSystemSize;
  /** Told once per section (e.g. "diskstats") that cannot be read; later failures stay quiet. */
  readonly logger?: Logger;
}

/** Readings a later sweep computes its deltas against. */
interface Baseline {
  readonly at: number;
  readonly cpu: CpuStat | undefined;
  readonly disks: ReadonlyMap<string, DiskCounters>;
  readonly net: ReadonlyMap<string, NetCounters>;
}

export class HostCollector {
  readonly hostName: string;
  private readonly procRoot: string;
  private readonly useProcfs: boolean;
  private readonly now: () => number;
  private readonly monotonicNow: () => number;
  private readonly statfs: (mountPoint: string) => FileSystemSize;
  private readonly logger: Logger | undefined;
  private readonly reportedFailures = new Set<string>();
  private baseline: Baseline | undefined;

  constructor(options: HostCollectorOptions) {
    this.hostName = options.hostName;
    this.procRoot = options.procRoot ?? '/proc';
    const source = options.source ?? 'auto';
    this.useProcfs = source === 'procfs' || (source === 'auto' && fs.existsSync(path.join(this.procRoot, 'stat')));
    this.now = options.now ?? Date.now;
    this.monotonicNow = options.monotonicNow ?? (() => performance.now());
    this.statfs = options.statfs ?? ((mountPoint) => fs.statfsSync(mountPoint));
    this.logger = options.logger;
  }

  /** Where the figures come from: `procfs` or `os`. */
  get source(): 'procfs' | 'os' {
    return this.useProcfs ? 'procfs' : 'os';
  }

  /** One sweep: every sample stamped with the sweep's time. Never throws for a missing file. */
  async collect(): Promise<SampleInput[]> {
    const ts = this.now();
    const at = this.monotonicNow();
    const out = new SampleSink(this.hostName, ts);
    if (this.useProcfs) {
      await this.collectProcfs(out, at);
    } else {
      this.collectOs(out, at);
    }
    return out.samples;
  }

  private async collectProcfs(out: SampleSink, at: number): Promise<void> {
    const [stat, loadavg, meminfo, mounts, diskstats, netdev, entries] = await Promise.all([
      this.read('stat'),
      this.read('loadavg'),
      this.read('meminfo'),
      this.read('mounts'),
      this.read('diskstats'),
      this.read('net/dev'),
      this.readDir(),
    ]);
    const previous = this.baseline;
    const elapsedMs = previous === undefined ? 0 : at - previous.at;

    const cpu = stat === undefined ? undefined : parseCpuStat(stat);
    if (cpu !== undefined && previous?.cpu !== undefined) {
      emitCpu(out, previous.cpu, cpu);
    }

    const load = loadavg === undefined ? undefined : parseLoadAvg(loadavg);
    if (load !== undefined) {
      out.add('load.1', load.load1);
      out.add('load.5', load.load5);
      out.add('load.15', load.load15);
    }

    const memory = meminfo === undefined ? undefined : parseMeminfo(meminfo);
    if (memory !== undefined) {
      emitMemory(out, memory.totalBytes, memory.availableBytes);
      const swapUsed = Math.max(0, memory.swapTotalBytes - memory.swapFreeBytes);
      out.add('swap.total_bytes', memory.swapTotalBytes);
      out.add('swap.used_bytes', swapUsed);
      if (memory.swapTotalBytes > 0) {
        out.add('swap.used_pct', (swapUsed / memory.swapTotalBytes) * 100);
      }
    }

    if (mounts !== undefined) {
      this.emitFileSystems(out, mounts);
    }

    const disks = new Map<string, DiskCounters>();
    if (diskstats !== undefined) {
      for (const disk of selectPhysicalDisks(parseDiskStats(diskstats))) {
        disks.set(disk.device, disk);
        const before = previous?.disks.get(disk.device);
        if (before !== undefined) {
          const labels = { device: disk.device };
          out.add(
            'disk.read_bytes_per_s',
            rate(before.sectorsRead, disk.sectorsRead, elapsedMs, DISKSTATS_SECTOR_BYTES),
            labels,
          );
          out.add(
            'disk.write_bytes_per_s',
            rate(before.sectorsWritten, disk.sectorsWritten, elapsedMs, DISKSTATS_SECTOR_BYTES),
            labels,
          );
        }
      }
    }

    const net = new Map<string, NetCounters>();
    if (netdev !== undefined) {
      for (const nic of parseNetDev(netdev)) {
        if (nic.interface === 'lo') {
          continue;
        }
        net.set(nic.interface, nic);
        const before = previous?.net.get(nic.interface);
        if (before !== undefined) {
          const labels = { interface: nic.interface };
          out.add('net.rx_bytes_per_s', rate(before.rxBytes, nic.rxBytes, elapsedMs, 1), labels);
          out.add('net.tx_bytes_per_s', rate(before.txBytes, nic.txBytes, elapsedMs, 1), labels);
        }
      }
    }

    if (entries !== undefined) {
      out.add('proc.count', countProcesses(entries));
    }

    this.baseline = { at, cpu: cpu ?? previous?.cpu, disks, net };
  }

  /** Without /proc: CPU from os.cpus() deltas, load, and memory (free memory as available). */
  private collectOs(out: SampleSink, at: number): void {
    const cores = new Map<string, CpuTimes>();
    let idle = 0;
    let total = 0;
    os.cpus().forEach((cpu, index) => {
      const t = cpu.times;
      const coreTotal = t.user + t.nice + t.sys + t.idle + t.irq;
      cores.set(String(index), { idle: t.idle, total: coreTotal });
      idle += t.idle;
      total += coreTotal;
    });
    const cpu: CpuStat = { total: cores.size > 0 ? { idle, total } : undefined, cores };
    const previous = this.baseline;
    if (previous?.cpu !== undefined) {
      emitCpu(out, previous.cpu, cpu);
    }
    // Windows reports zeros for the load average; it has none.
    if (process.platform !== 'win32') {
      const [load1 = 0, load5 = 0, load15 = 0] = os.loadavg();
      out.add('load.1', load1);
      out.add('load.5', load5);
      out.add('load.15', load15);
    }
    emitMemory(out, os.totalmem(), os.freemem());
    this.baseline = { at, cpu, disks: new Map(), net: new Map() };
  }

  private emitFileSystems(out: SampleSink, mountsText: string): void {
    for (const mount of selectRealFileSystems(parseMounts(mountsText))) {
      let size: FileSystemSize;
      try {
        size = this.statfs(mount.mountPoint);
      } catch (error) {
        // Unmounted between the two reads, or not ours to look at (permissions).
        this.reportOnce(`statfs ${mount.mountPoint}`, error);
        continue;
      }
      if (size.blocks <= 0) {
        continue;
      }
      const labels = { mount: mount.mountPoint };
      const total = size.blocks * size.bsize;
      const used = Math.max(0, (size.blocks - size.bfree) * size.bsize);
      const usable = used + size.bavail * size.bsize;
      out.add('disk.total_bytes', total, labels);
      out.add('disk.used_bytes', used, labels);
      // As df shows it: blocks reserved for root count neither as used nor as available.
      out.add('disk.used_pct', usable > 0 ? (used / usable) * 100 : 0, labels);
    }
  }

  private async read(file: string): Promise<string | undefined> {
    try {
      return await fs.promises.readFile(path.join(this.procRoot, file), 'utf8');
    } catch (error) {
      this.reportOnce(file, error);
      return undefined;
    }
  }

  private async readDir(): Promise<string[] | undefined> {
    try {
      return await fs.promises.readdir(this.procRoot);
    } catch (error) {
      this.reportOnce('process list', error);
      return undefined;
    }
  }

  private reportOnce(section: string, error: unknown): void {
    if (this.reportedFailures.has(section)) {
      return;
    }
    this.reportedFailures.add(section);
    this.logger?.warn(
      { section, procRoot: this.procRoot, err: error },
      'host collector cannot read a source; its metrics are left out',
    );
  }
}

/** Collects the samples of one sweep, leaving out values that are not finite numbers. */
class SampleSink {
  readonly samples: SampleInput[] = [];

  constructor(
    private readonly host: string,
    private readonly ts: number,
  ) {}

  add(metric: string, value: number | undefined, labels?: Labels): void {
    if (value === undefined || !Number.isFinite(value)) {
      return;
    }
    if (labels !== undefined && Object.values(labels).some((v) => v.length > MAX_LABEL_VALUE_LENGTH)) {
      // The server would reject the whole batch for one overlong mount path.
      return;
    }
    this.samples.push(
      labels === undefined
        ? { host: this.host, metric, value, ts: this.ts }
        : { host: this.host, metric, value, ts: this.ts, labels },
    );
  }
}

function emitCpu(out: SampleSink, previous: CpuStat, current: CpuStat): void {
  if (previous.total !== undefined && current.total !== undefined) {
    out.add('cpu.usage_pct', cpuUsagePct(previous.total, current.total));
  }
  for (const [core, times] of current.cores) {
    const before = previous.cores.get(core);
    if (before !== undefined) {
      out.add('cpu.core_usage_pct', cpuUsagePct(before, times), { core });
    }
  }
}

function emitMemory(out: SampleSink, totalBytes: number, availableBytes: number): void {
  const used = Math.max(0, totalBytes - availableBytes);
  out.add('mem.total_bytes', totalBytes);
  out.add('mem.used_bytes', used);
  out.add('mem.available_bytes', availableBytes);
  if (totalBytes > 0) {
    out.add('mem.used_pct', (used / totalBytes) * 100);
  }
}

function rate(previous: number, current: number, elapsedMs: number, factor: number): number | undefined {
  const perSecond = ratePerSecond(previous, current, elapsedMs);
  return perSecond === undefined ? undefined : perSecond * factor;
}

/** Anything samples can be handed to: the IngestService, or a fake in tests. */
export interface SampleIngest {
  ingest(samples: SampleInput[], options: { intervalS?: number }): Promise<unknown>;
}

/**
 * The self collector as a background job: every `intervalMs` one sweep of Warden's own
 * host, ingested like any sender's (declaring the interval, so the host is marked stale
 * after 3 missed sweeps). Runs at start so the host appears at once.
 */
export function createCollectorJob(
  collector: HostCollector,
  ingest: SampleIngest,
  intervalMs: number,
  logger: Logger,
  metrics: Metrics,
): IntervalJob {
  const intervalS = intervalSeconds(intervalMs);
  return new IntervalJob(
    'metrics-self-collect',
    intervalMs,
    async () => {
      const samples = await collector.collect();
      if (samples.length > 0) {
        await ingest.ingest(samples, { intervalS });
      }
    },
    logger,
    metrics,
    { runAtStart: true },
  );
}

/** A collection interval as the whole seconds `interval_s` takes (at least 1). */
export function intervalSeconds(intervalMs: number): number {
  return Math.min(86_400, Math.max(1, Math.ceil(intervalMs / 1000)));
}
