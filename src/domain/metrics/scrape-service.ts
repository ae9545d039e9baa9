/**
 * Prometheus scrape targets: an operator registers a URL serving text exposition
 * (node_exporter, an application's /metrics); Warden scrapes it every `interval_s`,
 * keeps the samples the target's patterns select, stores them under the target's host,
 * and records every scrape, failed ones with a readable reason.
 *
 * Invariants:
 * - a configuration change and its audit entry commit together;
 * - a scrape is recorded whatever happened (except when abandoned because Warden is
 *   stopping), and the target's failure streak counts up on failure and resets on success;
 * - samples are stored at the time the scrape started, under `host_name`;
 * - a scrape stores at most MAX_SAMPLES_PER_SCRAPE samples; what it leaves out is in the
 *   run's notes.
 *
 * Validation errors name the API field (`interval_s`, `include[2]`); the input objects use
 * the API's field names for that reason.
 */
import { performance } from 'node:perf_hooks';
import type { Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import type { Metrics } from '../../metrics.js';
import type { AuditRecorder } from '../access/api-key-service.js';
import type { Actor } from '../access/permissions.js';
import type { IngestService } from './ingest-service.js';
import { ExpositionError, parseExpositionYielding } from './prometheus.js';
import { ScrapeAbortedError, ScrapeError, fetchExposition, type ExpositionFetcher } from './scrape-client.js';
import {
  MAX_PATTERNS,
  MAX_SAMPLES_PER_SCRAPE,
  noSamplesError,
  patternProblem,
  selectSamples,
  selectionNotes,
} from './scrape-filter.js';
import {
  ScrapeRepository,
  ScrapeTargetNameTaken,
  type ScrapeRun,
  type ScrapeTarget,
  type ScrapeTargetValues,
} from './scrape-repository.js';
import { MAX_HOST_NAME_LENGTH } from './types.js';

export type { ScrapeRun, ScrapeTarget } from './scrape-repository.js';

export const SCRAPE_TARGET_NAME_MAX_LENGTH = 100;
export const SCRAPE_INTERVAL_MIN_S = 5;
export const SCRAPE_INTERVAL_MAX_S = 86_400;
export const SCRAPE_INTERVAL_DEFAULT_S = 30;
export const SCRAPE_TIMEOUT_MIN_MS = 100;
export const SCRAPE_TIMEOUT_MAX_MS = 60_000;
export const SCRAPE_TIMEOUT_DEFAULT_MS = 5000;
/** Runs returned with one target. */
export const SCRAPE_RUNS_SHOWN = 20;
const MAX_URL_LENGTH = 2048;
const MAX_ERROR_LENGTH = 1000;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** A new target, with the API's field names. */
export interface ScrapeTargetInput {
  /** 1–100 characters, unique among live targets ignoring letter case. */
  readonly name: string;
  /** Absolute http(s) URL without credentials. */
  readonly url: string;
  /** The host samples are stored under; default the URL's host:port. */
  readonly host_name?: string;
  /** 5–86400, default 30. */
  readonly interval_s?: number;
  /** 100–60000 and less than the interval; default 5000 (1 s less than a shorter interval). */
  readonly timeout_ms?: number;
  /** Globs over Prometheus names; empty (default) = every metric. At most 50 of ≤ 200 characters. */
  readonly include?: readonly string[];
  /** Globs over Prometheus names; exclude wins over include. */
  readonly exclude?: readonly string[];
  /** Default true. */
  readonly enabled?: boolean;
}

/** A change to a target: the fields given are changed; `host_name: null` derives it from the URL again. */
export type ScrapeTargetPatch = Partial<Omit<ScrapeTargetInput, 'host_name'>> & { readonly host_name?: string | null };

/** The part of the ingest service the scraper needs. */
export type SampleSink = Pick<IngestService, 'ingest'>;

export interface ScrapeServiceOptions {
  /** How targets are fetched; the real HTTP client by default. */
  readonly fetcher?: ExpositionFetcher;
  /** Samples stored per scrape at most (default MAX_SAMPLES_PER_SCRAPE). */
  readonly maxSamplesPerScrape?: number;
  readonly now?: () => Date;
}

function parseId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ValidationError('id', `id must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function parseName(value: unknown): string {
  const name = typeof value === 'string' ? value.trim() : '';
  if (name.length === 0 || name.length > SCRAPE_TARGET_NAME_MAX_LENGTH || CONTROL_CHARS.test(name)) {
    throw new ValidationError(
      'name',
      `name must be 1 to ${SCRAPE_TARGET_NAME_MAX_LENGTH} characters without control characters, got ` +
        (typeof value === 'string' ? `${name.length} characters` : typeof value),
    );
  }
  return name;
}

function parseUrl(value: unknown): URL {
  const example = 'e.g. http://10.0.0.5:9100/metrics';
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ValidationError('url', `url is required: an absolute http or https URL, ${example}`);
  }
  const text = value.trim();
  if (text.length > MAX_URL_LENGTH) {
    throw new ValidationError('url', `url must be at most ${MAX_URL_LENGTH} characters, got ${text.length}`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ValidationError(
      'url',
      `url must be an absolute http or https URL, ${example}; got ${JSON.stringify(text).slice(0, 100)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError('url', `url must use http or https, got ${url.protocol.replace(/:$/, '')}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ValidationError('url', 'url must not contain a user name or password: they would be shown and logged');
  }
  return url;
}

function parseHostName(value: unknown): string {
  const host = typeof value === 'string' ? value.trim() : '';
  if (host.length === 0 || host.length > MAX_HOST_NAME_LENGTH || CONTROL_CHARS.test(host)) {
    throw new ValidationError(
      'host_name',
      `host_name must be 1 to ${MAX_HOST_NAME_LENGTH} characters without control characters`,
    );
  }
  return host;
}

function parseInteger(field: string, value: unknown, min: number, max: number, unit: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(
      field,
      `${field} must be a whole number of ${unit} between ${min} and ${max}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Checked patterns, duplicates removed, order kept. */
function parsePatterns(field: string, value: unknown): string[] {
  if (!Array.isArray(value)) {
    throw new ValidationError(field, `${field} must be a list of patterns such as ["node_cpu_*", "*_bytes"]`);
  }
  if (value.length > MAX_PATTERNS) {
    throw new ValidationError(field, `${field} may hold at most ${MAX_PATTERNS} patterns, got ${value.length}`);
  }
  value.forEach((pattern: unknown, index) => {
    const problem = patternProblem(pattern);
    if (problem !== undefined) {
      throw new ValidationError(`${field}[${index}]`, `${field}[${index}] ${problem}`);
    }
  });
  return [...new Set(value as string[])];
}

function parseEnabled(value: unknown): boolean {
  if (typeof value !== 'boolean') {
    throw new ValidationError('enabled', `enabled must be true or false, got ${JSON.stringify(value)}`);
  }
  return value;
}

function defaultTimeoutMs(intervalS: number): number {
  return Math.min(SCRAPE_TIMEOUT_DEFAULT_MS, intervalS * 1000 - 1000);
}

function checkTimeoutBelowInterval(timeoutMs: number, intervalS: number): void {
  if (timeoutMs >= intervalS * 1000) {
    throw new ValidationError(
      'timeout_ms',
      `timeout_ms must be less than the interval (${intervalS} s = ${intervalS * 1000} ms), got ${timeoutMs}`,
    );
  }
}

/**
 * A target's id and configuration with the API's field names: the first fields of the API's
 * scrape target, and what the audit log keeps of it.
 */
export function scrapeTargetConfiguration(target: ScrapeTarget): Record<string, unknown> {
  return {
    id: target.id,
    name: target.name,
    url: target.url,
    host_name: target.hostName,
    interval_s: target.intervalS,
    timeout_ms: target.timeoutMs,
    include: target.include,
    exclude: target.exclude,
    enabled: target.enabled,
  };
}

/** What the audit log keeps of a target: its configuration, not its scrape state. */
function auditView(target: ScrapeTarget): Record<string, unknown> {
  return { ...scrapeTargetConfiguration(target), deleted_at: target.deletedAt };
}

function sameValues(a: ScrapeTargetValues, b: ScrapeTargetValues): boolean {
  return (
    a.name === b.name &&
    a.url === b.url &&
    a.hostName === b.hostName &&
    a.intervalS === b.intervalS &&
    a.timeoutMs === b.timeoutMs &&
    a.enabled === b.enabled &&
    a.include.join('\n') === b.include.join('\n') &&
    a.exclude.join('\n') === b.exclude.join('\n')
  );
}

function truncate(message: string): string {
  return message.length > MAX_ERROR_LENGTH ? `${message.slice(0, MAX_ERROR_LENGTH)}…` : message;
}

/** The reason of a failed scrape, for people. */
function failureMessage(error: unknown): string {
  if (error instanceof ScrapeError || error instanceof ExpositionError) {
    return error.message;
  }
  const message = error instanceof Error ? error.message : String(error);
  return `storing the samples failed: ${message}`;
}

export class ScrapeService {
  private readonly repository: ScrapeRepository;
  private readonly fetcher: ExpositionFetcher;
  private readonly maxSamples: number;
  private readonly now: () => Date;

  constructor(
    private readonly db: Kysely<DB>,
    private readonly ingest: SampleSink,
    private readonly audit: AuditRecorder,
    private readonly metrics: Pick<Metrics, 'scrapeFailures'>,
    options: ScrapeServiceOptions = {},
  ) {
    this.repository = new ScrapeRepository(db);
    this.fetcher = options.fetcher ?? fetchExposition;
    this.maxSamples = options.maxSamplesPerScrape ?? MAX_SAMPLES_PER_SCRAPE;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Registers a target, due at once. ValidationError names the field (see
   * ScrapeTargetInput); ConflictError on `name` when a live target has it.
   */
  async create(actor: Actor, input: ScrapeTargetInput): Promise<ScrapeTarget> {
    const values = this.validate(input, undefined);
    return this.db.transaction().execute(async (trx) => {
      const created = await new ScrapeRepository(trx).insert(values, this.now());
      if (created === undefined) {
        throw this.nameTaken(values.name);
      }
      await this.audit.record(
        actor,
        {
          action: 'scrape_target.create',
          entityType: 'scrape_target',
          entityId: String(created.id),
          before: null,
          after: auditView(created),
        },
        trx,
      );
      return created;
    });
  }

  /** Live targets by name, each with its last scrape's outcome. */
  async list(): Promise<ScrapeTarget[]> {
    return this.repository.list();
  }

  /** A live target; NotFoundError otherwise. */
  async get(id: number): Promise<ScrapeTarget> {
    const target = await this.repository.findById(parseId(id));
    if (target === undefined) {
      throw new NotFoundError(`Scrape target ${id} does not exist`);
    }
    return target;
  }

  /** The latest scrapes of a live target, newest first (NotFoundError when there is none). */
  async runs(id: number, limit = SCRAPE_RUNS_SHOWN): Promise<ScrapeRun[]> {
    const target = await this.get(id);
    return this.repository.listRuns(target.id, limit);
  }

  /**
   * Changes the given fields; the target is then due at once, so the change shows in the
   * next scrape. A patch that changes nothing writes nothing and is not audited. The URL's
   * new host does not change `host_name` unless `host_name: null` asks for it.
   */
  async update(actor: Actor, id: number, patch: ScrapeTargetPatch): Promise<ScrapeTarget> {
    const targetId = parseId(id);
    return this.db.transaction().execute(async (trx) => {
      const repository = new ScrapeRepository(trx);
      const before = await repository.findById(targetId, { forUpdate: true });
      if (before === undefined) {
        throw new NotFoundError(`Scrape target ${id} does not exist`);
      }
      const values = this.validate(patch, before);
      if (sameValues(values, before)) {
        return before;
      }
      let after: ScrapeTarget | undefined;
      try {
        after = await repository.update(targetId, values, this.now());
      } catch (error) {
        if (error instanceof ScrapeTargetNameTaken) {
          throw this.nameTaken(values.name);
        }
        throw error;
      }
      if (after === undefined) {
        throw new NotFoundError(`Scrape target ${id} does not exist`);
      }
      await this.audit.record(
        actor,
        {
          action: 'scrape_target.update',
          entityType: 'scrape_target',
          entityId: String(targetId),
          before: auditView(before),
          after: auditView(after),
        },
        trx,
      );
      return after;
    });
  }

  /** Soft-deletes a target: it is no longer scraped or listed; its samples and runs stay. */
  async delete(actor: Actor, id: number): Promise<ScrapeTarget> {
    const targetId = parseId(id);
    return this.db.transaction().execute(async (trx) => {
      const repository = new ScrapeRepository(trx);
      const before = await repository.findById(targetId, { forUpdate: true });
      const deleted = before === undefined ? undefined : await repository.softDelete(targetId, this.now());
      if (before === undefined || deleted === undefined) {
        throw new NotFoundError(`Scrape target ${id} does not exist`);
      }
      await this.audit.record(
        actor,
        {
          action: 'scrape_target.delete',
          entityType: 'scrape_target',
          entityId: String(targetId),
          before: auditView(before),
          after: auditView(deleted),
        },
        trx,
      );
      return deleted;
    });
  }

  /**
   * Scrapes a live target now (also a disabled one: to try it before enabling it) and
   * returns the recorded run with the target as it is afterwards. Its next scheduled
   * scrape moves one interval ahead.
   */
  async scrapeNow(id: number): Promise<{ target: ScrapeTarget; run: ScrapeRun }> {
    const claimed = await this.repository.claim(parseId(id));
    if (claimed === undefined) {
      throw new NotFoundError(`Scrape target ${id} does not exist`);
    }
    const run = await this.scrape(claimed);
    return { target: await this.get(claimed.id), run };
  }

  /**
   * Claims up to `limit` due targets for this instance: no other instance claims them
   * until their next interval (see ScrapeRepository.claimDue).
   */
  async claimDue(limit: number): Promise<ScrapeTarget[]> {
    if (!Number.isInteger(limit) || limit < 1) {
      return [];
    }
    return this.repository.claimDue(limit);
  }

  /**
   * Scrapes a claimed target: fetches, parses, selects and stores its samples, and
   * records the run. Resolves with the run whether the scrape failed or not; rejects with
   * ScrapeAbortedError (nothing recorded) when `signal` aborts it, and with the database's
   * error when even the run cannot be recorded.
   */
  async scrape(target: ScrapeTarget, signal?: AbortSignal): Promise<ScrapeRun> {
    const startedAt = this.now();
    const started = performance.now();
    let samples = 0;
    let error: string | null = null;
    let notes: string | null = null;
    try {
      const text = await this.fetcher(target.url, { timeoutMs: target.timeoutMs, signal });
      const selection = selectSamples(await parseExpositionYielding(text), {
        include: target.include,
        exclude: target.exclude,
        maxSamples: this.maxSamples,
      });
      if (selection.samples.length === 0) {
        throw new ScrapeError(noSamplesError(selection));
      }
      const ts = startedAt.getTime();
      const result = await this.ingest.ingest(
        selection.samples.map((s) => ({
          host: target.hostName,
          metric: s.metric,
          labels: s.labels,
          value: s.value,
          ts,
        })),
        { intervalS: target.intervalS, now: this.now() },
      );
      samples = result.received;
      const left = selectionNotes(selection, this.maxSamples);
      notes = left === null ? null : truncate(left);
    } catch (failure) {
      if (failure instanceof ScrapeAbortedError) {
        throw failure;
      }
      error = truncate(failureMessage(failure));
    }
    const failed = error !== null;
    const run = await this.repository.recordRun(target.id, {
      ts: startedAt,
      status: failed ? 'failed' : 'ok',
      durationMs: performance.now() - started,
      samples,
      error,
      notes,
    });
    if (failed) {
      this.metrics.scrapeFailures.inc({ target: target.name });
    }
    return run;
  }

  private nameTaken(name: string): ConflictError {
    return new ConflictError(
      `A scrape target named ${JSON.stringify(name)} already exists (names ignore letter case)`,
      'name',
    );
  }

  /** The full configuration after applying `input` to `current` (a new target when undefined). */
  private validate(input: ScrapeTargetPatch, current: ScrapeTarget | undefined): ScrapeTargetValues {
    const name = input.name !== undefined || current === undefined ? parseName(input.name) : current.name;
    const url = input.url !== undefined || current === undefined ? parseUrl(input.url).toString() : current.url;
    let hostName: string;
    if (input.host_name === null || (input.host_name === undefined && current === undefined)) {
      hostName = parseHostName(new URL(url).host);
    } else if (input.host_name !== undefined) {
      hostName = parseHostName(input.host_name);
    } else {
      hostName = (current as ScrapeTarget).hostName;
    }
    const intervalS =
      input.interval_s !== undefined
        ? parseInteger('interval_s', input.interval_s, SCRAPE_INTERVAL_MIN_S, SCRAPE_INTERVAL_MAX_S, 'seconds')
        : (current?.intervalS ?? SCRAPE_INTERVAL_DEFAULT_S);
    const timeoutMs =
      input.timeout_ms !== undefined
        ? parseInteger('timeout_ms', input.timeout_ms, SCRAPE_TIMEOUT_MIN_MS, SCRAPE_TIMEOUT_MAX_MS, 'milliseconds')
        : (current?.timeoutMs ?? defaultTimeoutMs(intervalS));
    checkTimeoutBelowInterval(timeoutMs, intervalS);
    return {
      name,
      url,
      hostName,
      intervalS,
      timeoutMs,
      include: input.include !== undefined ? parsePatterns('include', input.include) : [...(current?.include ?? [])],
      exclude: input.exclude !== undefined ? parsePatterns('exclude', input.exclude) : [...(current?.exclude ?? [])],
      enabled: input.enabled !== undefined ? parseEnabled(input.enabled) : (current?.enabled ?? true),
    };
  }
}
