/**
 * The agent riding out outages: against the real Warden server (behind a TCP proxy the test
 * switches off to make the server unreachable) and against a small HTTP server the test
 * controls where the exact requests matter (order, bound, chunking, key refused).
 */
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, backoffDelayMs, type AgentOptions } from '../../src/agent/agent.js';
import type { SampleInput } from '../../src/domain/metrics/types.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { createApiKey, startTestServer, type TestServer } from '../helpers/db.js';

/** Polls until `check` holds; fails with `what` after a bound (never asserts a duration). */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function captureLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>> } {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      raw.push(chunk.toString());
      callback();
    },
  });
  return {
    logger: createLogger({ level: 'info', format: 'json' }, sink),
    lines: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/**
 * Sweeps of `size` samples of `test.value{i}`, each sweep 10 ms after the previous one,
 * valued with the sweep number, so loss, duplication and order are exact to check.
 */
class CountingCollector {
  readonly produced: SampleInput[] = [];
  sweeps = 0;
  poisonSweep: number | undefined;

  constructor(
    private readonly host: string,
    private readonly size = 3,
    private readonly baseTs = Date.now() - 600_000,
  ) {}

  async collect(): Promise<SampleInput[]> {
    const sweep = this.sweeps;
    this.sweeps += 1;
    const samples: SampleInput[] = [];
    for (let i = 0; i < this.size; i += 1) {
      samples.push({
        host: this.host,
        // An invalid name (upper case, dash) makes the server reject the whole batch.
        metric: sweep === this.poisonSweep && i === 0 ? 'Bad-Name' : 'test.value',
        value: sweep,
        ts: this.baseTs + sweep * 10,
        labels: { i: String(i) },
      });
    }
    this.produced.push(...samples);
    return samples;
  }
}

/** Starts `server` on 127.0.0.1:`port` (0: a free one) and returns the port it listens on. */
async function listenOnLoopback(server: net.Server, port: number): Promise<number> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Listens on `port` (0: a free one) and forwards every connection to `target`; `down()` refuses connections. */
class SwitchableProxy {
  port = 0;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(private readonly target: { host: string; port: number }) {}

  async up(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    this.port = await listenOnLoopback(server, this.port);
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  }
}

interface WireSample {
  host: string;
  metric: string;
  value: number;
  ts: number;
  labels?: Record<string, string>;
}

/** An HTTP server standing in for Warden: answers as told and records every request. */
class ControlledServer {
  port = 0;
  mode: 'accept' | 'unavailable' | 'unauthorized' = 'accept';
  /** Larger requests are refused with 413, like a body over Warden's byte limit. */
  maxSamples = Infinity;
  readonly requests: Array<{ samples: WireSample[]; intervalS: number; status: number }> = [];
  private server: http.Server | undefined;

  get accepted(): WireSample[] {
    return this.requests.filter((r) => r.status === 202).flatMap((r) => r.samples);
  }

  async up(): Promise<void> {
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => {
        const parsed = JSON.parse(body) as { samples: WireSample[]; interval_s: number };
        const status =
          parsed.samples.length > this.maxSamples
            ? 413
            : this.mode === 'accept'
              ? 202
              : this.mode === 'unavailable'
                ? 503
                : 401;
        this.requests.push({ samples: parsed.samples, intervalS: parsed.interval_s, status });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(
          status === 202
            ? JSON.stringify({ received: parsed.samples.length, inserted: parsed.samples.length, duplicates: 0 })
            : JSON.stringify({ error: { code: status === 401 ? 'unauthorized' : 'unavailable', message: 'no' } }),
        );
      });
    });
    this.port = await listenOnLoopback(server, this.port);
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) {
      // Graceful: a request in flight gets its answer, so none is ambiguous (stored but
      // reported failed, then re-sent); new connections are refused from now on.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
    }
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
}

const FAST: Pick<AgentOptions, 'intervalMs' | 'backoff'> = {
  intervalMs: 100,
  backoff: { initialMs: 20, maxMs: 200 },
};

/** Samples per series in the order they arrived: timestamps must never go back. */
function expectInOrderPerSeries(samples: readonly WireSample[]): void {
  const last = new Map<string, number>();
  for (const s of samples) {
    const key = `${s.metric}${JSON.stringify(s.labels ?? {})}`;
    expect(s.ts).toBeGreaterThanOrEqual(last.get(key) ?? -Infinity);
    last.set(key, s.ts);
  }
}

