/** Readers for single environment variables; each records a problem instead of throwing. */

export interface EnvReader {
  readonly env: NodeJS.ProcessEnv;
  readonly problems: string[];
}

/** Start-up configuration is invalid; `problems` names each variable, its value and what is allowed. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function raw(r: EnvReader, name: string): string | undefined {
  const value = r.env[name];
  if (value === undefined || value.trim() === '') {
    return undefined;
  }
  return value.trim();
}

export function readString(r: EnvReader, name: string, fallback: string): string {
  return raw(r, name) ?? fallback;
}

export function readInteger(
  r: EnvReader,
  name: string,
  fallback: number,
  min: number,
  max: number,
  expected = `an integer ${min}-${max}`,
): number {
  const value = raw(r, name);
  if (value === undefined) {
    return fallback;
  }
  if (!/^-?\d+$/.test(value)) {
    r.problems.push(`${name} must be ${expected}, got ${JSON.stringify(value)}`);
    return fallback;
  }
  const parsed = Number(value);
  if (parsed < min || parsed > max) {
    r.problems.push(`${name} must be ${expected}, got ${JSON.stringify(value)}`);
    return fallback;
  }
  return parsed;
}

export function readBoolean(r: EnvReader, name: string, fallback: boolean): boolean {
  const value = raw(r, name);
  if (value === undefined) {
    return fallback;
  }
  const lower = value.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lower)) {
    return true;
  }
  if (['false', '0', 'no', 'off'].includes(lower)) {
    return false;
  }
  r.problems.push(`${name} must be true or false, got ${JSON.stringify(value)}`);
  return fallback;
}

export function readEnum<const T extends string>(r: EnvReader, name: string, allowed: readonly T[], fallback: T): T {
  const value = raw(r, name);
  if (value === undefined) {
    return fallback;
  }
  if ((allowed as readonly string[]).includes(value)) {
    return value as T;
  }
  r.problems.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return fallback;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a duration: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
 * Returns milliseconds.
 */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) {
    return undefined;
  }
  const amount = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor = DURATION_UNITS[unit];
  return factor === undefined ? undefined : Math.round(amount * factor);
}

export function readDuration(r: EnvReader, name: string, fallbackMs: number, minMs: number, maxMs: number): number {
  const value = raw(r, name);
  if (value === undefined) {
    return fallbackMs;
  }
  const parsed = parseDuration(value);
  if (parsed === undefined || parsed < minMs || parsed > maxMs) {
    r.problems.push(
      `${name} must be a duration between ${minMs}ms and ${maxMs / 1000}s (e.g. 30s, 500ms, 5m; a bare number means seconds), got ${JSON.stringify(value)}`,
    );
    return fallbackMs;
  }
  return parsed;
}

export function readUrl(r: EnvReader, name: string, protocols: readonly string[]): string | undefined {
  const value = raw(r, name);
  if (value === undefined) {
    return undefined;
  }
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    // Never echo the value: a connection string may carry a password.
    r.problems.push(`${name} must be a URL like postgres://user:password@host:5432/db, got an unparseable value`);
    return undefined;
  }
  if (!protocols.includes(parsed.protocol)) {
    r.problems.push(`${name} must use one of ${protocols.join(', ')}, got "${parsed.protocol}"`);
    return undefined;
  }
  return value;
}

/** A secret value: never echoed in a problem message. */
export function readSecret(r: EnvReader, name: string, minLength: number): string | undefined {
  const value = r.env[name];
  if (value === undefined || value === '') {
    return undefined;
  }
  if (value.length < minLength) {
    r.problems.push(`${name} must be at least ${minLength} characters long (value not shown)`);
    return undefined;
  }
  return value;
}
