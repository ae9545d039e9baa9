/**
 * The host collector over a fixture /proc directory (exact figures), over the real /proc
 * and node:os (plausible figures of the documented names), and as the self-collect job
 * storing through the real ingest service.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  HOST_METRIC_NAMES,
  HostCollector,
  createCollectorJob,
  type FileSystemSize,
} from '../../../src/domain/metrics/collector.js';
import { IngestService } from '../../../src/domain/metrics/ingest-service.js';
import { formatSeries, type SampleInput } from '../../../src/domain/metrics/types.js';
import { createTestDatabase, silentLogger, startTestServer } from '../../helpers/db.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

interface Counters {
  cpu: [user: number, system: number, idle: number];
  core0: [user: number, system: number, idle: number];
  vdaSectors: [read: number, written: number];
  eth0: [rx: number, tx: number];
}

/** A /proc fixture directory; `write` updates the counter files in place. */
function procFixture(): { root: string; write(counters: Counters): void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-proc-'));
  dirs.push(root);
  fs.mkdirSync(path.join(root, 'net'));
  for (const entry of ['1', '27', '311', 'self', 'sys']) {
    fs.mkdirSync(path.join(root, entry));
  }
  fs.writeFileSync(path.join(root, 'loadavg'), '0.50 0.25 0.10 1/99 311\n');
  fs.writeFileSync(
    path.join(root, 'meminfo'),
    'MemTotal:        1000000 kB\nMemFree:          100000 kB\nMemAvailable:     250000 kB\n' +
      'SwapTotal:        400000 kB\nSwapFree:         300000 kB\n',
  );
  fs.writeFileSync(
    path.join(root, 'mounts'),
    'proc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n/dev/vda /etc/hosts ext4 rw 0 0\n',
  );
  return {
    root,
    write(c) {
      fs.writeFileSync(
        path.join(root, 'stat'),
        `cpu  ${c.cpu[0]} 0 ${c.cpu[1]} ${c.cpu[2]} 0 0 0 0 0 0\ncpu0 ${c.core0[0]} 0 ${c.core0[1]} ${c.core0[2]} 0 0 0 0 0 0\nctxt 1\n`,
      );
      fs.writeFileSync(
        path.join(root, 'diskstats'),
        `   7 0 loop0 1 0 8 0 0 0 8 0 0 0 0\n 254 0 vda 1 0 ${c.vdaSectors[0]} 0 1 0 ${c.vdaSectors[1]} 0 0 0 0\n` +
          ` 254 1 vda1 1 0 ${c.vdaSectors[0]} 0 1 0 ${c.vdaSectors[1]} 0 0 0 0\n`,
      );
      fs.writeFileSync(
        path.join(root, 'net', 'dev'),
        'Inter-| Receive | Transmit\n face |bytes packets|bytes packets\n' +
          '    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n' +
          `  eth0: ${c.eth0[0]} 1 0 0 0 0 0 0 ${c.eth0[1]} 1 0 0 0 0 0 0\n`,
      );
    },
  };
}

const ROOT_FS: FileSystemSize = { bsize: 4096, blocks: 1000, bfree: 300, bavail: 200 };

function byName(samples: readonly SampleInput[]): Map<string, SampleInput> {
  return new Map(samples.map((s) => [formatSeries(s.metric, s.labels ?? {}), s]));
}

