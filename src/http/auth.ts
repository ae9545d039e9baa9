/**
 * Authentication and authorization for every route.
 *
 * Each route declares the one permission it needs in its own definition
 * (`config: { permission }`). Registering a route without one fails at start-up, so a
 * new route cannot silently be public. Credentials are a session cookie (browser) or
 * `Authorization: Bearer <api key>`; a key's permissions are its owner's role narrowed by
 * its scopes. Rate limits apply per API key and per client IP.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Permission, Principal } from '../domain/access/permissions.js';
import { ForbiddenError, RateLimitedError, UnauthorizedError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route needs; see `Permission`. Required on every route. */
    permission?: Permission;
  }
  interface FastifyRequest {
    /** Who is asking; undefined for anonymous requests. */
    principal?: Principal;
  }
}

export const SESSION_COOKIE = 'warden_session';

export interface Authenticators {
  /** Resolves a session token from the cookie; null when unknown, expired or disabled. */
  session(token: string): Promise<Principal | null>;
  /** Resolves a full API key; null when unknown, revoked, expired or its owner disabled. */
  apiKey(key: string): Promise<Principal | null>;
}

export interface Limiter {
  take(key: string): { allowed: true } | { allowed: false; retryAfterS: number };
}

export interface UsageSink {
  record(apiKeyId: number, route: string, statusCode: number, durationMs: number): void;
}

export interface AuthOptions {
  readonly authenticators: Authenticators;
  readonly perKeyLimiter: Limiter;
  readonly perIpLimiter: Limiter;
  readonly usage: UsageSink;
  /** Serve /metrics to loopback clients without credentials. */
  readonly metricsPublic: boolean;
}

/** Routes of plugins (API docs UI) that cannot declare a permission themselves. */
const PLUGIN_ROUTE_PERMISSIONS: readonly { prefix: string; permission: Permission }[] = [
  { prefix: '/api/docs', permission: 'read' },
];

/** Routes exempt from the per-IP limit: probes must answer even under load. */
const UNLIMITED_ROUTES = new Set(['/health', '/health/ready']);

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (header === undefined) {
    return cookies;
  }
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0) {
      const name = part.slice(0, index).trim();
      const value = part.slice(index + 1).trim();
      try {
        cookies.set(name, decodeURIComponent(value));
      } catch {
        cookies.set(name, value);
      }
    }
  }
  return cookies;
}

function isLoopback(ip: string): boolean {
  return ip === '127.0.0.1' || ip === '::1' || ip === '::ffff:127.0.0.1' || ip.startsWith('127.');
}

/** The route table with each route's declared permission, filled as routes register. */
export type RouteTable = { method: string; url: string; permission: Permission }[];

/**
 * Registers the permission check. Must be called before any route is added, so the
 * `onRoute` hook sees them all.
 */
export function registerAuth(app: FastifyInstance, options: AuthOptions): RouteTable {
  const table: RouteTable = [];

  app.addHook('onRoute', (route) => {
    const config = (route.config ?? {}) as { permission?: Permission };
    let permission = config.permission;
    if (permission === undefined) {
      permission = PLUGIN_ROUTE_PERMISSIONS.find((p) => route.url.startsWith(p.prefix))?.permission;
      if (permission === undefined) {
        throw new Error(`Route ${String(route.method)} ${route.url} declares no permission (config.permission)`);
      }
      route.config = { ...config, permission };
    }
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      if (method !== 'HEAD') {
        table.push({ method, url: route.url, permission });
      }
    }
  });

  app.decorateRequest('principal', undefined);

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.url;
    if (route === undefined) {
      return; // unknown route: the 404 handler answers
    }
    if (!UNLIMITED_ROUTES.has(route)) {
      const byIp = options.perIpLimiter.take(request.ip);
      if (!byIp.allowed) {
        void reply.header('retry-after', String(byIp.retryAfterS));
        throw new RateLimitedError(
          `Too many requests from ${request.ip}; retry in ${byIp.retryAfterS} s`,
          byIp.retryAfterS,
        );
      }
    }

    const authorization = request.headers.authorization;
    if (authorization !== undefined && authorization !== '') {
      const match = /^Bearer\s+(\S+)$/i.exec(authorization);
      const principal = match?.[1] === undefined ? null : await options.authenticators.apiKey(match[1]);
      if (principal === null) {
        throw new UnauthorizedError('The API key is invalid, expired or revoked');
      }
      const byKey = options.perKeyLimiter.take(`key:${principal.apiKeyId}`);
      if (!byKey.allowed) {
        void reply.header('retry-after', String(byKey.retryAfterS));
        throw new RateLimitedError(
          `Rate limit of this API key exceeded; retry in ${byKey.retryAfterS} s`,
          byKey.retryAfterS,
        );
      }
      request.principal = principal;
    } else {
      const token = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
      if (token !== undefined && token !== '') {
        request.principal = (await options.authenticators.session(token)) ?? undefined;
      }
    }

    const permission = request.routeOptions.config.permission ?? 'admin';
    if (permission === 'public') {
      return;
    }
    if (route === '/metrics' && options.metricsPublic && isLoopback(request.ip)) {
      return;
    }
    if (request.principal === undefined) {
      throw new UnauthorizedError();
    }
    if (!request.principal.permissions.has(permission)) {
      throw new ForbiddenError(
        request.principal.kind === 'api_key'
          ? `This API key's scopes or its owner's role do not grant "${permission}"`
          : `Your role (${request.principal.role}) does not grant "${permission}"`,
      );
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const principal = request.principal;
    if (principal?.apiKeyId !== undefined) {
      options.usage.record(
        principal.apiKeyId,
        request.routeOptions.url ?? 'unmatched',
        reply.statusCode,
        reply.elapsedTime,
      );
    }
  });

  return table;
}
