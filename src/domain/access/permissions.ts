/**
 * Roles, API-key scopes and the permissions routes declare.
 *
 * Glossary:
 * - role: what a user may do (viewer < operator < admin).
 * - scope: what one API key may do; a key's permissions are its owner's role narrowed by
 *   its scopes, so a `read` key of an admin cannot write.
 * - permission: what a route needs. Every route declares exactly one.
 * - principal: who is asking — a logged-in user (session) or an API key.
 */
import type { Role, Scope } from '../../db/schema.js';

export type { Role, Scope } from '../../db/schema.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const satisfies readonly Role[];
export const SCOPES = ['read', 'write', 'ingest', 'admin'] as const satisfies readonly Scope[];

/**
 * - `public`: no credentials (liveness, readiness, login, public status pages).
 * - `authenticated`: any valid principal (own profile, logout).
 * - `read`: read everything except secrets and other users' notifications.
 * - `operate`: manage monitors, hosts, incidents, anomalies, remediation approvals.
 * - `ingest`: push metrics and heartbeats.
 * - `admin`: users, keys of others, channels, backups, database operations.
 */
export type Permission = 'public' | 'authenticated' | 'read' | 'operate' | 'ingest' | 'admin';

export const PERMISSIONS = [
  'public',
  'authenticated',
  'read',
  'operate',
  'ingest',
  'admin',
] as const satisfies readonly Permission[];

const ROLE_GRANTS: Record<Role, readonly Permission[]> = {
  viewer: ['authenticated', 'read'],
  operator: ['authenticated', 'read', 'operate', 'ingest'],
  admin: ['authenticated', 'read', 'operate', 'ingest', 'admin'],
};

const SCOPE_GRANTS: Record<Scope, readonly Permission[]> = {
  read: ['authenticated', 'read'],
  write: ['authenticated', 'read', 'operate'],
  ingest: ['authenticated', 'ingest'],
  admin: ['authenticated', 'read', 'operate', 'ingest', 'admin'],
};

export function permissionsOfRole(role: Role): ReadonlySet<Permission> {
  return new Set<Permission>(['public', ...ROLE_GRANTS[role]]);
}

/** Computed once per (role, scopes) combination: this runs on every request with a key. */
const keyPermissionCache = new Map<string, ReadonlySet<Permission>>();

/** A key's permissions: its owner's role narrowed by the union of its scopes. */
export function permissionsOfKey(role: Role, scopes: readonly Scope[]): ReadonlySet<Permission> {
  const cacheKey = `${role}|${scopes.join(',')}`;
  const cached = keyPermissionCache.get(cacheKey);
  if (cached !== undefined) {
    return cached;
  }
  const byRole = permissionsOfRole(role);
  const byScopes = new Set<Permission>(['public', ...scopes.flatMap((scope) => SCOPE_GRANTS[scope])]);
  const permissions: ReadonlySet<Permission> = new Set([...byRole].filter((p) => byScopes.has(p)));
  // Bounded: 3 roles × the subsets of 4 scopes (in any order) is a small, fixed set.
  if (keyPermissionCache.size < 1000) {
    keyPermissionCache.set(cacheKey, permissions);
  }
  return permissions;
}

export interface Principal {
  readonly kind: 'user' | 'api_key';
  readonly userId: number;
  readonly email: string;
  readonly role: Role;
  /** Set for API keys. */
  readonly apiKeyId?: number;
  readonly scopes?: readonly Scope[];
  readonly permissions: ReadonlySet<Permission>;
}

/** Who did something, as the audit log records it. */
export interface Actor {
  readonly type: 'user' | 'api_key' | 'system' | 'anonymous';
  readonly id: number | null;
  readonly label: string;
  readonly ip: string | null;
}

export function actorOf(principal: Principal | undefined, ip: string | null): Actor {
  if (principal === undefined) {
    return { type: 'anonymous', id: null, label: 'anonymous', ip };
  }
  if (principal.kind === 'api_key') {
    return {
      type: 'api_key',
      id: principal.apiKeyId ?? null,
      label: `key ${principal.apiKeyId} of ${principal.email}`,
      ip,
    };
  }
  return { type: 'user', id: principal.userId, label: principal.email, ip };
}

export const SYSTEM_ACTOR: Actor = { type: 'system', id: null, label: 'system', ip: null };
