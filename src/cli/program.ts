/**
 * The `warden` command. Sub-commands parse their arguments, call the same code the
 * server uses, and print a human summary (or JSON with --json).
 */
import { Command } from 'commander';
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { DatabaseUnavailableError } from '../db/engine.js';
import { DataDirLockedError } from '../db/lock.js';
import { MigrationError } from '../db/migrator.js';
import { AppError } from '../errors.js';
import { createLogger } from '../logger.js';
import { startServer } from '../server.js';
import { VERSION } from '../version.js';
import { CliExit, EXIT_CONFIG, EXIT_FAILURE } from './common.js';
import { registerDataCommands } from './data.js';
import { registerDbCommands } from './db.js';
import { registerUserCommands } from './users.js';
import { registerAgentCommand } from './agent.js';

function config(): Config {
  return loadConfig();
}

async function serve(): Promise<void> {
  const cfg = config();
  const logger = createLogger(cfg.log);
  const server = await startServer({ config: cfg, logger });
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT_FAILURE);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('warden')
    .description('Warden: self-hosted monitoring and operations on an embedded PostgreSQL (PGlite) or PostgreSQL')
    .version(VERSION)
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nConfiguration comes from the environment (WARDEN_*, DATABASE_URL); see README.md for the table.',
    );

  program.command('serve').description('run the Warden server (HTTP API, jobs) until SIGINT/SIGTERM').action(serve);

  registerDbCommands(program, config);
  registerUserCommands(program, config);
  registerDataCommands(program, config);
  registerAgentCommand(program, config);
  return program;
}

export function reportFatal(error: unknown): number {
  if (error instanceof ConfigError) {
    process.stderr.write(`warden: ${error.message}\n`);
    return EXIT_CONFIG;
  }
  if (error instanceof CliExit) {
    if (error.message !== '') {
      process.stderr.write(`warden: ${error.message}\n`);
    }
    return error.exitCode;
  }
  if (error instanceof AppError) {
    const field = error.field === undefined ? '' : ` (${error.field})`;
    process.stderr.write(`warden: ${error.message}${field}\n`);
    return error.code === 'validation' ? EXIT_CONFIG : EXIT_FAILURE;
  }
  if (
    error instanceof DataDirLockedError ||
    error instanceof DatabaseUnavailableError ||
    error instanceof MigrationError
  ) {
    process.stderr.write(`warden: ${error.message}\n`);
    return EXIT_FAILURE;
  }
  process.stderr.write(
    `warden: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  return EXIT_FAILURE;
}
