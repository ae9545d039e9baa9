/**
 * An exclusive lock on the embedded data directory. PGlite has no lock of its own, and
 * two processes writing one data directory corrupt it (electric-sql/pglite #1106).
 * The lock file holds the owner's pid; a lock left by a dead process is taken over.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'warden.lock';

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holderPid: number,
  ) {
    super(
      `The data directory ${dataDir} is in use by another Warden process (pid ${holderPid}). ` +
        'Stop that process, or set WARDEN_DATA_DIR to another directory.',
    );
    this.name = 'DataDirLockedError';
  }
}

interface LockContent {
  pid: number;
  hostname: string;
  started_at: string;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(lockPath: string): number | undefined {
  try {
    const content = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Partial<LockContent>;
    return typeof content.pid === 'number' ? content.pid : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the lock or throws {@link DataDirLockedError}; returns the function that releases it. */
export function lockDataDir(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const lockPath = path.join(dataDir, LOCK_FILE);
  const content: LockContent = { pid: process.pid, hostname: os.hostname(), started_at: new Date().toISOString() };

  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      fs.writeFileSync(lockPath, JSON.stringify(content), { flag: 'wx' });
      return () => {
        if (readHolder(lockPath) === process.pid) {
          fs.rmSync(lockPath, { force: true });
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw error;
      }
    }
    const holder = readHolder(lockPath);
    if (holder !== undefined && holder !== process.pid && isAlive(holder)) {
      throw new DataDirLockedError(dataDir, holder);
    }
    if (holder === process.pid) {
      throw new DataDirLockedError(dataDir, holder);
    }
    // Stale (dead pid) or unreadable lock: take it over.
    fs.rmSync(lockPath, { force: true });
  }
  throw new Error(`Could not take the lock ${lockPath}; another process keeps recreating it`);
}
