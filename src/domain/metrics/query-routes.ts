/** HTTP edge of reading host metrics: history and query with summaries, series, hosts. */
import type { FastifyInstance } from 'fastify';
import { errorRef, idParams } from '../../http/schemas.js';
import { actorOf } from '../access/permissions.js';
import { principalOf } from '../access/routes.js';
import type { History, HistoryRequest, HostOverview, MetricsQueryService } from './query-service.js';
import type { SeriesInfo, SeriesSummary } from './types.js';

const pointSchema = {
  type: 'object',
  properties: {
    ts: { type: 'string', format: 'date-time' },
    avg: { type: 'number' },
    min: { type: 'number' },
    max: { type: 'number' },
    count: { type: 'integer' },
  },
} as const;

const nullableNumber = { type: ['number', 'null'] } as const;
const edgeSchema = {
  type: ['object', 'null'],
  properties: { ts: { type: 'string', format: 'date-time' }, value: { type: 'number' } },
} as const;

const seriesSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    host: { type: 'string' },
    metric: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    unit: { type: ['string', 'null'] },
  },
} as const;

const historySchema = {
  type: 'object',
  properties: {
    from: { type: 'string', format: 'date-time' },
    to: { type: 'string', format: 'date-time' },
    step_s: { type: 'integer' },
    source: { type: 'string', enum: ['raw', '1m', '1h'], description: 'Table the points were read from' },
    summary_source: { type: 'string', enum: ['raw', '1m', '1h'], description: 'Table the summary was computed from' },
    truncated: { type: 'boolean' },
    series: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          ...seriesSchema.properties,
          points: { type: 'array', items: pointSchema },
          summary: {
            type: 'object',
            properties: {
              count: { type: 'integer' },
              avg: nullableNumber,
              min: nullableNumber,
              max: nullableNumber,
              stddev: nullableNumber,
              p50: nullableNumber,
              p95: nullableNumber,
              p99: nullableNumber,
              first: edgeSchema,
              last: edgeSchema,
              trend_per_hour: { ...nullableNumber, description: 'Least-squares slope of value over time, per hour' },
              source: { type: 'string' },
              exact_percentiles: { type: 'boolean' },
            },
          },
        },
      },
    },
  },
} as const;

function shapeSeries(s: SeriesInfo): Record<string, unknown> {
  return { id: s.id, host: s.host, metric: s.metric, labels: s.labels, unit: s.unit };
}

function shapeSummary(s: SeriesSummary): Record<string, unknown> {
  return {
    count: s.count,
    avg: s.avg,
    min: s.min,
    max: s.max,
    stddev: s.stddev,
    p50: s.p50,
    p95: s.p95,
    p99: s.p99,
    first: s.first === null ? null : { ts: s.first.ts.toISOString(), value: s.first.value },
    last: s.last === null ? null : { ts: s.last.ts.toISOString(), value: s.last.value },
    trend_per_hour: s.trendPerHour,
    source: s.source,
    exact_percentiles: s.source === 'raw',
  };
}

function shapeHistory(history: History): Record<string, unknown> {
  return {
    from: history.from.toISOString(),
    to: history.to.toISOString(),
    step_s: history.stepS,
    source: history.source,
    summary_source: history.summarySource,
    truncated: history.truncated,
    series: history.series.map((h) => ({
      ...shapeSeries(h.series),
      points: h.points.map((p) => ({ ts: p.ts.toISOString(), avg: p.avg, min: p.min, max: p.max, count: p.count })),
      summary: shapeSummary(h.summary),
    })),
  };
}

function shapeHost(host: HostOverview): Record<string, unknown> {
  return {
    id: host.id,
    name: host.name,
    labels: host.labels,
    status: host.status,
    interval_s: host.intervalS,
    first_seen_at: host.firstSeenAt.toISOString(),
    last_seen_at: host.lastSeenAt.toISOString(),
    last_seen_ago_s: host.lastSeenAgoS,
    series_count: host.seriesCount,
    latest: host.latest,
  };
}

const SELECTOR_DESCRIPTION = 'A metric name, optionally with labels: disk.used_pct{mount="/"}';

