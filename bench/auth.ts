/**
 * The cost of API key authentication on the request path.
 *
 * Warden starts in this process (in-memory PGlite, a free port on 127.0.0.1, rate limits
 * far above the load). The admin logs in and creates a `read`-scoped key over HTTP. The
 * load comes from a separate process (bench/lib/load-client.ts), so its JavaScript does
 * not compete with the server's event loop: CONCURRENCY GET requests in flight on
 * keep-alive connections, for RUN_S seconds per run.
 *
 * The route is GET /health: public and exempt from the per-IP limit, so without a header
 * it does no access work at all; with `Authorization: Bearer <key>` the key is still
 * authenticated (regex, SHA-256, cached lookup, constant-time compare, permissions), taken
 * from its rate limit and its usage recorded — the difference is the cost of
 * authentication. After a warm-up of each kind, RUNS unauthenticated and RUNS
 * authenticated runs alternate (which kind goes first alternates by pair), and
 * auth_overhead = 1 - median authed req/s / median unauthenticated req/s.
 *
 * Checked, or the bench throws: the key answers 200 on /health and on a `read` route; a
 * wrong key on /health is refused with 401; every load request answered 200; and the
 * server recorded exactly as many /health usages for the key as authenticated requests
 * were sent.
 *
 * Environment: BENCH_AUTH_RUNS (per kind, default 5), BENCH_AUTH_RUN_S (default 3),
 * BENCH_AUTH_CONCURRENCY (default 32). The total load time is capped at MAX_LOAD_S.
 */
import { loadConfig } from '../src/config/index.js';
import type { Job } from '../src/jobs/interval-job.js';
import { createLogger } from '../src/logger.js';
import { startServer, type RunningServer } from '../src/server.js';
import { startLoadClient, type LoadClient, type LoadResult } from './lib/load-client.js';
import { envInteger, median, progress, round } from './lib/stats.js';
import { createApiKey, loginCookie } from './lib/warden-http.js';
import type { BenchRecord, BenchResult } from './lib/types.js';

export const name = 'auth';

const MAX_AUTH_OVERHEAD = 0.1;

export const target = `auth_overhead (1 - median authed req/s / median unauthenticated req/s, GET /health) <= ${MAX_AUTH_OVERHEAD}`;

const ADMIN_EMAIL = 'admin@warden.bench';
const ADMIN_PASSWORD = 'bench-admin-password-1234';
const WARM_UP_S = 2;
/** Upper bound of the load phase (warm-up included), whatever the environment asks. */
const MAX_LOAD_S = 70;
/** Per-minute limits far above what the load can reach (the configuration's maximum). */
const RATE_LIMIT = '10000000';
const ROUTE = '/health';

type Kind = 'unauth' | 'authed';

interface Sample {
  readonly load: LoadResult;
  /** CPU time of this process (the server) during the run, per request, µs. */
  readonly serverCpuUsPerRequest: number;
}

