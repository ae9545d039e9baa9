/**
 * All SQL of API keys (`api_keys`) and their aggregated usage (`api_key_usage`).
 *
 * Invariants:
 * - a key is stored as its public prefix and the SHA-256 hash of the whole key; the hash
 *   leaves this file only through `findCredentialsByPrefix`, which authentication needs;
 * - `ApiKey` never carries the hash, so listing or auditing a key cannot leak it;
 * - usage aggregates are written in one statement, whatever their number.
 */
import { sql, type Kysely } from 'kysely';
import type { DB, Role, Scope } from '../../db/schema.js';

/** An API key as the rest of Warden sees it: no hash, no secret. */
export interface ApiKey {
  readonly id: number;
  readonly userId: number;
  readonly name: string;
  /** Public part of the key (`wdn_<prefix>_…`), shown in lists to recognize a key. */
  readonly prefix: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
  /** Updated at most once a minute, so it may lag real use by up to a minute. */
  readonly lastUsedAt: Date | null;
}

export interface NewApiKey {
  readonly userId: number;
  readonly name: string;
  readonly prefix: string;
  readonly keyHash: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
}

/** What authenticating a key needs: its hash, state, and its owner. */
export interface ApiKeyCredentials {
  readonly id: number;
  readonly keyHash: string;
  readonly scopes: readonly Scope[];
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
  readonly userId: number;
  readonly email: string;
  readonly role: Role;
  readonly ownerDisabledAt: Date | null;
}

/** Requests of one key in one minute on one route with one status class. */
export interface UsageAggregate {
  readonly apiKeyId: number;
  readonly bucket: Date;
  readonly route: string;
  /** `2xx`, `4xx`, … */
  readonly statusClass: string;
  readonly requests: number;
  readonly totalDurationMs: number;
  readonly maxDurationMs: number;
}

const KEY_COLUMNS = [
  'id',
  'user_id',
  'name',
  'prefix',
  'scopes',
  'created_at',
  'expires_at',
  'revoked_at',
  'last_used_at',
] as const;