describe('agent against the real Warden server', () => {
  let t: TestServer;
  let proxy: SwitchableProxy;
  let apiKey: string;

  beforeAll(async () => {
    t = await startTestServer('pglite', { WARDEN_SELF_COLLECT: 'false', WARDEN_HEALTH_INTERVAL: '1h' });
    apiKey = await createApiKey(t.server.url, 'agent test', ['ingest']);
    const target = new URL(t.server.url);
    proxy = new SwitchableProxy({ host: target.hostname, port: Number(target.port) });
    await proxy.up();
  });
  afterAll(async () => {
    await proxy.down();
    await t.cleanup();
  });

  async function stored(host: string): Promise<Array<{ labels: Record<string, string>; ts: Date; value: number }>> {
    return t.server.database.db
      .selectFrom('metric_samples as s')
      .innerJoin('metric_series as m', 'm.id', 's.series_id')
      .innerJoin('hosts as h', 'h.id', 'm.host_id')
      .select(['m.labels', 's.ts', 's.value'])
      .where('h.name', '=', host)
      .where('m.name', '=', 'test.value')
      .orderBy('s.ts')
      .execute();
  }

  it('buffers while the server is unreachable and delivers every sample once it is back', async () => {
    const collector = new CountingCollector('agent-outage');
    const log = captureLogger();
    const agent = new Agent({
      ...FAST,
      serverUrl: `http://127.0.0.1:${proxy.port}`,
      apiKey,
      collector,
      logger: log.logger,
    });
    agent.start();
    try {
      await waitFor('first samples stored', async () => (await stored('agent-outage')).length >= 6);

      await proxy.down();
      const sentBefore = agent.stats().sent;
      await waitFor('ten sweeps buffered', () => agent.stats().buffered >= 30);
      expect(agent.stats().reachable).toBe(false);
      expect(agent.stats().sent).toBe(sentBefore);

      await proxy.up();
      await waitFor('the backlog sent', () => agent.stats().reachable && agent.stats().buffered <= 3);
    } finally {
      await agent.stop();
    }

    const stats = agent.stats();
    expect(stats.dropped).toBe(0);
    expect(stats.buffered).toBe(0);
    // A request cut off by the outage may have been stored and then re-sent: the server
    // counts it as duplicates, so `sent` may exceed what was produced, never fall short.
    expect(stats.sent).toBeGreaterThanOrEqual(collector.produced.length);
    const rows = await stored('agent-outage');
    expect(rows).toHaveLength(collector.produced.length);
    expect(rows.map((r) => `${r.labels.i}@${r.ts.getTime()}=${r.value}`).sort()).toEqual(
      collector.produced.map((s) => `${s.labels?.i}@${s.ts}=${s.value}`).sort(),
    );
    const host = await t.server.database.db
      .selectFrom('hosts')
      .select('interval_s')
      .where('name', '=', 'agent-outage')
      .executeTakeFirstOrThrow();
    expect(host.interval_s).toBe(1);

    // One line when delivery stopped, one when it resumed: not one per retry.
    const messages = log.lines().map((l) => l.msg);
    expect(
      messages.filter((m) => m === 'cannot deliver samples to the Warden server; buffering and retrying with backoff'),
    ).toHaveLength(1);
    const recovered = log
      .lines()
      .filter((l) => l.msg === 'delivering samples to the Warden server again; sending the buffered ones first');
    expect(recovered).toHaveLength(1);
    expect(recovered[0]?.dropped).toBe(0);
    expect(recovered[0]?.buffered).toBeGreaterThanOrEqual(27);
    expect(log.lines().some((l) => JSON.stringify(l).includes(apiKey))).toBe(false);
  });

  it('drops a batch the server rejects as invalid, once, and delivers the next ones', async () => {
    const collector = new CountingCollector('agent-invalid');
    collector.poisonSweep = 1;
    const log = captureLogger();
    let requests = 0;
    const agent = new Agent({
      ...FAST,
      serverUrl: t.server.url,
      apiKey,
      collector,
      logger: log.logger,
      fetch: (url, init) => {
        requests += 1;
        return fetch(url, init);
      },
    });
    for (let sweep = 0; sweep < 3; sweep += 1) {
      await agent.collectSweep();
      expect(await agent.flush()).toBe(true);
    }
    expect(requests).toBe(3);
    expect(agent.stats()).toMatchObject({ sent: 6, rejected: 3, buffered: 0, failedRequests: 0 });
    expect((await stored('agent-invalid')).map((r) => r.value)).toEqual([0, 0, 0, 2, 2, 2]);
    const rejected = log
      .lines()
      .find((l) => l.msg === 'server rejected a batch as invalid; it is dropped, not retried');
    expect(rejected).toMatchObject({ status: 400, samples: 3 });
    expect(JSON.stringify(rejected?.problems)).toContain('samples[0].metric');
  });
});

