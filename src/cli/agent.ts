/**
 * `warden agent`: runs the host collector on this machine and pushes its samples to a
 * Warden server until SIGINT/SIGTERM, buffering in memory while the server is unreachable.
 */
import type { Command } from 'commander';
import { loadAgentConfig, type Config } from '../config/index.js';
import { parseDuration } from '../config/parse.js';
import { Agent, DEFAULT_BUFFER_MS } from '../agent/agent.js';
import { HostCollector } from '../domain/metrics/collector.js';
import { MAX_HOST_NAME_LENGTH } from '../domain/metrics/types.js';
import { createLogger } from '../logger.js';
import { CliExit, EXIT_CONFIG, EXIT_FAILURE } from './common.js';

/** On SIGINT/SIGTERM the agent tries to send what it buffered for at most this long. */
const FINAL_FLUSH_MS = 5000;
const MIN_INTERVAL_MS = 1000;
const MAX_INTERVAL_MS = 3_600_000;
/** The server refuses samples older than its raw retention; a day of buffer is far inside it. */
const MAX_BUFFER_MS = 86_400_000;

interface AgentCliOptions {
  server: string;
  apiKey?: string;
  interval?: string;
  name?: string;
  buffer: string;
}

function parseServerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliExit(EXIT_CONFIG, `--server must be a URL like https://warden.example.com, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliExit(EXIT_CONFIG, `--server must be an http:// or https:// URL, got "${value}"`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new CliExit(EXIT_CONFIG, '--server must not carry credentials; give the API key with WARDEN_AGENT_API_KEY');
  }
  return value;
}

function parseDurationOption(name: string, value: string, minMs: number, maxMs: number): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms < minMs || ms > maxMs) {
    throw new CliExit(
      EXIT_CONFIG,
      `${name} must be a duration between ${minMs / 1000}s and ${maxMs / 3_600_000}h (e.g. 10s, 5m, 1h), got "${value}"`,
    );
  }
  return ms;
}

async function runAgent(config: Config, opts: AgentCliOptions): Promise<void> {
  const serverUrl = parseServerUrl(opts.server);
  const apiKey = opts.apiKey ?? loadAgentConfig().apiKey;
  if (apiKey === undefined || apiKey === '') {
    throw new CliExit(
      EXIT_CONFIG,
      'an API key with the ingest scope is required: set WARDEN_AGENT_API_KEY (preferred: arguments show in ps) ' +
        'or pass --api-key; create one with `warden keys create --scopes ingest …`',
    );
  }
  const intervalMs =
    opts.interval === undefined
      ? config.metrics.collectIntervalMs
      : parseDurationOption('--interval', opts.interval, MIN_INTERVAL_MS, MAX_INTERVAL_MS);
  const bufferMs = parseDurationOption('--buffer', opts.buffer, intervalMs, MAX_BUFFER_MS);
  const hostName = (opts.name ?? config.metrics.hostName).trim();
  if (hostName === '' || hostName.length > MAX_HOST_NAME_LENGTH) {
    throw new CliExit(EXIT_CONFIG, `--name must be 1-${MAX_HOST_NAME_LENGTH} characters, got "${hostName}"`);
  }

  const logger = createLogger(config.log);
  const collector = new HostCollector({ hostName, logger });
  logger.info({ host: hostName, source: collector.source }, 'collecting host metrics');
  const agent = new Agent({ serverUrl, apiKey, intervalMs, bufferMs, collector, logger });
  agent.start();

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(EXIT_FAILURE);
      }
      stopping = true;
      logger.info({ signal }, 'agent stopping; sending what is buffered');
      agent.stop(FINAL_FLUSH_MS).then(resolve, (error: unknown) => {
        logger.error({ err: error }, 'agent stop failed');
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  // Idle keep-alive connections would hold the process open; the work is done.
  process.exit(0);
}

export function registerAgentCommand(program: Command, config: () => Config): void {
  program
    .command('agent')
    .description("push this host's metrics to a Warden server until SIGINT/SIGTERM (buffers while it is unreachable)")
    .requiredOption('--server <url>', 'base URL of the Warden server, e.g. https://warden.example.com')
    .option('--api-key <key>', 'API key with the ingest scope (prefer WARDEN_AGENT_API_KEY: arguments show in ps)')
    .option('--interval <duration>', 'collection interval, 1s-1h (default WARDEN_COLLECT_INTERVAL, 10s)')
    .option('--name <name>', 'host name to report (default WARDEN_HOST_NAME, else the OS host name)')
    .option(
      '--buffer <duration>',
      'how much to keep while the server is unreachable; the oldest is dropped beyond it (max 24h)',
      `${DEFAULT_BUFFER_MS / 3_600_000}h`,
    )
    .action((opts: AgentCliOptions) => runAgent(config(), opts));
}
