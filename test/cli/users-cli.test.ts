/**
 * `warden users …`, `warden keys …` and the first admin of `warden serve`, through the
 * real CLI against an embedded data directory of its own.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { baseEnv, runCli, show, SLOW } from '../helpers/cli.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-users-cli-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Starts `warden serve`, returns its stdout once it says it is serving, then stops it with SIGTERM. */
async function serveOnce(dataDir: string): Promise<{ stdout: string; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cwd: path.resolve(import.meta.dirname, '..', '..'),
    env: {
      ...baseEnv(),
      WARDEN_DATA_DIR: dataDir,
      WARDEN_PORT: '0',
      WARDEN_LOG_FORMAT: 'json',
      WARDEN_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  const serving = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${stdout}`)), 90_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('Warden is serving')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  try {
    await serving;
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { stdout, code };
}

describe('first admin and user management from the CLI', () => {
  const dataDir = tempDir();
  const env = { WARDEN_DATA_DIR: dataDir };

  it(
    'prints a generated first-admin password once, in a marked block, and never logs it',
    async () => {
      const first = await serveOnce(dataDir);
      expect(first.code).toBe(0);
      const match = /password: (\S+)/.exec(first.stdout);
      expect(match, first.stdout).not.toBeNull();
      const password = match?.[1] ?? '';
      expect(password.length).toBeGreaterThanOrEqual(20);
      expect(first.stdout).toContain('Warden created the first admin account');
      expect(first.stdout).toContain('e-mail:   admin@localhost');
      // Only the marked block carries it: no JSON log line does.
      const logLines = first.stdout.split('\n').filter((line) => line.startsWith('{'));
      expect(logLines.some((line) => line.includes(password))).toBe(false);

      const second = await serveOnce(dataDir);
      expect(second.stdout).not.toContain('first admin');
      expect(second.stdout).not.toContain(password);
    },
    SLOW,
  );

  it(
    'creates, lists, disables users and resets passwords',
    async () => {
      const created = await runCli(
        ['users', 'create', '--email', 'ops@example.com', '--role', 'operator', '--password-stdin'],
        env,
        'operator-password-123\n',
      );
      expect(created.code, show(created)).toBe(0);
      expect(created.stdout).toContain('created ops@example.com (operator)');
      expect(created.stdout).not.toContain('operator-password-123');

      const generated = await runCli(
        ['users', 'create', '--email', 'viewer@example.com', '--role', 'viewer', '--json'],
        env,
      );
      expect(generated.code, show(generated)).toBe(0);
      const body = JSON.parse(generated.stdout) as { generated_password: string; role: string };
      expect(body.role).toBe('viewer');
      expect(body.generated_password.length).toBeGreaterThanOrEqual(20);

      const badRole = await runCli(['users', 'create', '--email', 'x@example.com', '--role', 'root'], env);
      expect(badRole.code).toBe(2);
      expect(badRole.stderr).toContain('--role must be one of viewer, operator, admin, got "root"');

      const duplicate = await runCli(['users', 'create', '--email', 'OPS@example.com', '--role', 'viewer'], env);
      expect(duplicate.code).toBe(1);
      expect(duplicate.stderr).toMatch(/^warden: .*(already|exists)/im);
      expect(duplicate.stderr).not.toMatch(/\bat .*\.ts:\d+/);

      const disabled = await runCli(['users', 'disable', 'ops@example.com'], env);
      expect(disabled.code, show(disabled)).toBe(0);

      const list = await runCli(['users', 'list', '--json'], env);
      const users = JSON.parse(list.stdout) as { email: string; disabled_at: string | null }[];
      expect(users.map((u) => u.email).sort()).toEqual(['admin@localhost', 'ops@example.com', 'viewer@example.com']);
      expect(users.find((u) => u.email === 'ops@example.com')?.disabled_at).not.toBeNull();

      const reset = await runCli(['users', 'reset-password', 'viewer@example.com'], env);
      expect(reset.code, show(reset)).toBe(0);
      expect(reset.stdout).toMatch(/new password \(shown once\): \S{20,}/);
    },
    SLOW,
  );

  it(
    'creates an API key shown once, and rejects bad scopes',
    async () => {
      const key = await runCli(
        [
          'keys',
          'create',
          '--name',
          'agent',
          '--scopes',
          'ingest,read',
          '--user',
          'admin@localhost',
          '--expires-in',
          '30d',
          '--json',
        ],
        env,
      );
      expect(key.code, show(key)).toBe(0);
      const body = JSON.parse(key.stdout) as { key: string; scopes: string[]; expires_at: string };
      expect(body.key).toMatch(/^wdn_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{32,}$/);
      expect([...body.scopes].sort()).toEqual(['ingest', 'read']);
      expect(new Date(body.expires_at).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);

      const bad = await runCli(
        ['keys', 'create', '--name', 'x', '--scopes', 'read,superuser', '--user', 'admin@localhost'],
        env,
      );
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--scopes must be a comma-separated list of read, write, ingest, admin');
    },
    SLOW,
  );
});
