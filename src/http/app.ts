/**
 * Fastify app assembly: logging with request ids, the error shape, request metrics,
 * the OpenAPI document and its browsable UI, and each area's routes.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { HttpConfig } from '../config/index.js';
import { registerHealthRoutes } from '../domain/health/routes.js';
import type { HealthService } from '../domain/health/service.js';
import { registerSystemRoutes } from '../domain/system/routes.js';
import type { SystemService } from '../domain/system/service.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { VERSION } from '../version.js';
import { errorSchema, registerErrorHandling } from './errors.js';

export interface AppServices {
  readonly health: HealthService;
  readonly system: SystemService;
}

export interface AppDeps {
  readonly config: HttpConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly services: AppServices;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
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
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });
  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  registerHealthRoutes(app, deps.services.health, deps.services.system);
  registerSystemRoutes(app, deps.services.system, deps.metrics);
  return app;
}
