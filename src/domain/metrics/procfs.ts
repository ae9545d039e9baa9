/**
 * Parsers for the Linux `/proc` files the host collector reads. Each takes the file's text
 * and returns plain numbers; none touches the file system, so they are tested with fixture
 * strings. Malformed lines are skipped rather than failing the whole file: a kernel that
 * adds a column or a device with an odd name must not cost the other figures.
 */

/** Jiffies a CPU (or all CPUs together) spent, from one line of /proc/stat. */
export interface CpuTimes {
  /** idle + iowait. */
  readonly idle: number;
  /** user + nice + system + idle + iowait + irq + softirq + steal (guest time is already in user/nice). */
  readonly total: number;
}

export interface CpuStat {
  /** The `cpu` line: all CPUs together. */
  readonly total: CpuTimes | undefined;
  /** `cpuN` lines by N (as text, e.g. "0"). */
  readonly cores: ReadonlyMap<string, CpuTimes>;
}

/** Parses /proc/stat's `cpu` and `cpuN` lines. */
export function parseCpuStat(text: string): CpuStat {
  let total: CpuTimes | undefined;
  const cores = new Map<string, CpuTimes>();
  for (const line of text.split('\n')) {
    const match = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (match === null) {
      continue;
    }
    const fields = (match[2] ?? '').trim().split(/\s+/).map(Number);
    if (fields.length < 4 || fields.some((n) => !Number.isFinite(n))) {
      continue;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice; older kernels have fewer.
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    const times: CpuTimes = {
      idle: idle + iowait,
      total: user + nice + system + idle + iowait + irq + softirq + steal,
    };
    const core = match[1] ?? '';
    if (core === '') {
      total = times;
    } else {
      cores.set(core, times);
    }
  }
  return { total, cores };
}

/**
 * Busy share of the time between two readings, in percent (0-100). Undefined when no time
 * passed or a counter went backwards (CPU hot-plug, reboot): that interval is skipped.
 */
export function cpuUsagePct(previous: CpuTimes, current: CpuTimes): number | undefined {
  const totalDelta = current.total - previous.total;
  const idleDelta = current.idle - previous.idle;
  if (totalDelta <= 0 || idleDelta < 0 || idleDelta > totalDelta) {
    return undefined;
  }
  return ((totalDelta - idleDelta) / totalDelta) * 100;
}

export interface LoadAverage {
  readonly load1: number;
  readonly load5: number;
  readonly load15: number;
}

/** Parses /proc/loadavg ("0.52 0.58 0.59 2/1234 5678"). */
export function parseLoadAvg(text: string): LoadAverage | undefined {
  const [load1, load5, load15] = text.trim().split(/\s+/).map(Number);
  if (load1 === undefined || load5 === undefined || load15 === undefined) {
    return undefined;
  }
  if (![load1, load5, load15].every(Number.isFinite)) {
    return undefined;
  }
  return { load1, load5, load15 };
}

export interface MemoryInfo {
  readonly totalBytes: number;
  /** MemAvailable; on kernels before 3.14 (no MemAvailable) MemFree + Buffers + Cached. */
  readonly availableBytes: number;
  readonly swapTotalBytes: number;
  readonly swapFreeBytes: number;
}

/** Parses /proc/meminfo ("MemTotal:  16318412 kB"); values are returned in bytes. */
export function parseMeminfo(text: string): MemoryInfo | undefined {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) {
      const unitIsKb = line.trimEnd().endsWith('kB');
      values.set(match[1], Number(match[2]) * (unitIsKb ? 1024 : 1));
    }
  }
  const totalBytes = values.get('MemTotal');
  if (totalBytes === undefined) {
    return undefined;
  }
  const availableBytes =
    values.get('MemAvailable') ??
    (values.get('MemFree') ?? 0) + (values.get('Buffers') ?? 0) + (values.get('Cached') ?? 0);
  return {
    totalBytes,
    availableBytes: Math.min(availableBytes, totalBytes),
    swapTotalBytes: values.get('SwapTotal') ?? 0,
    swapFreeBytes: values.get('SwapFree') ?? 0,
  };
}

export interface MountEntry {
  readonly device: string;
  readonly mountPoint: string;
  readonly fsType: string;
}

/** /proc/mounts escapes space, tab, newline and backslash as octal (`\040`). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses /proc/mounts (device, mount point, type, options, dump, pass). */
export function parseMounts(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [device, mountPoint, fsType] = line.trim().split(/\s+/);
    if (device === undefined || mountPoint === undefined || fsType === undefined || fsType === '') {
      continue;
    }
    mounts.push({
      device: unescapeMountField(device),
      mountPoint: unescapeMountField(mountPoint),
      fsType,
    });
  }
  return mounts;
}

/**
 * File system types that hold no user data or only mirror another one. Their sizes are
 * memory (tmpfs), kernel views (proc, sysfs, cgroup) or read-only images that are always
 * full (squashfs snaps), and would only add noise.
 */
