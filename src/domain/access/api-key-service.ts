/**
 * API keys: creating, listing and revoking them, and authenticating a request by one.
 *
 * A key reads `wdn_<prefix>_<secret>`: an 8-character alphanumeric prefix that finds the
 * key and a 256-bit base64url secret. Only the prefix and the SHA-256 hash of the whole
 * key are stored; the key itself is returned once, by `create`.
 *
 * Invariants:
 * - no method returns or audits a key's hash;
 * - a change and its audit entry commit together;
 * - a revocation takes effect at once on this instance (its cache entry is evicted) and
 *   within `cacheTtlMs` on every other instance (their cache entries expire);
 * - `last_used_at` is written at most once a minute per key, not once per request.
 */
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { DB } from '../../db/schema.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { ApiKeysRepository, type ApiKey, type ApiKeyCredentials } from './api-keys-repository.js';
import { SCOPES, permissionsOfKey, type Actor, type Principal, type Scope } from './permissions.js';
import { generateToken, sha256Hex } from './tokens.js';

export type { ApiKey } from './api-keys-repository.js';

/** The part of the audit service this service needs. */
export interface AuditRecorder {
  record(
    actor: Actor,
    entry: { action: string; entityType: string; entityId: string | null; before: unknown; after: unknown },
    db?: Kysely<DB>,
  ): Promise<void>;
}

export interface ApiKeyServiceOptions {
  /**
   * How long a key looked up for authentication is trusted before it is read again, in
   * milliseconds (default 1000). Bounds how long another instance accepts a revoked key.
   */
  readonly cacheTtlMs?: number;
  /** Most keys kept in the lookup cache (default 10 000); the oldest entries go first. */
  readonly cacheMaxEntries?: number;
}

export interface CreateApiKeyInput {
  /** 1–100 characters after trimming. */
  readonly name: string;
  /** A non-empty subset of `SCOPES`. */
  readonly scopes: readonly string[];
  /** Lifetime in seconds from now; give this or `expiresAt`, or neither for no expiry. */
  readonly expiresInS?: number;
  /** A moment in the future (Date or ISO 8601 text). */
  readonly expiresAt?: Date | string;
}

export interface CreatedApiKey {
  /** The full key. Shown once: it cannot be read back later. */
  readonly key: string;
  readonly record: ApiKey;
}

export const API_KEY_NAME_MAX_LENGTH = 100;
/** Longest lifetime a key may be given: ten years. */
export const API_KEY_MAX_LIFETIME_S = 10 * 365 * 86_400;
/** `last_used_at` is written at most this often per key. */
const LAST_USED_WRITE_INTERVAL_MS = 60_000;

const KEY_FORMAT = /^wdn_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{32,128})$/;
const PREFIX_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const PREFIX_ATTEMPTS = 5;

/** Stored hashes decoded to bytes once per cached lookup, not once per request. */
const storedDigests = new WeakMap<ApiKeyCredentials, Buffer>();

/**
 * Whether `bearer` hashes to the stored hash, compared in time independent of where they
 * differ. This runs on every request with a key: it hashes to raw bytes (no hex) and
 * compares against the stored hash decoded once per cache entry.
 */