describe('agent against a server the test controls', () => {
  const servers: ControlledServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.down()));
  });
  async function controlledServer(): Promise<ControlledServer> {
    const server = new ControlledServer();
    servers.push(server);
    await server.up();
    return server;
  }

  it('sends the backlog oldest first after connection refusals and 503s, none lost', async () => {
    const server = await controlledServer();
    const collector = new CountingCollector('ordered', 2);
    const log = captureLogger();
    const agent = new Agent({ ...FAST, serverUrl: server.url, apiKey: 'wdn_test_key', collector, logger: log.logger });
    agent.start();
    try {
      await waitFor('first batches', () => server.accepted.length >= 4);
      await server.down();
      await waitFor('sweeps buffered while refused', () => agent.stats().buffered >= 10);
      server.mode = 'unavailable';
      await server.up();
      await waitFor('503s answered', () => server.requests.filter((r) => r.status === 503).length >= 2);
      server.mode = 'accept';
      await waitFor('backlog delivered', () => agent.stats().reachable && agent.stats().buffered <= 2);
    } finally {
      await agent.stop();
    }
    const accepted = server.accepted;
    expect(accepted.map((s) => `${s.labels?.i}@${s.ts}`)).toEqual(
      collector.produced.map((s) => `${s.labels?.i}@${s.ts}`),
    );
    expectInOrderPerSeries(accepted);
    expect(server.requests.every((r) => r.intervalS === 1)).toBe(true);
    expect(agent.stats()).toMatchObject({ dropped: 0, buffered: 0, sent: collector.produced.length });
    expect(
      log
        .lines()
        .filter((l) => l.msg === 'cannot deliver samples to the Warden server; buffering and retrying with backoff'),
    ).toHaveLength(1);
  });

  it('keeps the newest samples within the bound, dropping exactly the oldest beyond it', async () => {
    const server = new ControlledServer();
    servers.push(server);
    // A free port, then nobody listening on it: connection refused.
    await server.up();
    await server.down();
    const collector = new CountingCollector('bounded', 3);
    const agent = new Agent({
      ...FAST,
      bufferMs: 1000, // 10 sweeps of 100 ms
      serverUrl: server.url,
      apiKey: 'wdn_test_key',
      collector,
      logger: captureLogger().logger,
    });
    for (let sweep = 0; sweep < 25; sweep += 1) {
      await agent.collectSweep();
      expect(await agent.flush()).toBe(false);
    }
    expect(agent.stats()).toMatchObject({ bufferLimit: 30, buffered: 30, dropped: 45, sent: 0 });

    await server.up();
    expect(await agent.flush()).toBe(true);
    expect(server.accepted.map((s) => s.value)).toEqual(
      [15, 16, 17, 18, 19, 20, 21, 22, 23, 24].flatMap((v) => [v, v, v]),
    );
    expectInOrderPerSeries(server.accepted);
    expect(agent.stats()).toMatchObject({ buffered: 0, dropped: 45, sent: 30 });
  });

  it('sends large backlogs in requests of at most 5,000 samples, in order', async () => {
    const server = await controlledServer();
    const collector = new CountingCollector('chunked', 4001);
    const agent = new Agent({ ...FAST, serverUrl: server.url, apiKey: 'k', collector, logger: captureLogger().logger });
    server.mode = 'unavailable';
    for (let sweep = 0; sweep < 3; sweep += 1) {
      await agent.collectSweep();
    }
    expect(await agent.flush()).toBe(false);
    server.mode = 'accept';
    expect(await agent.flush()).toBe(true);
    expect(server.requests.filter((r) => r.status === 202).map((r) => r.samples.length)).toEqual([5000, 5000, 2003]);
    expect(server.accepted.map((s) => `${s.value}/${s.labels?.i}`)).toEqual(
      collector.produced.map((s) => `${s.value}/${s.labels?.i}`),
    );
  });

  it('halves its batches when the server finds a request too large, losing nothing', async () => {
    const server = await controlledServer();
    server.maxSamples = 1500;
    const collector = new CountingCollector('too-large', 1000);
    const agent = new Agent({ ...FAST, serverUrl: server.url, apiKey: 'k', collector, logger: captureLogger().logger });
    for (let sweep = 0; sweep < 4; sweep += 1) {
      await agent.collectSweep();
    }
    expect(await agent.flush()).toBe(true);
    expect(server.requests.map((r) => `${r.status}:${r.samples.length}`)).toEqual([
      '413:4000',
      '413:2000',
      '202:1000',
      '202:1000',
      '202:1000',
      '202:1000',
    ]);
    expect(server.accepted.map((s) => `${s.value}/${s.labels?.i}`)).toEqual(
      collector.produced.map((s) => `${s.value}/${s.labels?.i}`),
    );
    expect(agent.stats()).toMatchObject({ sent: 4000, rejected: 0, dropped: 0, reachable: true });
  });

  it('logs a refused key as an error on every attempt and keeps the samples until it is fixed', async () => {
    const server = await controlledServer();
    server.mode = 'unauthorized';
    const collector = new CountingCollector('refused', 2);
    const log = captureLogger();
    const agent = new Agent({ ...FAST, serverUrl: server.url, apiKey: 'wdn_x_revoked', collector, logger: log.logger });
    await agent.collectSweep();
    expect(await agent.flush()).toBe(false);
    await agent.collectSweep();
    expect(await agent.flush()).toBe(false);
    const errors = log.lines().filter((l) => l.level === 50);
    expect(errors).toHaveLength(2);
    expect(errors[0]?.msg).toContain('refused the API key');
    expect(errors[0]?.status).toBe(401);
    expect(agent.stats().buffered).toBe(4);

    server.mode = 'accept';
    expect(await agent.flush()).toBe(true);
    expect(server.accepted.map((s) => s.value)).toEqual([0, 0, 1, 1]);
  });
});

