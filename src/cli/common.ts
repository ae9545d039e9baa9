import { InvalidArgumentError } from 'commander';

/** Exit codes: 1 failure, 2 invalid configuration or usage. */
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 2;

export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export function parsePositiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  }
  return Number(value);
}

/** Prints `value` as JSON for scripts (--json) or `text` for people. */
export function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
}
