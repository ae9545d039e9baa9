/**
 * Fastify app assembly: logging with request ids, the error shape, request metrics,
 * the OpenAPI document and its browsable UI, and each area's routes.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AuthConfig, HttpConfig } from '../config/index.js';
import { registerApiKeyRoutes } from '../domain/access/api-key-routes.js';
import type { ApiKeyService } from '../domain/access/api-key-service.js';
import type { ApiKeyUsageRecorder } from '../domain/access/api-key-usage.js';
import type { AuditService } from '../domain/access/audit-service.js';
import { RateLimiter } from '../domain/access/rate-limiter.js';
import { registerAccessRoutes } from '../domain/access/routes.js';
import type { SessionService } from '../domain/access/session-service.js';
import type { UserService } from '../domain/access/user-service.js';
import { registerHealthRoutes } from '../domain/health/routes.js';
import type { HealthService } from '../domain/health/service.js';
import { registerIngestRoutes } from '../domain/metrics/ingest-routes.js';
import type { IngestService } from '../domain/metrics/ingest-service.js';
import { registerQueryRoutes } from '../domain/metrics/query-routes.js';
import type { MetricsQueryService } from '../domain/metrics/query-service.js';
import { registerScrapeRoutes } from '../domain/metrics/scrape-routes.js';
import type { ScrapeService } from '../domain/metrics/scrape-service.js';
import { registerSystemRoutes } from '../domain/system/routes.js';
import type { SystemService } from '../domain/system/service.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { VERSION } from '../version.js';
import { registerAuth, type RouteTable } from './auth.js';
import { errorSchema, registerErrorHandling } from './errors.js';

export interface AppServices {
  readonly health: HealthService;
  readonly system: SystemService;
  readonly users: UserService;
  readonly sessions: SessionService;
  readonly audit: AuditService;
  readonly apiKeys: ApiKeyService;
  readonly apiKeyUsage: ApiKeyUsageRecorder;
  readonly ingest: IngestService;
  readonly metricsQuery: MetricsQueryService;
  readonly scrapes: ScrapeService;
}

export interface AppDeps {
  readonly config: HttpConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly services: AppServices;
  readonly auth: AuthConfig;
}

export interface BuiltApp {
  readonly app: FastifyInstance;
  /** Every route with the permission it declares (the route-permission test walks it). */
  readonly routeTable: RouteTable;
}

export async function buildApp(deps: AppDeps): Promise<BuiltApp> {
  // Typed as Fastify's base logger so the instance keeps Fastify's default generics.
  const loggerInstance: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    loggerInstance,
    bodyLimit: deps.config.bodyLimitBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Keep-alive connections would hold shutdown open; idle ones are closed at once.
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    ajv: { customOptions: { allErrors: false, coerceTypes: true, removeAdditional: false } },
  });

  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    // Label by the route pattern, never by the raw URL (unbounded cardinality).
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpRequestDuration.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });

  // The API speaks JSON only: any other body type is answered with 415.
  app.removeContentTypeParser('text/plain');
  registerErrorHandling(app);
  app.addSchema(errorSchema);
  const { services } = deps;
  // Before any route: the onRoute hook must see them all.
  const routeTable = registerAuth(app, {
    authenticators: {
      session: (token) => services.sessions.authenticate(token),
      apiKey: (key) => services.apiKeys.authenticate(key),
    },
    perKeyLimiter: RateLimiter.perMinute(deps.auth.rateLimitPerKeyPerMin),
    perIpLimiter: RateLimiter.perMinute(deps.auth.rateLimitPerIpPerMin),
    usage: services.apiKeyUsage,
    metricsPublic: deps.auth.metricsPublic,
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Warden API',
        version: VERSION,
        description: 'Self-hosted operations platform. Every error is `{ "error": { "code", "message", "field"? } }`.',
      },
      tags: [
        { name: 'health', description: 'Liveness, readiness and self-health history' },
        { name: 'system', description: 'Status of Warden and its database, Prometheus metrics' },
        { name: 'access', description: 'Login sessions, users, API keys and their usage, audit log' },
        { name: 'metrics', description: 'Host metrics: ingest, history with summaries, hosts, scrape targets' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });
  app.get('/api/openapi.json', { config: { permission: 'read' }, schema: { hide: true } }, async () => app.swagger());

  registerHealthRoutes(app, services.health, services.system);
  registerSystemRoutes(app, services.system, deps.metrics);
  registerAccessRoutes(app, {
    users: services.users,
    sessions: services.sessions,
    audit: services.audit,
    cookieSecure: deps.auth.cookieSecure,
    sessionTtlMs: deps.auth.sessionTtlMs,
  });
  registerApiKeyRoutes(app, services.apiKeys, services.apiKeyUsage);
  registerIngestRoutes(app, services.ingest);
  registerQueryRoutes(app, services.metricsQuery);
  registerScrapeRoutes(app, services.scrapes);
  return { app, routeTable };
}