function keyMatches(bearer: string, credentials: ApiKeyCredentials): boolean {
  let stored = storedDigests.get(credentials);
  if (stored === undefined) {
    stored = Buffer.from(credentials.keyHash, 'hex');
    storedDigests.set(credentials, stored);
  }
  const presented = createHash('sha256').update(bearer, 'utf8').digest();
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

function generatePrefix(): string {
  let prefix = '';
  for (let i = 0; i < 8; i += 1) {
    prefix += PREFIX_ALPHABET[randomInt(PREFIX_ALPHABET.length)];
  }
  return prefix;
}

function parseName(value: unknown): string {
  const name = typeof value === 'string' ? value.trim() : '';
  if (name.length === 0 || name.length > API_KEY_NAME_MAX_LENGTH) {
    throw new ValidationError(
      'name',
      `name must be 1 to ${API_KEY_NAME_MAX_LENGTH} characters long, got ${typeof value === 'string' ? name.length : typeof value}`,
    );
  }
  return name;
}

/** Deduplicated, in the order of `SCOPES`. */
function parseScopes(value: unknown): Scope[] {
  const allowed = SCOPES.join(', ');
  if (!Array.isArray(value) || value.length === 0) {
    throw new ValidationError('scopes', `scopes must be a non-empty list of: ${allowed}`);
  }
  const unknown = value.filter((s) => !(SCOPES as readonly unknown[]).includes(s));
  if (unknown.length > 0) {
    throw new ValidationError('scopes', `scopes may only contain ${allowed}; got ${JSON.stringify(unknown)}`);
  }
  return SCOPES.filter((scope) => value.includes(scope));
}

function parseId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ValidationError('id', `id must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** What the audit log keeps of a key: everything but the hash (which ApiKey never has). */
function auditView(key: ApiKey): ApiKey {
  return { ...key };
}

interface CacheEntry {
  /** undefined: no key has this prefix. */
  readonly credentials: ApiKeyCredentials | undefined;
  readonly expiresAtMs: number;
}

export class ApiKeyService {
  private readonly cacheTtlMs: number;
  private readonly cacheMaxEntries: number;
  /** Lookups by prefix; Map order is insertion order, so the first entry is the oldest. */
  private readonly cache = new Map<string, CacheEntry>();
  /** Bumped by every eviction, so a lookup that started before it does not fill the cache. */
  private cacheGeneration = 0;
  /** When this instance last wrote `last_used_at` of each key (ms since the epoch). */
  private readonly lastUsedWrites = new Map<number, number>();

  constructor(
    private readonly db: Kysely<DB>,
    private readonly audit: AuditRecorder,
    options: ApiKeyServiceOptions = {},
    private readonly now: () => Date = () => new Date(),
  ) {
    this.cacheTtlMs = options.cacheTtlMs ?? 1000;
    this.cacheMaxEntries = options.cacheMaxEntries ?? 10_000;
    if (!Number.isFinite(this.cacheTtlMs) || this.cacheTtlMs < 0) {
      throw new RangeError(`cacheTtlMs must be a non-negative number, got ${this.cacheTtlMs}`);
    }
  }

  /**
   * Creates a key for `owner`. Throws ValidationError on `name` (1–100 characters),
   * `scopes` (non-empty subset of read, write, ingest, admin), `expiresInS` or `expiresAt`
   * (in the future, at most ten years away, not both); NotFoundError when the owner does
   * not exist and ConflictError when the owner is disabled. The full key is in the result
   * and nowhere else.
   */
  async create(actor: Actor, owner: { userId: number }, input: CreateApiKeyInput): Promise<CreatedApiKey> {
    const name = parseName(input.name);
    const scopes = parseScopes(input.scopes);
    const createdAt = this.now();
    const expiresAt = this.parseExpiry(input, createdAt);
    const userId = parseId(owner.userId);
    const created = await this.db.transaction().execute(async (trx) => {
      const repository = new ApiKeysRepository(trx);
      const user = await repository.findOwner(userId);
      if (user === undefined) {
        throw new NotFoundError(`User ${userId} does not exist`);
      }
      if (user.disabledAt !== null) {
        throw new ConflictError(`User ${userId} is disabled; enable the account before creating keys for it`);
      }
      // A taken prefix (1 in 2^47 per existing key) just means drawing another.
      for (let attempt = 0; attempt < PREFIX_ATTEMPTS; attempt += 1) {
        const prefix = generatePrefix();
        const key = `wdn_${prefix}_${generateToken(32)}`;
        const record = await repository.insert({
          userId,
          name,
          prefix,
          keyHash: sha256Hex(key),
          scopes,
          createdAt,
          expiresAt,
        });
        if (record !== undefined) {
          await this.audit.record(
            actor,
            {
              action: 'api_key.create',
              entityType: 'api_key',
              entityId: String(record.id),
              before: null,
              after: auditView(record),
            },
            trx,
          );
          return { key, record };
        }
      }
      throw new Error(`Could not draw an unused API key prefix in ${PREFIX_ATTEMPTS} attempts`);
    });
    // Drops a "no such key" entry, should a lookup of this prefix have raced the commit.
    this.evict(created.record.prefix);
    return created;
  }

  /** Keys newest first, of one user when `userId` is given. Never includes hashes. */
  async list(filter: { userId?: number } = {}): Promise<ApiKey[]> {
    return new ApiKeysRepository(this.db).list(filter.userId === undefined ? {} : { userId: parseId(filter.userId) });
  }

  /**
   * The key with this id. With `userId`, a key of another user is reported as not found,
   * so callers limited to their own keys learn nothing about others'.
   */
  async get(id: number, scope: { userId?: number } = {}): Promise<ApiKey> {
    const key = await new ApiKeysRepository(this.db).findById(parseId(id));
    if (key === undefined || (scope.userId !== undefined && key.userId !== scope.userId)) {
      throw new NotFoundError(`API key ${id} does not exist`);
    }
    return key;
  }

  /**
   * Revokes a key: it stops authenticating at once on this instance and within
   * `cacheTtlMs` on others. Revoking a revoked key changes nothing and is not audited
   * again. `userId` limits the call to that user's keys, as for `get`.
   */
  async revoke(actor: Actor, id: number, scope: { userId?: number } = {}): Promise<ApiKey> {
    const keyId = parseId(id);
    const revoked = await this.db.transaction().execute(async (trx) => {
      const repository = new ApiKeysRepository(trx);
      const before = await repository.findById(keyId, { forUpdate: true });
      if (before === undefined || (scope.userId !== undefined && before.userId !== scope.userId)) {
        throw new NotFoundError(`API key ${id} does not exist`);
      }
      if (before.revokedAt !== null) {
        return before;
      }
      const after = await repository.revoke(keyId, this.now());
      if (after === undefined) {
        throw new NotFoundError(`API key ${id} does not exist`);
      }
      await this.audit.record(
        actor,
        {
          action: 'api_key.revoke',
          entityType: 'api_key',
          entityId: String(keyId),
          before: auditView(before),
          after: auditView(after),
        },
        trx,
      );
      return after;
    });
    this.evict(revoked.prefix);
    return revoked;
  }

  /**
   * The principal a bearer key stands for, or null when it is malformed, unknown, wrong,
   * revoked, expired, or its owner is disabled. The key's permissions are its owner's role
   * narrowed by its scopes.
   */
  async authenticate(bearer: string): Promise<Principal | null> {
    const match = KEY_FORMAT.exec(bearer);
    const prefix = match?.[1];
    if (prefix === undefined) {
      return null;
    }
    const credentials = await this.lookup(prefix);
    if (credentials === undefined || !keyMatches(bearer, credentials)) {
      return null;
    }
    const now = this.now();
    if (
      credentials.revokedAt !== null ||
      credentials.ownerDisabledAt !== null ||
      (credentials.expiresAt !== null && credentials.expiresAt <= now)
    ) {
      return null;
    }
    await this.noteUse(credentials.id, now);
    return {
      kind: 'api_key',
      userId: credentials.userId,
      email: credentials.email,
      role: credentials.role,
      apiKeyId: credentials.id,
      scopes: credentials.scopes,
      permissions: permissionsOfKey(credentials.role, credentials.scopes),
    };
  }

  private parseExpiry(input: CreateApiKeyInput, now: Date): Date | null {
    if (input.expiresInS !== undefined && input.expiresAt !== undefined) {
      throw new ValidationError('expiresAt', 'give expiresInS or expiresAt, not both');
    }
    if (input.expiresInS !== undefined) {
      const seconds = input.expiresInS;
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > API_KEY_MAX_LIFETIME_S) {
        throw new ValidationError(
          'expiresInS',
          `expiresInS must be a whole number of seconds between 1 and ${API_KEY_MAX_LIFETIME_S}, got ${seconds}`,
        );
      }
      return new Date(now.getTime() + seconds * 1000);
    }
    if (input.expiresAt !== undefined) {
      const at = input.expiresAt instanceof Date ? input.expiresAt : new Date(input.expiresAt);
      if (Number.isNaN(at.getTime())) {
        throw new ValidationError('expiresAt', 'expiresAt must be a date such as 2030-01-31T00:00:00Z');
      }
      if (at <= now || at.getTime() - now.getTime() > API_KEY_MAX_LIFETIME_S * 1000) {
        throw new ValidationError(
          'expiresAt',
          `expiresAt must be in the future and at most ten years away, got ${at.toISOString()}`,
        );
      }
      return at;
    }
    return null;
  }

  /** The key's credentials from the cache, or the database when absent or stale. */
  private async lookup(prefix: string): Promise<ApiKeyCredentials | undefined> {
    const nowMs = this.now().getTime();
    const cached = this.cache.get(prefix);
    if (cached !== undefined && cached.expiresAtMs > nowMs) {
      return cached.credentials;
    }
    const generation = this.cacheGeneration;
    const credentials = await new ApiKeysRepository(this.db).findCredentialsByPrefix(prefix);
    // A revocation evicted entries while we read: what we read may predate it; don't keep it.
    if (generation === this.cacheGeneration && this.cacheTtlMs > 0) {
      this.cache.delete(prefix);
      this.cache.set(prefix, { credentials, expiresAtMs: nowMs + this.cacheTtlMs });
      if (this.cache.size > this.cacheMaxEntries) {
        const oldest = this.cache.keys().next().value;
        if (oldest !== undefined) {
          this.cache.delete(oldest);
        }
      }
    }
    return credentials;
  }

  /** Drops every cached key of `userId` (after the user was disabled or changed role). */
  forgetUser(userId: number): void {
    this.cacheGeneration += 1;
    for (const [prefix, entry] of this.cache) {
      if (entry.credentials?.userId === userId) {
        this.cache.delete(prefix);
      }
    }
  }

  private evict(prefix: string): void {
    this.cacheGeneration += 1;
    this.cache.delete(prefix);
  }

  /**
   * Writes `last_used_at` if this instance has not in the last minute; the update itself
   * also skips keys another instance touched within the minute. A failed write does not
   * fail authentication: it is retried on the next use after the minute.
   */
  private async noteUse(keyId: number, now: Date): Promise<void> {
    const nowMs = now.getTime();
    const last = this.lastUsedWrites.get(keyId);
    if (last !== undefined && nowMs - last < LAST_USED_WRITE_INTERVAL_MS) {
      return;
    }
    this.lastUsedWrites.delete(keyId);
    this.lastUsedWrites.set(keyId, nowMs);
    if (this.lastUsedWrites.size > this.cacheMaxEntries) {
      const oldest = this.lastUsedWrites.keys().next().value;
      if (oldest !== undefined) {
        this.lastUsedWrites.delete(oldest);
      }
    }
    try {
      await new ApiKeysRepository(this.db).touchLastUsed(keyId, now, new Date(nowMs - LAST_USED_WRITE_INTERVAL_MS));
    } catch {
      // Best effort by design: usage bookkeeping must not turn into failed requests.
    }
  }
}