async function expectStatus(
  baseUrl: string,
  path: string,
  headers: Record<string, string>,
  expected: number,
  what: string,
): Promise<void> {
  const res = await fetch(`${baseUrl}${path}`, { headers, signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (res.status !== expected) {
    throw new Error(`${what}: GET ${path} answered ${res.status}, expected ${expected}: ${body.slice(0, 200)}`);
  }
}

/** The same key with its last secret character changed: right prefix (cache hit), wrong hash. */
function tamperedKey(key: string): string {
  const last = key.at(-1);
  return `${key.slice(0, -1)}${last === 'A' ? 'B' : 'A'}`;
}

/** Writes the usage aggregated in memory now, through the server's own flush job. */
async function flushUsage(server: RunningServer): Promise<void> {
  const job: (Job & { runOnce?: () => Promise<void> }) | undefined = server.jobs.find(
    (j) => j.name === 'api_key_usage_flush',
  );
  if (job?.runOnce === undefined) {
    throw new Error('the server has no api_key_usage_flush job with runOnce()');
  }
  await job.runOnce();
}

async function usageOfRoute(baseUrl: string, cookie: string, keyId: number, route: string): Promise<number> {
  const res = await fetch(`${baseUrl}/api/v1/api-keys/${keyId}/usage?hours=1`, {
    headers: { cookie },
    signal: AbortSignal.timeout(10_000),
  });
  if (res.status !== 200) {
    throw new Error(`reading the key's usage failed with ${res.status}: ${await res.text()}`);
  }
  const body = (await res.json()) as { by_route?: Record<string, number> };
  return body.by_route?.[route] ?? 0;
}

async function measure(
  client: LoadClient,
  url: string,
  headers: Record<string, string>,
  concurrency: number,
  durationMs: number,
): Promise<Sample> {
  const cpuStart = process.cpuUsage();
  const load = await client.run({ url, headers, concurrency, durationMs });
  const cpu = process.cpuUsage(cpuStart);
  const ok = load.statuses['200'] ?? 0;
  if (load.failures > 0 || ok !== load.requests || load.requests === 0) {
    throw new Error(
      `load on ${url} was not all 200: ${load.requests} responses ${JSON.stringify(load.statuses)}, ` +
        `${load.failures} failures${load.firstFailure === null ? '' : ` (${load.firstFailure})`}`,
    );
  }
  return { load, serverCpuUsPerRequest: (cpu.user + cpu.system) / load.requests };
}

function describe(kind: Kind, sample: Sample): string {
  const { load } = sample;
  return (
    `${kind.padEnd(6)} ${Math.round(load.requestsPerS)} req/s, p50 ${load.p50Ms.toFixed(2)} ms, ` +
    `p99 ${load.p99Ms.toFixed(2)} ms, server ${sample.serverCpuUsPerRequest.toFixed(1)} µs cpu/req, ` +
    `client cpu ${Math.round((load.clientCpuMs / load.elapsedMs) * 100)}%`
  );
}

export async function run(): Promise<BenchResult> {
  const runs = envInteger('BENCH_AUTH_RUNS', 5);
  const runS = envInteger('BENCH_AUTH_RUN_S', 3);
  const concurrency = envInteger('BENCH_AUTH_CONCURRENCY', 32);
  const loadS = 2 * WARM_UP_S + 2 * runs * runS;
  if (loadS > MAX_LOAD_S) {
    throw new Error(`BENCH_AUTH_RUNS × BENCH_AUTH_RUN_S asks for ${loadS} s of load; at most ${MAX_LOAD_S} s`);
  }
  if (concurrency > 1024) {
    throw new Error(`BENCH_AUTH_CONCURRENCY must be at most 1024, got ${concurrency}`);
  }

  progress('starting Warden (in-memory PGlite) and the load client process');
  const config = loadConfig({
    WARDEN_LOG_LEVEL: 'silent',
    WARDEN_LOG_FORMAT: 'json',
    WARDEN_HOST: '127.0.0.1',
    WARDEN_PORT: '0',
    WARDEN_ADMIN_EMAIL: ADMIN_EMAIL,
    WARDEN_ADMIN_PASSWORD: ADMIN_PASSWORD,
    WARDEN_RATE_LIMIT_PER_KEY: RATE_LIMIT,
    WARDEN_RATE_LIMIT_PER_IP: RATE_LIMIT,
    WARDEN_HEALTH_INTERVAL: '1h',
    WARDEN_SHUTDOWN_TIMEOUT: '5s',
  });
  const server = await startServer({
    config,
    logger: createLogger({ level: 'silent', format: 'json' }),
    inMemory: true,
  });
  let client: LoadClient | undefined;
  try {
    client = await startLoadClient();
    const baseUrl = server.url;
    const url = `${baseUrl}${ROUTE}`;

    const cookie = await loginCookie(baseUrl, ADMIN_EMAIL, ADMIN_PASSWORD);
    const { id: keyId, key } = await createApiKey(baseUrl, cookie, 'bench-auth', ['read']);
    const bearer = { authorization: `Bearer ${key}` };

    // The authenticated runs must really authenticate: the key works where `read` is
    // needed, and a wrong key is refused even on the public route.
    await expectStatus(baseUrl, ROUTE, {}, 200, 'no credentials');
    await expectStatus(baseUrl, ROUTE, bearer, 200, 'the read key');
    await expectStatus(baseUrl, '/health/history?hours=1', bearer, 200, 'the read key on a read route');
    await expectStatus(baseUrl, '/health/history?hours=1', {}, 401, 'no credentials on a read route');
    await expectStatus(baseUrl, ROUTE, { authorization: `Bearer ${tamperedKey(key)}` }, 401, 'a wrong key');
    await expectStatus(baseUrl, ROUTE, { authorization: 'Bearer not-a-key' }, 401, 'a malformed key');
    let authedRequests = 1; // the check above on ROUTE

    const headersOf = (kind: Kind): Record<string, string> => (kind === 'authed' ? bearer : {});
    progress(`warm-up: ${WARM_UP_S} s of each kind, concurrency ${concurrency}`);
    for (const kind of ['unauth', 'authed'] as const) {
      const sample = await measure(client, url, headersOf(kind), concurrency, WARM_UP_S * 1000);
      if (kind === 'authed') {
        authedRequests += sample.load.requests;
      }
      progress(`warm-up ${describe(kind, sample)}`);
    }

    const samples: Record<Kind, Sample[]> = { unauth: [], authed: [] };
    for (let r = 0; r < runs; r += 1) {
      const order: readonly Kind[] = r % 2 === 0 ? ['unauth', 'authed'] : ['authed', 'unauth'];
      for (const kind of order) {
        const sample = await measure(client, url, headersOf(kind), concurrency, runS * 1000);
        samples[kind].push(sample);
        if (kind === 'authed') {
          authedRequests += sample.load.requests;
        }
        progress(`run ${r + 1}/${runs} ${describe(kind, sample)}`);
      }
    }

    // Every authenticated request was counted against the key (and none of the others).
    await flushUsage(server);
    const recorded = await usageOfRoute(baseUrl, cookie, keyId, ROUTE);
    if (recorded !== authedRequests) {
      throw new Error(`the key's usage on ${ROUTE} is ${recorded} requests; ${authedRequests} were sent with it`);
    }

    const rps = (kind: Kind): number[] => samples[kind].map((s) => s.load.requestsPerS);
    const of = (kind: Kind, pick: (s: Sample) => number): number => median(samples[kind].map(pick));
    const unauthRps = median(rps('unauth'));
    const authedRps = median(rps('authed'));
    const overhead = 1 - authedRps / unauthRps;
    // Per pair (run r of each kind): the spread shows how much of the figure is noise.
    const paired = samples.authed.map((s, r) => 1 - s.load.requestsPerS / (samples.unauth[r]?.load.requestsPerS ?? 0));
    const unauthCpu = of('unauth', (s) => s.serverCpuUsPerRequest);
    const authedCpu = of('authed', (s) => s.serverCpuUsPerRequest);

    const record: BenchRecord = {
      figures: {
        route: `GET ${ROUTE}`,
        concurrency,
        runs,
        run_s: runS,
        unauth_rps: Math.round(unauthRps),
        authed_rps: Math.round(authedRps),
        auth_overhead: round(overhead, 4),
        paired_overhead_median: round(median(paired), 4),
        paired_overhead_min: round(Math.min(...paired), 4),
        paired_overhead_max: round(Math.max(...paired), 4),
        unauth_p50_ms: round(
          of('unauth', (s) => s.load.p50Ms),
          3,
        ),
        unauth_p99_ms: round(
          of('unauth', (s) => s.load.p99Ms),
          3,
        ),
        authed_p50_ms: round(
          of('authed', (s) => s.load.p50Ms),
          3,
        ),
        authed_p99_ms: round(
          of('authed', (s) => s.load.p99Ms),
          3,
        ),
        // CPU of the server process per request: the cost of authentication even when the
        // client, not the server, were the limit.
        unauth_server_cpu_us_per_req: round(unauthCpu, 1),
        authed_server_cpu_us_per_req: round(authedCpu, 1),
        auth_cpu_us_per_req: round(authedCpu - unauthCpu, 1),
        // The overhead in req/s a server that is the bottleneck would show: 1 - unauth/authed CPU.
        server_cpu_overhead: round(1 - unauthCpu / authedCpu, 4),
        // Near 100 % means the load client, not the server, limited the rate.
        client_cpu_pct: round(
          median([...samples.unauth, ...samples.authed].map((s) => (s.load.clientCpuMs / s.load.elapsedMs) * 100)),
          0,
        ),
        usage_recorded_requests: recorded,
      },
      met: overhead <= MAX_AUTH_OVERHEAD,
    };
    return { records: [record] };
  } finally {
    progress('stopping the load client and Warden');
    await client?.close();
    await server.close();
  }
}
