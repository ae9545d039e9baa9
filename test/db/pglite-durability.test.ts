/**
 * The embedded engine's durability promise: a transaction reported committed survives
 * `kill -9` of the process. A real child process (test/fixtures/durability-writer.ts)
 * commits rows one transaction at a time and prints each id after its commit returned;
 * the test kills it with SIGKILL at a random moment, reopens the data directory (taking
 * over the dead process's lock) and checks every reported id is there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/engine.js';
import { LOCK_FILE } from '../../src/db/lock.js';
import { Migrator, loadMigrations } from '../../src/db/migrator.js';
import { createMetrics } from '../../src/metrics.js';
import { silentLogger, testConfig } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITER = path.join(ROOT, 'test', 'fixtures', 'durability-writer.ts');
/** Ids the writer must have reported before the kill is armed. */
const MIN_REPORTED = 30;
/** Upper bound of the random extra delay before SIGKILL, ms. */
const MAX_EXTRA_DELAY_MS = 500;
/** How long a writer may take to start and report MIN_REPORTED ids. */
const START_TIMEOUT_MS = 30_000;
/** Each round kills a writer; the next one starts on the data directory the previous left. */
const ROUNDS = 2;

interface KilledWriter {
  readonly pid: number;
  /** Ids the writer printed, i.e. whose commit had returned, in order. */
  readonly ids: number[];
  readonly signal: NodeJS.Signals | null;
  readonly extraDelayMs: number;
}

const children = new Set<ChildProcess>();
let dataDir: string;

beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-durability-'));
});

afterEach(() => {
  for (const child of children) {
    child.kill('SIGKILL');
  }
  children.clear();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Complete lines of `text`; a trailing line without its newline is not complete. */
function completeLines(text: string): string[] {
  const lines = text.split('\n');
  lines.pop();
  return lines;
}

/** Starts a writer, lets it report MIN_REPORTED ids plus a random extra delay, then SIGKILLs it. */
async function runAndKill(round: number): Promise<KilledWriter> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WARDEN_DATA_DIR: dataDir,
    WARDEN_LOG_LEVEL: 'warn',
    WARDEN_LOG_FORMAT: 'json',
    DURABILITY_ROUND: String(round),
    DURABILITY_MAX_ROWS: '20000',
    DURABILITY_MAX_MS: '60000',
  };
  delete env.DATABASE_URL;
  delete env.DATABASE_READ_URL;
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<NodeJS.Signals | null>((resolve) => {
    child.on('close', (_code, signal) => resolve(signal));
  });

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`writer reported too few ids within ${START_TIMEOUT_MS} ms; stderr:\n${stderr}`));
    }, START_TIMEOUT_MS);
    const check = (): void => {
      const reported = completeLines(stdout).filter((line) => /^\d+$/.test(line)).length;
      if (reported >= MIN_REPORTED) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      check();
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`writer exited early (code ${code}, signal ${signal}); stderr:\n${stderr}`));
    });
  });

  const extraDelayMs = Math.floor(Math.random() * (MAX_EXTRA_DELAY_MS + 1));
  await sleep(extraDelayMs);
  child.kill('SIGKILL');
  // 'close' fires once the process is gone and its stdout is drained: every id it printed is in.
  const signal = await closed;
  children.delete(child);

  const lines = completeLines(stdout);
  expect(lines[0], `writer output starts with ready; stderr:\n${stderr}`).toBe('ready');
  const ids = lines.slice(1).map((line) => {
    expect(line, 'writer printed only ids after ready').toMatch(/^\d+$/);
    return Number(line);
  });
  return { pid: child.pid!, ids, signal, extraDelayMs };
}

async function openDataDir(): Promise<Database> {
  const config = testConfig({ WARDEN_DATA_DIR: dataDir });
  return openDatabase({ config: config.database, logger: silentLogger, metrics: createMetrics() });
}

describe('embedded engine durability', () => {
  it('keeps every transaction reported committed when the process is killed with SIGKILL', async () => {
    const reported: number[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const writer = await runAndKill(round);
      const context = `round ${round}, SIGKILL ${writer.extraDelayMs} ms after ${MIN_REPORTED} ids`;
      // It was really killed mid-stream, not finished: the kill is what the test is about.
      expect(writer.signal, context).toBe('SIGKILL');
      expect(writer.ids.length, context).toBeGreaterThanOrEqual(MIN_REPORTED);
      // The dead writer's lock is still there; opening must take it over.
      const lock = JSON.parse(fs.readFileSync(path.join(dataDir, LOCK_FILE), 'utf8')) as { pid: number };
      expect(lock.pid, context).toBe(writer.pid);
      reported.push(...writer.ids);

      const database = await openDataDir();
      try {
        const rows = await database.db
          .selectFrom('health_checks')
          .select(['id', 'component', 'latency_ms'])
          .where('component', 'like', 'durability-%')
          .orderBy('id')
          .execute();
        const stored = new Set(rows.map((r) => r.id));
        const missing = reported.filter((id) => !stored.has(id));
        expect(missing, `${context}: reported committed but lost`).toEqual([]);

        // This round's rows are exactly its transactions in order: the reported ones plus at
        // most one that committed just before the kill but was not printed yet.
        const thisRound = rows.filter((r) => r.component === `durability-${round}`);
        expect(thisRound.length, context).toBeGreaterThanOrEqual(writer.ids.length);
        expect(thisRound.length, context).toBeLessThanOrEqual(writer.ids.length + 1);
        expect(
          thisRound.map((r) => r.latency_ms),
          context,
        ).toEqual(thisRound.map((_, seq) => seq));

        // The recovered database is consistent and writable.
        const state = await new Migrator(database.db, await loadMigrations()).status();
        expect(state.pending).toEqual([]);
        const inserted = await database.db
          .insertInto('health_checks')
          .values({ component: 'after-recovery', status: 'pass' })
          .returning('id')
          .executeTakeFirstOrThrow();
        expect(inserted.id).toBeGreaterThan(Math.max(...reported));
      } finally {
        await database.close();
      }
      expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);
    }
  }, 180_000);
});
