import type { FastifyInstance } from 'fastify';
import type { SystemService } from '../system/service.js';
import type { HealthCheckRow } from './repository.js';
import { COMPONENTS, type Component, type HealthService, type ReadinessReport } from './service.js';
import { errorRef } from '../../http/schemas.js';

const componentResultSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['pass', 'fail'] },
    latency_ms: { type: 'number' },
    detail: { type: 'object', additionalProperties: true },
  },
} as const;

const readinessSchema = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['ready', 'not_ready'] },
    checked_at: { type: 'string', format: 'date-time' },
    failing: { type: 'array', items: { type: 'string' } },
    components: { type: 'object', additionalProperties: componentResultSchema },
  },
} as const;

function shapeReport(report: ReadinessReport): Record<string, unknown> {
  const components: Record<string, unknown> = {};
  for (const [name, result] of Object.entries(report.components)) {
    components[name] = { status: result.status, latency_ms: result.latencyMs, detail: result.detail };
  }
  return {
    status: report.ready ? 'ready' : 'not_ready',
    checked_at: report.checkedAt.toISOString(),
    failing: report.failing,
    components,
  };
}

function shapeCheck(row: HealthCheckRow): Record<string, unknown> {
  return {
    ts: row.ts.toISOString(),
    component: row.component,
    status: row.status,
    latency_ms: row.latencyMs,
    detail: row.detail,
  };
}

export function registerHealthRoutes(app: FastifyInstance, health: HealthService, system: SystemService): void {
  app.get(
    '/health',
    {
      config: { permission: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Liveness: the process is up and serving (never touches the database)',
        response: {
          200: {
            type: 'object',
            properties: { status: { type: 'string', enum: ['ok'] }, uptime_s: { type: 'integer' } },
          },
        },
      },
    },
    async () => ({ status: 'ok', uptime_s: system.uptimeS() }),
  );

  app.get(
    '/health/ready',
    {
      config: { permission: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Readiness: database, migrations, disk, event loop and memory; 503 names the failing component',
        response: { 200: readinessSchema, 503: readinessSchema },
      },
    },
    async (_request, reply) => {
      const report = await health.checkReadiness();
      return reply.status(report.ready ? 200 : 503).send(shapeReport(report));
    },
  );

  app.post<{ Body: { components?: Component[] } | undefined }>(
    '/health/checks',
    {
      config: { permission: 'operate' },
      schema: {
        tags: ['health'],
        summary: 'Run readiness checks now and record them in the self-health history',
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            components: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              items: { type: 'string', enum: [...COMPONENTS] },
            },
          },
        },
        response: { 200: readinessSchema, 400: errorRef, 503: readinessSchema },
      },
    },
    async (request, reply) => {
      const report = await health.recordChecks(request.body?.components ?? COMPONENTS);
      return reply.status(report.ready ? 200 : 503).send(shapeReport(report));
    },
  );

  app.get<{ Querystring: { hours: number } }>(
    '/health/history',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['health'],
        summary: 'Self-health history with a per-component summary',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { hours: { type: 'number', exclusiveMinimum: 0, maximum: 8784, default: 24 } },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              hours: { type: 'number' },
              since: { type: 'string', format: 'date-time' },
              summary: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    component: { type: 'string' },
                    checks: { type: 'integer' },
                    failures: { type: 'integer' },
                    availability_pct: { type: 'number' },
                    p95_latency_ms: { type: ['number', 'null'] },
                    last_status: { type: 'string' },
                    last_checked_at: { type: 'string', format: 'date-time' },
                  },
                },
              },
              checks: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    ts: { type: 'string', format: 'date-time' },
                    component: { type: 'string' },
                    status: { type: 'string' },
                    latency_ms: { type: ['number', 'null'] },
                    detail: { type: ['object', 'null'], additionalProperties: true },
                  },
                },
              },
            },
          },
          400: errorRef,
        },
      },
    },
    async (request) => {
      const history = await health.history(request.query.hours);
      return {
        hours: history.hours,
        since: history.since.toISOString(),
        summary: history.summary.map((s) => ({
          component: s.component,
          checks: s.checks,
          failures: s.failures,
          availability_pct: s.availabilityPct,
          p95_latency_ms: s.p95LatencyMs,
          last_status: s.lastStatus,
          last_checked_at: s.lastCheckedAt.toISOString(),
        })),
        checks: history.checks.map(shapeCheck),
      };
    },
  );
}
