/** Runs the real `warden` CLI as a child process (`node --import tsx src/cli/main.ts …`). */
import { spawn, type ChildProcess } from 'node:child_process';
import { packageRoot } from '../../src/paths.js';

const ROOT = packageRoot();
/** Bound on one CLI run; a run starts Node, tsx and (for db commands) PGlite. */
const CLI_TIMEOUT_MS = 90_000;
/** Test timeout for tests that run the CLI once or twice. */
export const SLOW = 200_000;

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The parent's environment without any Warden or database setting of the developer's. */
export function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('WARDEN_') && !key.startsWith('DATABASE_')) {
      env[key] = value;
    }
  }
  return env;
}

export function runCli(args: readonly string[], env: Record<string, string>, stdin?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: ROOT,
      env: { ...baseEnv(), WARDEN_LOG_LEVEL: 'warn', WARDEN_LOG_FORMAT: 'json', ...env },
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: CLI_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    if (stdin !== undefined) {
      child.stdin?.end(stdin);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== null) {
        reject(new Error(`warden ${args.join(' ')} killed by ${signal}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Context for a failed expectation on a CLI run. */
export function show(result: CliResult): string {
  return `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

/** A long-running CLI command (`warden agent`, `warden serve`) started in the background. */
export interface RunningCli {
  readonly child: ChildProcess;
  /** What it printed so far. */
  output(): { stdout: string; stderr: string };
  /** Sends `signal` and resolves with how it ended (SIGKILL after CLI_TIMEOUT_MS as a last resort). */
  stop(signal?: NodeJS.Signals): Promise<CliResult>;
}

export function startCli(args: readonly string[], env: Record<string, string>): RunningCli {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    env: { ...baseEnv(), WARDEN_LOG_LEVEL: 'warn', WARDEN_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    child,
    output: () => ({ stdout, stderr }),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
      try {
        return await closed;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