export const PSEUDO_FS_TYPES: ReadonlySet<string> = new Set([
  'autofs',
  'binfmt_misc',
  'bpf',
  'cgroup',
  'cgroup2',
  'configfs',
  'debugfs',
  'devfs',
  'devpts',
  'devtmpfs',
  'efivarfs',
  'fusectl',
  'fuse.gvfsd-fuse',
  'fuse.lxcfs',
  'fuse.portal',
  'hugetlbfs',
  'mqueue',
  'nsfs',
  'nfsd',
  'proc',
  'pstore',
  'ramfs',
  'rpc_pipefs',
  'securityfs',
  'selinuxfs',
  'squashfs',
  'sysfs',
  'tmpfs',
  'tracefs',
]);

/**
 * The mounts worth a disk figure: no pseudo file systems, and each device once (bind
 * mounts and overlay's repeated mounts share a device; the shortest mount point is kept,
 * so `/` wins over `/var/lib/docker/…` and `/etc/hosts`).
 */
export function selectRealFileSystems(mounts: readonly MountEntry[]): MountEntry[] {
  const byDevice = new Map<string, MountEntry>();
  for (const mount of mounts) {
    if (PSEUDO_FS_TYPES.has(mount.fsType) || mount.device === 'none' || !mount.mountPoint.startsWith('/')) {
      continue;
    }
    const kept = byDevice.get(mount.device);
    if (kept === undefined || mount.mountPoint.length < kept.mountPoint.length) {
      byDevice.set(mount.device, mount);
    }
  }
  return [...byDevice.values()];
}

/** Cumulative sectors of one block device from /proc/diskstats. */
export interface DiskCounters {
  readonly device: string;
  readonly sectorsRead: number;
  readonly sectorsWritten: number;
}

/** /proc/diskstats counts 512-byte sectors whatever the device's real sector size. */
export const DISKSTATS_SECTOR_BYTES = 512;

/** Parses /proc/diskstats (major minor name reads merged sectors ms writes merged sectors …). */
export function parseDiskStats(text: string): DiskCounters[] {
  const disks: DiskCounters[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    const device = fields[2];
    const sectorsRead = Number(fields[5]);
    const sectorsWritten = Number(fields[9]);
    if (
      device === undefined ||
      fields.length < 10 ||
      !Number.isFinite(sectorsRead) ||
      !Number.isFinite(sectorsWritten)
    ) {
      continue;
    }
    disks.push({ device, sectorsRead, sectorsWritten });
  }
  return disks;
}

/** Virtual block devices whose traffic is not disk traffic (loop images, RAM disks, compressed RAM swap). */
const VIRTUAL_DISK_PATTERN = /^(loop|ram|zram)\d+$/;

/**
 * Physical devices only: loop, ram and zram devices are skipped, and so is a partition when
 * its whole disk is listed (`sda1` beside `sda`, `nvme0n1p2` beside `nvme0n1`), since the
 * disk's counters already include it.
 */
export function selectPhysicalDisks<T extends { readonly device: string }>(disks: readonly T[]): T[] {
  const names = new Set(disks.map((d) => d.device));
  return disks.filter((disk) => {
    if (VIRTUAL_DISK_PATTERN.test(disk.device)) {
      return false;
    }
    // `sda1` → `sda`; `nvme0n1p1` / `mmcblk0p1` → `nvme0n1` / `mmcblk0` (the lazy prefix
    // takes the shortest base that leaves an optional `p` and the partition number).
    const base = /^(.+?)p?\d+$/.exec(disk.device)?.[1];
    return base === undefined || !names.has(base);
  });
}

/** Cumulative bytes of one network interface from /proc/net/dev. */
export interface NetCounters {
  readonly interface: string;
  readonly rxBytes: number;
  readonly txBytes: number;
}

/** Parses /proc/net/dev (two header lines, then `iface: rx_bytes packets … tx_bytes …`). */
export function parseNetDev(text: string): NetCounters[] {
  const interfaces: NetCounters[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.includes('|')) {
      continue;
    }
    const name = line.slice(0, colon).trim();
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    const rxBytes = fields[0];
    const txBytes = fields[8];
    if (name === '' || rxBytes === undefined || txBytes === undefined) {
      continue;
    }
    if (!Number.isFinite(rxBytes) || !Number.isFinite(txBytes)) {
      continue;
    }
    interfaces.push({ interface: name, rxBytes, txBytes });
  }
  return interfaces;
}

/** Processes are the numeric entries of /proc (thread ids live under /proc/N/task). */
export function countProcesses(entries: readonly string[]): number {
  let count = 0;
  for (const entry of entries) {
    if (/^\d+$/.test(entry)) {
      count += 1;
    }
  }
  return count;
}

/**
 * Per-second rate of a cumulative counter. Undefined when no time passed or the counter went
 * backwards (reboot, driver reload, 32-bit wrap): that interval is skipped, never negative.
 */
export function ratePerSecond(previous: number, current: number, elapsedMs: number): number | undefined {
  if (elapsedMs <= 0 || current < previous) {
    return undefined;
  }
  return ((current - previous) * 1000) / elapsedMs;
}
