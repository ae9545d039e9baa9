/** The /proc parsers against fixture texts as the kernel writes them. */
import { describe, expect, it } from 'vitest';
import {
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
} from '../../../src/domain/metrics/procfs.js';

const STAT = `cpu  16458 0 4295 24331 128 0 44 57 0 0
cpu0 8085 0 2134 12380 32 0 9 27 0 0
cpu1 8373 0 2161 11951 96 0 34 29 0 0
intr 238178 0 0 0 0
ctxt 674073
btime 1732345000
processes 3346
procs_running 2
`;

const MEMINFO = `MemTotal:       24684084 kB
MemFree:        22881952 kB
MemAvailable:   23018296 kB
Buffers:            7028 kB
Cached:           387736 kB
SwapCached:            0 kB
Active(anon):      51000 kB
SwapTotal:       2097148 kB
SwapFree:        1048574 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

const MOUNTS = `proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
devtmpfs /dev devtmpfs rw,relatime,size=12334460k 0 0
tmpfs /dev/shm tmpfs rw,relatime 0 0
/dev/vda / ext4 rw,relatime 0 0
/dev/vdb1 /srv/my\\040data xfs rw,relatime 0 0
/dev/vda /etc/hosts ext4 rw,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,relatime 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw,relatime 0 0
overlay /var/lib/docker/overlay2/de/merged overlay rw,relatime 0 0
/dev/loop3 /snap/core/123 squashfs ro,relatime 0 0
`;

const DISKSTATS = `   7       0 loop0 12 0 200 0 0 0 0 0 0 4 0 0 0 0 0 0 0
   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 259       0 nvme0n1 10004 4525 888706 2748 6654 21942 1320064 5518 0 2260 8865 4967 22 200776 411 3000 186
 259       1 nvme0n1p1 9000 4000 800000 2000 6000 20000 1300000 5000 0 2000 8000 0 0 0 0 0 0
 259       2 nvme0n1p2 1000 525 88706 748 654 1942 20064 518 0 260 865 0 0 0 0 0 0
   8       0 sda 100 0 1000 10 50 0 2000 5 0 10 15
   8       1 sda1 100 0 1000 10 50 0 2000 5 0 10 15
 253       0 dm-0 5 0 40 1 1 0 8 0 0 1 1
 254       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   8      16 sdb1 7 0 56 1 0 0 0 0 0 1 1
`;

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1611710    9282    0    0    0     0          0         0  1611710    9282    0    0    0     0       0          0
  eth0: 135420129    3854    0    0    0     0          0         0   475925    2948    0    0    0     0       0          0
wlp2s0:123 4 0 0 0 0 0 0 456 7 0 0 0 0 0 0
`;

describe('/proc parsers', () => {
  it('reads total and per-core CPU times, counting iowait as idle and guest time once', () => {
    const stat = parseCpuStat(STAT);
    expect(stat.total).toEqual({
      idle: 24331 + 128,
      total: 16458 + 0 + 4295 + 24331 + 128 + 0 + 44 + 57,
    });
    expect([...stat.cores.keys()]).toEqual(['0', '1']);
    expect(stat.cores.get('1')).toEqual({ idle: 11951 + 96, total: 8373 + 2161 + 11951 + 96 + 34 + 29 });
  });

  it('gives CPU usage as the busy share of the interval, and nothing when counters went back', () => {
    expect(cpuUsagePct({ idle: 100, total: 200 }, { idle: 130, total: 300 })).toBe(70);
    expect(cpuUsagePct({ idle: 100, total: 200 }, { idle: 200, total: 300 })).toBe(0);
    // No time passed, or a reboot reset the counters.
    expect(cpuUsagePct({ idle: 100, total: 200 }, { idle: 100, total: 200 })).toBeUndefined();
    expect(cpuUsagePct({ idle: 100, total: 200 }, { idle: 10, total: 50 })).toBeUndefined();
  });

  it('reads the three load averages', () => {
    expect(parseLoadAvg('3.24 1.13 0.41 8/155 3346\n')).toEqual({ load1: 3.24, load5: 1.13, load15: 0.41 });
    expect(parseLoadAvg('')).toBeUndefined();
  });

  it('reads memory and swap in bytes', () => {
    expect(parseMeminfo(MEMINFO)).toEqual({
      totalBytes: 24684084 * 1024,
      availableBytes: 23018296 * 1024,
      swapTotalBytes: 2097148 * 1024,
      swapFreeBytes: 1048574 * 1024,
    });
  });

  it('estimates available memory on kernels without MemAvailable', () => {
    const old = MEMINFO.split('\n')
      .filter((line) => !line.startsWith('MemAvailable'))
      .join('\n');
    expect(parseMeminfo(old)?.availableBytes).toBe((22881952 + 7028 + 387736) * 1024);
    expect(parseMeminfo('garbage')).toBeUndefined();
  });

  it('keeps real file systems once per device, at their shortest mount point, with escapes decoded', () => {
    const mounts = parseMounts(MOUNTS);
    expect(mounts).toHaveLength(11);
    expect(selectRealFileSystems(mounts)).toEqual([
      { device: '/dev/vda', mountPoint: '/', fsType: 'ext4' },
      { device: '/dev/vdb1', mountPoint: '/srv/my data', fsType: 'xfs' },
      { device: 'overlay', mountPoint: '/var/lib/docker/overlay2/de/merged', fsType: 'overlay' },
    ]);
  });

  it('reads sectors per block device, keeping physical whole disks only', () => {
    const disks = parseDiskStats(DISKSTATS);
    expect(disks.find((d) => d.device === 'nvme0n1')).toEqual({
      device: 'nvme0n1',
      sectorsRead: 888706,
      sectorsWritten: 1320064,
    });
    // Old kernels print 11 fields per line; that is enough.
    expect(disks.find((d) => d.device === 'sda')).toEqual({ device: 'sda', sectorsRead: 1000, sectorsWritten: 2000 });
    // A partition whose disk is not listed (sdb1) is kept; loop, ram and zram are not.
    expect(selectPhysicalDisks(disks).map((d) => d.device)).toEqual(['nvme0n1', 'sda', 'dm-0', 'sdb1']);
  });

  it('reads received and sent bytes per interface, with or without a space after the colon', () => {
    expect(parseNetDev(NET_DEV)).toEqual([
      { interface: 'lo', rxBytes: 1611710, txBytes: 1611710 },
      { interface: 'eth0', rxBytes: 135420129, txBytes: 475925 },
      { interface: 'wlp2s0', rxBytes: 123, txBytes: 456 },
    ]);
  });

  it('counts processes as the numeric entries of /proc', () => {
    expect(countProcesses(['1', '42', 'self', 'stat', '1080', 'net', 'thread-self'])).toBe(3);
  });

  it('computes per-second rates and skips intervals where a counter went backwards', () => {
    expect(ratePerSecond(1000, 3000, 2000)).toBe(1000);
    expect(ratePerSecond(1000, 1000, 2000)).toBe(0);
    expect(ratePerSecond(5000, 10, 2000)).toBeUndefined();
    expect(ratePerSecond(1000, 3000, 0)).toBeUndefined();
  });
});