describe('agent stop', () => {
  it('stops within its flush bound even when the server never answers, and reports what is unsent', async () => {
    const sockets = new Set<net.Socket>();
    const hanging = http.createServer(() => {
      // Never answers.
    });
    hanging.on('connection', (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const port = (hanging.address() as net.AddressInfo).port;
    const collector = new CountingCollector('hung', 2);
    const log = captureLogger();
    const agent = new Agent({
      ...FAST,
      requestTimeoutMs: 60_000,
      serverUrl: `http://127.0.0.1:${port}`,
      apiKey: 'k',
      collector,
      logger: log.logger,
    });
    try {
      agent.start();
      await waitFor('a sweep collected', () => agent.stats().sweeps >= 3);
      const stopped = await Promise.race([
        agent.stop(300).then(() => 'stopped' as const),
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000)),
      ]);
      expect(stopped).toBe('stopped');
      const stats = agent.stats();
      expect(stats.sent).toBe(0);
      expect(stats.buffered).toBe(collector.produced.length);
      expect(log.lines().find((l) => l.msg === 'agent stopped with samples unsent; they are lost')).toMatchObject({
        unsent: collector.produced.length,
      });
    } finally {
      for (const socket of sockets) {
        socket.destroy();
      }
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
    }
  });
});

describe('retry backoff', () => {
  it('draws uniformly below a cap that doubles from the initial delay up to the maximum', () => {
    const options = { initialMs: 1000, maxMs: 60_000 };
    expect([0, 1, 2, 5, 6, 20, 1000].map((attempt) => backoffDelayMs(attempt, options, () => 0.999999))).toEqual([
      999, 1999, 3999, 31_999, 59_999, 59_999, 59_999,
    ]);
    expect(backoffDelayMs(3, options, () => 0)).toBe(0);
    expect(backoffDelayMs(3, options, () => 0.5)).toBe(4000);
  });
});