interface ApiKeyRecord {
  id: number;
  user_id: number;
  name: string;
  prefix: string;
  scopes: Scope[];
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

function toApiKey(r: ApiKeyRecord): ApiKey {
  return {
    id: r.id,
    userId: r.user_id,
    name: r.name,
    prefix: r.prefix,
    scopes: r.scopes,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

export class ApiKeysRepository {
  /** Pass a transaction as `db` to run the methods inside it. */
  constructor(private readonly db: Kysely<DB>) {}

  /** Inserts a key; undefined when its prefix is already taken (the caller draws another). */
  async insert(key: NewApiKey): Promise<ApiKey | undefined> {
    const row = await this.db
      .insertInto('api_keys')
      .values({
        user_id: key.userId,
        name: key.name,
        prefix: key.prefix,
        key_hash: key.keyHash,
        // An explicit cast: both engines then agree on how a JS array is sent.
        scopes: sql<Scope[]>`${[...key.scopes]}::text[]`,
        created_at: key.createdAt,
        expires_at: key.expiresAt,
      })
      .onConflict((oc) => oc.column('prefix').doNothing())
      .returning(KEY_COLUMNS)
      .executeTakeFirst();
    return row === undefined ? undefined : toApiKey(row);
  }

  /** Keys newest first, optionally of one user. */
  async list(filter: { userId?: number } = {}): Promise<ApiKey[]> {
    let query = this.db.selectFrom('api_keys').select(KEY_COLUMNS);
    if (filter.userId !== undefined) {
      query = query.where('user_id', '=', filter.userId);
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
    return rows.map(toApiKey);
  }

  /** The key with this id; `forUpdate` locks its row until the transaction ends. */
  async findById(id: number, options: { forUpdate?: boolean } = {}): Promise<ApiKey | undefined> {
    let query = this.db.selectFrom('api_keys').select(KEY_COLUMNS).where('id', '=', id);
    if (options.forUpdate === true) {
      query = query.forUpdate();
    }
    const row = await query.executeTakeFirst();
    return row === undefined ? undefined : toApiKey(row);
  }

  async findCredentialsByPrefix(prefix: string): Promise<ApiKeyCredentials | undefined> {
    const row = await this.db
      .selectFrom('api_keys as k')
      .innerJoin('users as u', 'u.id', 'k.user_id')
      .select([
        'k.id',
        'k.key_hash',
        'k.scopes',
        'k.expires_at',
        'k.revoked_at',
        'k.user_id',
        'u.email',
        'u.role',
        'u.disabled_at',
      ])
      .where('k.prefix', '=', prefix)
      .executeTakeFirst();
    if (row === undefined) {
      return undefined;
    }
    return {
      id: row.id,
      keyHash: row.key_hash,
      scopes: row.scopes,
      expiresAt: row.expires_at,
      revokedAt: row.revoked_at,
      userId: row.user_id,
      email: row.email,
      role: row.role,
      ownerDisabledAt: row.disabled_at,
    };
  }

  /** Sets `revoked_at` unless already set; returns the key as it is afterwards. */
  async revoke(id: number, at: Date): Promise<ApiKey | undefined> {
    const row = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: sql<Date>`coalesce(revoked_at, ${at}::timestamptz)` })
      .where('id', '=', id)
      .returning(KEY_COLUMNS)
      .executeTakeFirst();
    return row === undefined ? undefined : toApiKey(row);
  }

  /**
   * Records use of a key, unless it was recorded after `notWrittenSince`: several
   * instances using one key then write about once a minute between them, not per request.
   */
  async touchLastUsed(id: number, at: Date, notWrittenSince: Date): Promise<boolean> {
    const result = await this.db
      .updateTable('api_keys')
      .set({ last_used_at: at })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', notWrittenSince)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** The owner a new key would belong to; undefined when there is no such user. */
  async findOwner(userId: number): Promise<{ id: number; disabledAt: Date | null } | undefined> {
    const row = await this.db
      .selectFrom('users')
      .select(['id', 'disabled_at'])
      .where('id', '=', userId)
      .executeTakeFirst();
    return row === undefined ? undefined : { id: row.id, disabledAt: row.disabled_at };
  }

  /**
   * Adds the aggregates to the stored ones in one statement: requests and total duration
   * add up, the maximum stays the maximum. Aggregates of keys that no longer exist (owner
   * deleted) are skipped rather than failing the batch. Aggregates must be unique by
   * (key, bucket, route, status class). Returns the number of rows written.
   */
  async upsertUsage(aggregates: readonly UsageAggregate[]): Promise<number> {
    if (aggregates.length === 0) {
      return 0;
    }
    const result = await sql`
      insert into api_key_usage
        (api_key_id, bucket, route, status_class, requests, total_duration_ms, max_duration_ms)
      select u.api_key_id, u.bucket, u.route, u.status_class, u.requests, u.total_duration_ms, u.max_duration_ms
      from unnest(
        ${aggregates.map((a) => a.apiKeyId)}::int8[],
        ${aggregates.map((a) => a.bucket.toISOString())}::timestamptz[],
        ${aggregates.map((a) => a.route)}::text[],
        ${aggregates.map((a) => a.statusClass)}::text[],
        ${aggregates.map((a) => a.requests)}::int8[],
        ${aggregates.map((a) => a.totalDurationMs)}::float8[],
        ${aggregates.map((a) => a.maxDurationMs)}::float8[]
      ) as u(api_key_id, bucket, route, status_class, requests, total_duration_ms, max_duration_ms)
      join api_keys k on k.id = u.api_key_id
      on conflict (api_key_id, bucket, route, status_class) do update set
        requests = api_key_usage.requests + excluded.requests,
        total_duration_ms = api_key_usage.total_duration_ms + excluded.total_duration_ms,
        max_duration_ms = greatest(api_key_usage.max_duration_ms, excluded.max_duration_ms)
    `.execute(this.db);
    return Number(result.numAffectedRows ?? 0);
  }

  /** Stored aggregates of one key from `since` on, oldest first. */
  async usageSince(apiKeyId: number, since: Date): Promise<UsageAggregate[]> {
    const rows = await this.db
      .selectFrom('api_key_usage')
      .select(['api_key_id', 'bucket', 'route', 'status_class', 'requests', 'total_duration_ms', 'max_duration_ms'])
      .where('api_key_id', '=', apiKeyId)
      .where('bucket', '>=', since)
      .orderBy('bucket')
      .orderBy('route')
      .orderBy('status_class')
      .execute();
    return rows.map((r) => ({
      apiKeyId: r.api_key_id,
      bucket: r.bucket,
      route: r.route,
      statusClass: r.status_class,
      requests: r.requests,
      totalDurationMs: r.total_duration_ms,
      maxDurationMs: r.max_duration_ms,
    }));
  }

  /** Removes usage aggregates older than `cutoff`; returns how many. */
  async deleteUsageOlderThan(cutoff: Date): Promise<number> {
    const result = await this.db.deleteFrom('api_key_usage').where('bucket', '<', cutoff).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