export function registerQueryRoutes(app: FastifyInstance, query: MetricsQueryService): void {
  app.get<{ Querystring: { host: string; metric: string; hours: number; step?: string } }>(
    '/metrics/history',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['metrics'],
        summary: 'History of a host metric over the last N hours, with points and a statistical summary',
        querystring: {
          type: 'object',
          required: ['host', 'metric'],
          additionalProperties: false,
          properties: {
            host: { type: 'string', minLength: 1 },
            metric: { type: 'string', minLength: 1, description: SELECTOR_DESCRIPTION },
            hours: { type: 'number', exclusiveMinimum: 0, maximum: 26304, default: 24 },
            step: { type: 'string', description: 'Seconds or a duration like 5m; chosen for ~720 points when omitted' },
          },
        },
        response: { 200: historySchema, 400: errorRef, 404: errorRef },
      },
    },
    async (request) => {
      const to = Date.now();
      const history = await query.history({
        host: request.query.host,
        metric: request.query.metric,
        from: Math.round(to - request.query.hours * 3_600_000),
        to,
        step: request.query.step,
      });
      return shapeHistory(history);
    },
  );

  app.get<{
    Querystring: { series?: number; host?: string; metric?: string; from?: string; to?: string; step?: string };
  }>(
    '/api/v1/metrics/query',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['metrics'],
        summary: 'Points and summary of one series (series=id) or of a host metric (host=&metric=) over from..to',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            series: { type: 'integer', minimum: 1 },
            host: { type: 'string', minLength: 1 },
            metric: { type: 'string', minLength: 1, description: SELECTOR_DESCRIPTION },
            from: { type: 'string', description: 'ISO-8601 or epoch ms; default to − 1 h' },
            to: { type: 'string', description: 'ISO-8601 or epoch ms; default now' },
            step: { type: 'string', description: 'Seconds or a duration like 5m; chosen for ~720 points when omitted' },
          },
        },
        response: { 200: historySchema, 400: errorRef, 404: errorRef },
      },
    },
    async (request) => {
      const q = request.query;
      const history: HistoryRequest = {
        seriesId: q.series,
        host: q.host,
        metric: q.metric,
        from: q.from,
        to: q.to,
        step: q.step,
      };
      return shapeHistory(await query.history(history));
    },
  );

  app.get<{ Querystring: { host?: string; metric?: string; limit: number } }>(
    '/api/v1/metrics/series',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['metrics'],
        summary: 'Series of a host, or of a metric across hosts',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            host: { type: 'string', minLength: 1 },
            metric: { type: 'string', minLength: 1, description: SELECTOR_DESCRIPTION },
            limit: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
          },
        },
        response: {
          200: { type: 'object', properties: { series: { type: 'array', items: seriesSchema } } },
          400: errorRef,
        },
      },
    },
    async (request) => {
      const series = await query.listSeries(request.query, request.query.limit);
      return { series: series.map(shapeSeries) };
    },
  );

  app.get(
    '/api/v1/hosts',
    {
      config: { permission: 'read' },
      schema: {
        tags: ['metrics'],
        summary:
          'Hosts with last-seen, status (reporting, or stale after 3 intervals without data) and latest key values',
        response: {
          200: {
            type: 'object',
            properties: {
              hosts: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'integer' },
                    name: { type: 'string' },
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    status: { type: 'string', enum: ['reporting', 'stale'] },
                    interval_s: { type: ['integer', 'null'] },
                    first_seen_at: { type: 'string', format: 'date-time' },
                    last_seen_at: { type: 'string', format: 'date-time' },
                    last_seen_ago_s: { type: 'integer' },
                    series_count: { type: 'integer' },
                    latest: {
                      type: 'object',
                      additionalProperties: {
                        type: 'object',
                        properties: { value: { type: 'number' }, ts: { type: 'string' } },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => ({ hosts: (await query.hosts()).map(shapeHost) }),
  );

  app.delete<{ Params: { id: number } }>(
    '/api/v1/hosts/:id',
    {
      config: { permission: 'operate' },
      schema: {
        tags: ['metrics'],
        summary: 'Remove a host from the lists (soft delete: its history stays; reporting again restores it)',
        params: idParams,
        response: { 204: { type: 'null' }, 404: errorRef },
      },
    },
    async (request, reply) => {
      await query.deleteHost(actorOf(principalOf(request), request.ip), request.params.id);
      return reply.status(204).send();
    },
  );
}