describe('host collector', () => {
  it('reports gauges on the first sweep and exact CPU, disk and network rates from the second', async () => {
    const proc = procFixture();
    let wall = 1_700_000_000_000;
    let mono = 5000;
    const statfsCalls: string[] = [];
    proc.write({ cpu: [100, 100, 800], core0: [50, 50, 400], vdaSectors: [1000, 2000], eth0: [10_000, 5000] });
    const collector = new HostCollector({
      hostName: 'fixture-host',
      procRoot: proc.root,
      now: () => wall,
      monotonicNow: () => mono,
      statfs: (mountPoint) => {
        statfsCalls.push(mountPoint);
        return ROOT_FS;
      },
    });
    expect(collector.source).toBe('procfs');

    const first = await collector.collect();
    expect(first.every((s) => s.host === 'fixture-host' && s.ts === wall)).toBe(true);
    expect([...byName(first).keys()].sort()).toEqual(
      [
        'disk.total_bytes{mount="/"}',
        'disk.used_bytes{mount="/"}',
        'disk.used_pct{mount="/"}',
        'load.1',
        'load.5',
        'load.15',
        'mem.available_bytes',
        'mem.total_bytes',
        'mem.used_bytes',
        'mem.used_pct',
        'proc.count',
        'swap.total_bytes',
        'swap.used_bytes',
        'swap.used_pct',
      ].sort(),
    );
    const gauges = byName(first);
    expect(gauges.get('load.5')?.value).toBe(0.25);
    expect(gauges.get('mem.total_bytes')?.value).toBe(1_000_000 * 1024);
    expect(gauges.get('mem.used_bytes')?.value).toBe(750_000 * 1024);
    expect(gauges.get('mem.available_bytes')?.value).toBe(250_000 * 1024);
    expect(gauges.get('mem.used_pct')?.value).toBe(75);
    expect(gauges.get('swap.used_bytes')?.value).toBe(100_000 * 1024);
    expect(gauges.get('swap.used_pct')?.value).toBe(25);
    expect(gauges.get('disk.total_bytes{mount="/"}')?.value).toBe(1000 * 4096);
    expect(gauges.get('disk.used_bytes{mount="/"}')?.value).toBe(700 * 4096);
    // As df: used / (used + available to users); root's reserve counts as neither.
    expect(gauges.get('disk.used_pct{mount="/"}')?.value).toBeCloseTo((700 / 900) * 100, 10);
    expect(gauges.get('proc.count')?.value).toBe(3);
    // One statfs for /dev/vda (the shortest mount point), none for proc or tmpfs.
    expect(statfsCalls).toEqual(['/']);

    // Two seconds later: 150 of 200 jiffies busy, 4096 sectors read, 1 MB received.
    wall += 2000;
    mono += 2000;
    proc.write({ cpu: [200, 150, 850], core0: [100, 60, 440], vdaSectors: [5096, 2000], eth0: [1_010_000, 5500] });
    const second = byName(await collector.collect());
    expect(second.get('cpu.usage_pct')?.value).toBe(75);
    expect(second.get('cpu.core_usage_pct{core="0"}')?.value).toBe(60);
    expect(second.get('disk.read_bytes_per_s{device="vda"}')?.value).toBe((4096 * 512) / 2);
    expect(second.get('disk.write_bytes_per_s{device="vda"}')?.value).toBe(0);
    expect(second.get('net.rx_bytes_per_s{interface="eth0"}')?.value).toBe(500_000);
    expect(second.get('net.tx_bytes_per_s{interface="eth0"}')?.value).toBe(250);
    // Loopback, loop devices and partitions of a listed disk are not reported.
    expect([...second.keys()].filter((k) => /lo"|loop|vda1/.test(k))).toEqual([]);
    expect(second.get('cpu.usage_pct')?.ts).toBe(wall);
  });

  it('skips rates for an interval in which counters went backwards, and resumes after it', async () => {
    const proc = procFixture();
    let mono = 0;
    proc.write({ cpu: [1000, 1000, 8000], core0: [500, 500, 4000], vdaSectors: [90_000, 90_000], eth0: [9e9, 9e9] });
    const collector = new HostCollector({
      hostName: 'rebooted',
      procRoot: proc.root,
      monotonicNow: () => mono,
      statfs: () => ROOT_FS,
    });
    await collector.collect();
    mono += 1000;
    // Counters reset (reboot of a VM under a long-running agent, or a 32-bit wrap).
    proc.write({ cpu: [10, 10, 80], core0: [5, 5, 40], vdaSectors: [100, 100], eth0: [100, 100] });
    const reset = await collector.collect();
    expect(reset.filter((s) => /^(cpu|disk\.(read|write)|net)\./.test(s.metric))).toEqual([]);
    expect(reset.every((s) => s.value >= 0)).toBe(true);
    mono += 1000;
    proc.write({ cpu: [20, 20, 90], core0: [10, 10, 45], vdaSectors: [300, 100], eth0: [1100, 100] });
    const after = byName(await collector.collect());
    expect(after.get('cpu.usage_pct')?.value).toBeCloseTo((20 / 30) * 100, 10);
    expect(after.get('disk.read_bytes_per_s{device="vda"}')?.value).toBe(200 * 512);
    expect(after.get('net.rx_bytes_per_s{interface="eth0"}')?.value).toBe(1000);
  });

  it('leaves out what it cannot read and keeps the rest', async () => {
    const proc = procFixture();
    proc.write({ cpu: [1, 1, 1], core0: [1, 1, 1], vdaSectors: [1, 1], eth0: [1, 1] });
    fs.rmSync(path.join(proc.root, 'diskstats'));
    fs.rmSync(path.join(proc.root, 'meminfo'));
    const collector = new HostCollector({
      hostName: 'partial',
      procRoot: proc.root,
      statfs: () => {
        throw new Error('EACCES');
      },
    });
    const names = new Set((await collector.collect()).map((s) => s.metric));
    expect(names).toEqual(new Set(['load.1', 'load.5', 'load.15', 'proc.count']));
  });

  it.runIf(fs.existsSync('/proc/stat'))('reads this machine’s /proc: documented names, finite values', async () => {
    const collector = new HostCollector({ hostName: 'self' });
    await collector.collect();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const samples = await collector.collect();
    const names = new Set(samples.map((s) => s.metric));
    for (const name of ['cpu.usage_pct', 'load.1', 'mem.used_pct', 'swap.total_bytes', 'proc.count']) {
      expect(names).toContain(name);
    }
    expect([...names].filter((n) => !HOST_METRIC_NAMES.has(n))).toEqual([]);
    expect(samples.every((s) => Number.isFinite(s.value) && s.value >= 0)).toBe(true);
    for (const s of samples.filter((x) => x.metric.endsWith('_pct'))) {
      expect(s.value).toBeLessThanOrEqual(100);
    }
  });

  it('falls back to node:os for CPU, load and memory where there is no /proc', async () => {
    const collector = new HostCollector({ hostName: 'elsewhere', procRoot: '/nonexistent-proc' });
    expect(collector.source).toBe('os');
    const first = new Set((await collector.collect()).map((s) => s.metric));
    expect(first).toContain('mem.total_bytes');
    expect(first).toContain('mem.used_pct');
    expect(first).not.toContain('cpu.usage_pct');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = await collector.collect();
    expect(second.map((s) => s.metric)).toContain('cpu.usage_pct');
    expect(second.filter((s) => s.metric === 'cpu.core_usage_pct')).toHaveLength(os.cpus().length);
    expect(second.every((s) => HOST_METRIC_NAMES.has(s.metric) && Number.isFinite(s.value))).toBe(true);
  });
});

describe('self-collect job', () => {
  it('stores each sweep for the configured host through the ingest service, declaring its interval', async () => {
    const t = await createTestDatabase('pglite');
    try {
      const ingest = new IngestService(t.database.db, t.config.metrics);
      const proc = procFixture();
      proc.write({ cpu: [100, 100, 800], core0: [50, 50, 400], vdaSectors: [1000, 2000], eth0: [10_000, 5000] });
      let now = Date.now() - 20_000;
      const collector = new HostCollector({
        hostName: 'warden-self',
        procRoot: proc.root,
        now: () => now,
        monotonicNow: () => now,
        statfs: () => ROOT_FS,
      });
      const job = createCollectorJob(collector, ingest, 10_000, silentLogger, t.metrics);
      await job.runOnce();
      now += 10_000;
      proc.write({ cpu: [200, 150, 850], core0: [100, 60, 440], vdaSectors: [5096, 2000], eth0: [1_010_000, 5500] });
      await job.runOnce();

      const host = await t.database.db
        .selectFrom('hosts')
        .select(['id', 'interval_s'])
        .where('name', '=', 'warden-self')
        .executeTakeFirstOrThrow();
      expect(host.interval_s).toBe(10);
      const rows = await t.database.db
        .selectFrom('metric_samples as s')
        .innerJoin('metric_series as m', 'm.id', 's.series_id')
        .select(['m.name', 's.value', 's.ts'])
        .where('m.host_id', '=', host.id)
        .orderBy('s.ts')
        .execute();
      const cpu = rows.filter((r) => r.name === 'cpu.usage_pct');
      expect(cpu).toHaveLength(1);
      expect(cpu[0]?.value).toBe(75);
      expect(cpu[0]?.ts.getTime()).toBe(now);
      expect(rows.filter((r) => r.name === 'mem.used_pct')).toHaveLength(2);
      expect((await t.metrics.jobErrors.get()).values).toEqual([]);
    } finally {
      await t.cleanup();
    }
  });

  it('runs in the server when WARDEN_SELF_COLLECT is on, under WARDEN_HOST_NAME, from the start', async () => {
    const t = await startTestServer('pglite', {
      WARDEN_SELF_COLLECT: 'true',
      WARDEN_HOST_NAME: 'warden-under-test',
      WARDEN_HEALTH_INTERVAL: '1h',
    });
    try {
      const db = t.server.database.db;
      const memory = async (): Promise<number> => {
        const rows = await db
          .selectFrom('metric_samples as s')
          .innerJoin('metric_series as m', 'm.id', 's.series_id')
          .innerJoin('hosts as h', 'h.id', 'm.host_id')
          .select('s.value')
          .where('h.name', '=', 'warden-under-test')
          .where('m.name', '=', 'mem.total_bytes')
          .execute();
        return rows.length;
      };
      const deadline = Date.now() + 20_000;
      while ((await memory()) === 0) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const host = await db
        .selectFrom('hosts')
        .select('interval_s')
        .where('name', '=', 'warden-under-test')
        .executeTakeFirstOrThrow();
      expect(host.interval_s).toBe(10);
    } finally {
      await t.cleanup();
    }
  });
});
