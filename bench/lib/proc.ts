/**
 * CPU time and memory of processes, from Linux's /proc: what a benchmark needs to charge
 * the work of a database server (PostgreSQL runs in processes of its own) to the run.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS = ((): number => {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  /** utime + stime + cutime + cstime: the process's own CPU and that of its reaped children. */
  readonly cpuTicks: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
  // `pid (comm) state ppid …`: comm may contain spaces and parentheses, so split after the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); utime..cstime are fields 14..17.
  const num = (field: number): number => Number(fields[field - 3] ?? 0);
  return {
    pid,
    comm: text.slice(open + 1, close),
    ppid: num(4),
    cpuTicks: num(14) + num(15) + num(16) + num(17),
  };
}

/**
 * CPU milliseconds (user + system, reaped children included) of every process named
 * `comm` that descends from `rootPid`. A backend that exits moves its time into its
 * parent's children's time, so the total stays comparable across a run.
 */
export function descendantCpuMs(rootPid: number, comm: string): number {
  const stats: ProcStat[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    const pid = Number(entry);
    if (Number.isInteger(pid)) {
      const stat = readStat(pid);
      if (stat !== undefined) {
        stats.push(stat);
      }
    }
  }
  const children = new Map<number, ProcStat[]>();
  for (const stat of stats) {
    const list = children.get(stat.ppid) ?? [];
    list.push(stat);
    children.set(stat.ppid, list);
  }
  let ticks = 0;
  const queue = [...(children.get(rootPid) ?? [])];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (next.comm === comm) {
      ticks += next.cpuTicks;
    }
    queue.push(...(children.get(next.pid) ?? []));
  }
  return (ticks * 1000) / CLOCK_TICKS;
}

/** Least-squares slope of `values` against `times` (units of value per unit of time). */
export function slope(times: readonly number[], values: readonly number[]): number {
  const n = Math.min(times.length, values.length);
  if (n < 2) {
    return 0;
  }
  let meanT = 0;
  let meanV = 0;
  for (let i = 0; i < n; i += 1) {
    meanT += (times[i] ?? 0) / n;
    meanV += (values[i] ?? 0) / n;
  }
  let covariance = 0;
  let variance = 0;
  for (let i = 0; i < n; i += 1) {
    const dt = (times[i] ?? 0) - meanT;
    covariance += dt * ((values[i] ?? 0) - meanV);
    variance += dt * dt;
  }
  return variance === 0 ? 0 : covariance / variance;
}

/**
 * CPU milliseconds the whole machine has been busy (all cores: user, nice, system, irq,
 * softirq, steal) since boot. The difference over a run minus the benchmark's own
 * processes is what other work on the machine took meanwhile.
 */
export function machineBusyMs(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal …
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const ticks = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
  return (ticks * 1000) / CLOCK_TICKS;
}
