/**
 * The embedded data directory belongs to one process at a time (two PGlite processes on
 * one directory corrupt it). With real processes: a running `warden serve` keeps a second
 * opener and the CLI out with a message naming its pid; a lock left by a dead process is
 * taken over; closing removes the lock.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/engine.js';
import { DataDirLockedError, LOCK_FILE } from '../../src/db/lock.js';
import { Migrator, loadMigrations } from '../../src/db/migrator.js';
import { createMetrics } from '../../src/metrics.js';
import { silentLogger, testConfig } from '../helpers/db.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = path.join(ROOT, 'src', 'cli', 'main.ts');
/** Upper bound for a child to start serving or for a CLI command to finish. */
const CHILD_TIMEOUT_MS = 60_000;

function tempDataDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'warden-lock-'));
}

function lockPath(dataDir: string): string {
  return path.join(dataDir, LOCK_FILE);
}

function lockHolder(dataDir: string): number {
  return (JSON.parse(fs.readFileSync(lockPath(dataDir), 'utf8')) as { pid: number }).pid;
}

/** Environment of a CLI child on the embedded engine in `dataDir`. */
function cliEnv(dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WARDEN_DATA_DIR: dataDir,
    WARDEN_HOST: '127.0.0.1',
    WARDEN_PORT: '0',
    WARDEN_LOG_LEVEL: 'info',
    WARDEN_LOG_FORMAT: 'json',
    WARDEN_HEALTH_INTERVAL: '1h',
  };
  delete env.DATABASE_URL;
  delete env.DATABASE_READ_URL;
  return env;
}

function startCli(dataDir: string, args: string[]): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env: cliEnv(dataDir) });
}

interface Finished {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Waits for a child to exit (SIGKILL after CHILD_TIMEOUT_MS) and collects its output. */
function finished(child: ChildProcessWithoutNullStreams): Promise<Finished> {
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function runCli(dataDir: string, args: string[]): Promise<Finished> {
  return finished(startCli(dataDir, args));
}

async function open(dataDir: string): Promise<Database> {
  const config = testConfig({ WARDEN_DATA_DIR: dataDir });
  return openDatabase({ config: config.database, logger: silentLogger, metrics: createMetrics() });
}

/** The pid of a process that has exited (and been reaped), so no process has it now. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('close', resolve));
  const pid = child.pid!;
  expect(() => process.kill(pid, 0)).toThrow();
  return pid;
}

describe('a data directory held by a running `warden serve`', () => {
  let dataDir: string;
  let server: ChildProcessWithoutNullStreams;
  let exited: Promise<Finished>;
  let url: string;

  beforeAll(async () => {
    dataDir = tempDataDir();
    server = startCli(dataDir, ['serve']);
    exited = finished(server);
    // Serving once the "Warden is serving" log line (JSON on stdout) names its URL.
    url = await new Promise<string>((resolve, reject) => {
      let buffered = '';
      server.stdout.on('data', (chunk: string) => {
        buffered += chunk;
        for (const line of buffered.split('\n').slice(0, -1)) {
          if (line.includes('"Warden is serving"')) {
            resolve((JSON.parse(line) as { url: string }).url);
          }
        }
      });
      void exited.then((r) => reject(new Error(`serve exited early (code ${r.code}):\n${r.stderr}${r.stdout}`)));
    });
  });

  afterAll(async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses a second opener with DataDirLockedError naming the holder pid, and the server keeps serving', async () => {
    expect(lockHolder(dataDir)).toBe(server.pid);

    const attempt = open(dataDir);
    await expect(attempt).rejects.toBeInstanceOf(DataDirLockedError);
    const error = (await attempt.catch((e: unknown) => e)) as DataDirLockedError;
    expect(error.holderPid).toBe(server.pid);
    expect(error.message).toContain(`pid ${server.pid}`);
    expect(error.message).toContain(dataDir);

    // The refused attempt left the holder's lock and its server alone.
    expect(lockHolder(dataDir)).toBe(server.pid);
    const res = await fetch(`${url}/health/ready`);
    expect(res.status).toBe(200);
  });

  it('refuses `warden db status` with a non-zero exit and the holder pid on stderr', async () => {
    const result = await runCli(dataDir, ['db', 'status']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`in use by another Warden process (pid ${server.pid})`);
    expect(result.stdout).not.toContain('applied:');
    expect(lockHolder(dataDir)).toBe(server.pid);
  });

  it('on SIGTERM closes gracefully (exit 0), removes the lock, and the directory opens again', async () => {
    server.kill('SIGTERM');
    const result = await exited;
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('"Warden stopped"');
    expect(fs.existsSync(lockPath(dataDir))).toBe(false);

    const status = await runCli(dataDir, ['db', 'status']);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('pending: 0');
    expect(fs.existsSync(lockPath(dataDir))).toBe(false);
  });
});

describe('the lock of an embedded data directory', () => {
  // One data directory for these tests (creating one costs seconds); each leaves it unlocked.
  let dataDir: string;

  beforeAll(async () => {
    dataDir = tempDataDir();
    const database = await open(dataDir);
    await new Migrator(database.db, await loadMigrations()).migrate();
    await database.db.insertInto('health_checks').values({ component: 'before-crash', status: 'pass' }).execute();
    await database.close();
  });

  afterAll(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it.each([
    [
      'holds the pid of a process that no longer exists',
      async () =>
        JSON.stringify({ pid: await deadPid(), hostname: os.hostname(), started_at: new Date().toISOString() }),
    ],
    ['was left empty by a crash while it was written', async () => ''],
  ])('is taken over when it %s, and the data is intact', async (_case, content) => {
    fs.writeFileSync(lockPath(dataDir), await content());

    const database = await open(dataDir);
    try {
      expect(lockHolder(dataDir)).toBe(process.pid);
      const rows = await database.db.selectFrom('health_checks').select('component').execute();
      expect(rows).toEqual([{ component: 'before-crash' }]);
    } finally {
      await database.close();
    }
    expect(fs.existsSync(lockPath(dataDir))).toBe(false);
  });

  it('is held while the database is open and removed by close()', async () => {
    const database = await open(dataDir);
    expect(lockHolder(dataDir)).toBe(process.pid);
    await database.close();
    expect(fs.existsSync(lockPath(dataDir))).toBe(false);

    // Nothing is left behind: the next opener (here, another process) gets in.
    const status = await runCli(dataDir, ['db', 'status']);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('pending: 0');
  });
});
