/**
 * The audit log: who changed what, when, and how it looked before and after.
 *
 * Invariants:
 * - append-only: there is no way to change or remove an entry through this service;
 * - secrets never reach it: `before`/`after` pass through `redactSecrets`, so a key named
 *   like a password, token or key hash is stored as "[redacted]" whatever its value;
 * - a change and its entry commit together: `record` takes the caller's transaction.
 */
import type { Kysely } from 'kysely';
import type { DB, JsonValue } from '../../db/schema.js';
import { ValidationError } from '../../errors.js';
import { AuditRepository, type AuditEntry, type AuditPosition } from './audit-repository.js';
import type { Actor } from './permissions.js';

export type { AuditEntry } from './audit-repository.js';

/** What replaces a secret's value. */
export const REDACTED = '[redacted]';

/** Keys whose values are secrets, at any depth of `before`/`after`. */
const SECRET_KEY = /password|secret|token|key_hash|password_hash|api_key$/i;

/** Nesting deeper than this is cut off: audit payloads are small, flat records. */
const MAX_DEPTH = 32;

export const AUDIT_PAGE_DEFAULT = 50;
export const AUDIT_PAGE_MAX = 200;

/**
 * Characters PostgreSQL cannot store: U+0000 (text and jsonb) and lone UTF-16 surrogates
 * (jsonb rejects their `\ud800` escapes). Replaced by U+FFFD rather than failing the write.
 */
// eslint-disable-next-line no-control-regex -- matching U+0000 is the point
const UNSTORABLE = /[\u0000\p{Cs}]/gu;

function storableText(text: string): string {
  return text.replace(UNSTORABLE, '\uFFFD');
}

/**
 * A JSON copy of `value` with every secret replaced by "[redacted]": object keys matching
 * /password|secret|token|key_hash|password_hash|api_key$/i, at any depth, also inside
 * arrays. Dates become ISO strings; undefined, functions and symbols are dropped (as
 * JSON.stringify does); non-finite numbers and bigints become strings.
 */
export function redactSecrets(value: unknown, depth = 0): JsonValue {
  if (value === null || value === undefined) {
    return null;
  }
  if (typeof value === 'string') {
    return storableText(value);
  }
  if (typeof value === 'boolean') {
    return value;
  }
  if (typeof value === 'number') {
    return Number.isFinite(value) ? value : String(value);
  }
  if (typeof value === 'bigint') {
    return value.toString();
  }
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? null : value.toISOString();
  }
  if (typeof value !== 'object') {
    return null; // functions, symbols
  }
  if (depth >= MAX_DEPTH) {
    return '[too deep]';
  }
  if (Array.isArray(value)) {
    return value.map((item: unknown) => redactSecrets(item, depth + 1));
  }
  const result: { [key: string]: JsonValue } = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') {
      continue;
    }
    result[storableText(key)] = SECRET_KEY.test(key) ? REDACTED : redactSecrets(item, depth + 1);
  }
  return result;
}

/** One change to record. */
export interface AuditChange {
  /** Dotted verb, e.g. `user.create`, `auth.login_failed`. */
  readonly action: string;
  /** What kind of thing changed, e.g. `user`, `api_key`. */
  readonly entityType: string;
  readonly entityId?: string | number | null;
  /** State before the change (omit for creations); secrets are redacted. */
  readonly before?: unknown;
  /** State after the change (omit for deletions); secrets are redacted. */
  readonly after?: unknown;
}

export interface AuditListQuery {
  readonly entityType?: string;
  readonly entityId?: string;
  /** An actor label (e.g. an e-mail, case-insensitive) or an actor id. */
  readonly actor?: string;
  /** Inclusive. */
  readonly from?: Date;
  /** Exclusive. */
  readonly to?: Date;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
  /** Entries per page, 1–200; default 50. */
  readonly limit?: number;
}

export interface AuditPage {
  readonly entries: AuditEntry[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  readonly nextCursor: string | null;
}

const CURSOR_TEXT = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|([1-9]\d{0,15})$/;

export function encodeCursor(position: AuditPosition): string {
  return Buffer.from(`${position.ts}|${position.id}`, 'utf8').toString('base64url');
}

/** Parses a cursor made by `encodeCursor`; anything else is a ValidationError on `cursor`. */
export function decodeCursor(cursor: string): AuditPosition {
  const invalid = new ValidationError(
    'cursor',
    'cursor is not one returned by a previous page of the audit log; start again without it',
  );
  if (cursor.length === 0 || cursor.length > 128 || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw invalid;
  }
  const match = CURSOR_TEXT.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const ts = match?.[1];
  const id = Number(match?.[2]);
  if (ts === undefined || !Number.isSafeInteger(id)) {
    throw invalid;
  }
  // Reject impossible dates (2026-02-30) here rather than as a database error.
  const date = new Date(`${ts.slice(0, 23)}Z`);
  if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 23) !== ts.slice(0, 23)) {
    throw invalid;
  }
  return { ts, id };
}

function checkDate(value: Date | undefined, field: string): void {
  if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
    throw new ValidationError(field, `${field} must be a valid date`);
  }
}

export class AuditService {
  constructor(
    private readonly db: Kysely<DB>,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Appends an entry for `change` made by `actor`. Pass the transaction that makes the
   * change as `db`, so the change and its entry commit or roll back together.
   */
  async record(actor: Actor, change: AuditChange, db: Kysely<DB> = this.db): Promise<void> {
    await new AuditRepository(db).insert({
      ts: this.now(),
      actorType: actor.type,
      actorId: actor.id,
      actorLabel: storableText(actor.label),
      action: storableText(change.action),
      entityType: storableText(change.entityType),
      entityId:
        change.entityId === undefined || change.entityId === null ? null : storableText(String(change.entityId)),
      before: change.before === undefined ? null : redactSecrets(change.before),
      after: change.after === undefined ? null : redactSecrets(change.after),
      ip: actor.ip === null ? null : storableText(actor.ip),
    });
  }

  /**
   * Entries newest first, filtered by entity, actor and time range, one page at a time.
   * Throws ValidationError for a bad cursor, limit or date.
   */
  async list(query: AuditListQuery = {}): Promise<AuditPage> {
    const limit = query.limit ?? AUDIT_PAGE_DEFAULT;
    if (!Number.isInteger(limit) || limit < 1 || limit > AUDIT_PAGE_MAX) {
      throw new ValidationError('limit', `limit must be an integer between 1 and ${AUDIT_PAGE_MAX}, got ${limit}`);
    }
    checkDate(query.from, 'from');
    checkDate(query.to, 'to');
    if (query.from !== undefined && query.to !== undefined && query.from > query.to) {
      throw new ValidationError('from', 'from must not be later than to');
    }
    const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    // Text filters compare against stored text, which never contains U+0000.
    const text = (value: string | undefined) => (value === undefined ? undefined : storableText(value));
    const rows = await new AuditRepository(this.db).list({
      entityType: text(query.entityType),
      entityId: text(query.entityId),
      actor: text(query.actor),
      from: query.from,
      to: query.to,
      after,
      limit: limit + 1,
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      entries: page.map((row) => row.entry),
      nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last.position) : null,
    };
  }
}
