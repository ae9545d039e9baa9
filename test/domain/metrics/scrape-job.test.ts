import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/db/engine.js';
import { AuditService } from '../../../src/domain/access/audit-service.js';
import { SYSTEM_ACTOR } from '../../../src/domain/access/permissions.js';
import { IngestService } from '../../../src/domain/metrics/ingest-service.js';
import { ScrapeJob } from '../../../src/domain/metrics/scrape-job.js';
import {
  ScrapeService,
  type ScrapeTarget,
  type ScrapeTargetInput,
} from '../../../src/domain/metrics/scrape-service.js';
import { ENGINES, createTestDatabase, silentLogger, type TestDatabase } from '../../helpers/db.js';
import {
  NODE_EXPORTER_TEXT,
  exposition,
  hang,
  refusingUrl,
  startPeer,
  type Peer,
} from '../../helpers/exposition-peer.js';

interface StoredSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  ts: Date;
}

describe.each(ENGINES)('Prometheus scraping on %s', (engine) => {
  let t: TestDatabase;
  let service: ScrapeService;
  let job: ScrapeJob;
  let peer: Peer;
  /** What /switch answers: exposition when true, 503 when false. */
  let switchHealthy = false;
  const peers: Peer[] = [];

  function newService(database: Database = t.database, options: { maxSamplesPerScrape?: number } = {}) {
    const ingest = new IngestService(database.db, t.config.metrics);
    return new ScrapeService(database.db, ingest, new AuditService(database.db), t.metrics, options);
  }

  async function target(input: Partial<ScrapeTargetInput> & { url: string }): Promise<ScrapeTarget> {
    return service.create(SYSTEM_ACTOR, { name: `target ${Math.random().toString(36).slice(2)}`, ...input });
  }

  async function makeDue(id: number): Promise<void> {
    await sql`update scrape_targets set next_scrape_at = now() - interval '1 second' where id = ${id}`.execute(
      t.database.db,
    );
  }

  async function samplesOf(host: string): Promise<StoredSample[]> {
    const result = await sql<StoredSample>`
      select s.name, s.labels, m.value, m.ts
      from metric_samples m join metric_series s on s.id = m.series_id join hosts h on h.id = s.host_id
      where h.name = ${host}
      order by s.name, s.labels::text`.execute(t.database.db);
    return result.rows;
  }

  async function runsOf(id: number) {
    return t.database.db.selectFrom('scrape_runs').selectAll().where('target_id', '=', id).orderBy('id').execute();
  }

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    service = newService();
    job = new ScrapeJob(service, t.config.metrics, silentLogger, t.metrics);
    peer = await startPeer((request, response) => {
      if (request.url?.startsWith('/hang') === true) {
        return hang(request, response);
      }
      switch (request.url ?? '/') {
        case '/metrics':
          return exposition(NODE_EXPORTER_TEXT)(request, response);
        case '/garbage':
          response.writeHead(200, { 'content-type': 'text/html' });
          return response.end('<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>');
        case '/empty':
          return exposition('# nothing to see\n')(request, response);
        case '/error':
          response.writeHead(500);
          return response.end('boom');
        case '/switch':
          if (switchHealthy) {
            return exposition('up 1\n')(request, response);
          }
          response.writeHead(503);
          return response.end();
        default:
          return exposition(`path_hits{path="${request.url}"} 1\n`)(request, response);
      }
    });
    peers.push(peer);
  });
  afterEach(async () => {
    // Each test claims only its own targets.
    await sql`update scrape_targets set enabled = false`.execute(t.database.db);
  });
  afterAll(async () => {
    await job.stop();
    await Promise.all(peers.map((p) => p.close()));
    await t.cleanup();
  });

  it("scrapes a node_exporter and stores every sample under the target's host, with Warden names and labels", async () => {
    const created = await target({ url: `${peer.url}/metrics`, host_name: 'web-1', interval_s: 15 });
    const claimed = await job.runOnce();
    expect(claimed.map((c) => c.id)).toEqual([created.id]);

    const samples = await samplesOf('web-1');
    expect(samples).toHaveLength(43);
    expect(samples).toContainEqual(
      expect.objectContaining({
        name: 'node_cpu_seconds_total',
        labels: { cpu: '0', mode: 'idle' },
        value: 1134755.19,
      }),
    );
    expect(samples).toContainEqual(
      expect.objectContaining({ name: 'node_memory_memavailable_bytes', labels: {}, value: 6148362240 }),
    );
    expect(samples).toContainEqual(
      expect.objectContaining({ name: 'go_gc_duration_seconds', labels: { quantile: '0.5' }, value: 4.4732e-5 }),
    );

    const after = await service.get(created.id);
    expect(after).toMatchObject({
      lastStatus: 'ok',
      lastError: null,
      lastNotes: null,
      lastSamples: 43,
      consecutiveFailures: 0,
    });
    // Every sample is stored at the scrape time.
    expect(new Set(samples.map((s) => s.ts.getTime()))).toEqual(new Set([after.lastScrapeAt?.getTime()]));
    expect(after.nextScrapeAt.getTime()).toBeGreaterThan(Date.now());
    const runs = await runsOf(created.id);
    expect(runs).toMatchObject([{ status: 'ok', samples: 43, error: null, notes: null }]);
    const host = await t.database.db
      .selectFrom('hosts')
      .select('interval_s')
      .where('name', '=', 'web-1')
      .executeTakeFirstOrThrow();
    expect(host.interval_s).toBe(15);
  });

  it('stores only what the include patterns select, less what the exclude patterns name', async () => {
    await target({
      url: `${peer.url}/metrics`,
      host_name: 'filtered',
      include: ['node_cpu_*', 'node_load*', 'go_gc_duration_seconds'],
      exclude: ['node_load15', '*_count'],
    });
    await job.runOnce();
    const names = new Set((await samplesOf('filtered')).map((s) => s.name));
    expect(names).toEqual(
      new Set(['node_cpu_seconds_total', 'node_load1', 'go_gc_duration_seconds', 'go_gc_duration_seconds_sum']),
    );
  });

  it('records failed scrapes with a readable reason: garbage, HTTP error, timeout, refused connection, nothing parsed', async () => {
    const failuresBefore = (await t.metrics.scrapeFailures.get()).values.reduce((sum, v) => sum + v.value, 0);
    const garbage = await target({ url: `${peer.url}/garbage`, host_name: 'garbage' });
    const error = await target({ url: `${peer.url}/error`, host_name: 'error' });
    const hung = await target({ url: `${peer.url}/hang`, host_name: 'hung', interval_s: 5, timeout_ms: 300 });
    const refused = await target({ url: await refusingUrl(), host_name: 'refused' });
    const empty = await target({ url: `${peer.url}/empty`, host_name: 'empty' });
    await job.runOnce();

    const reasons = new Map<number, string | null>();
    for (const t of [garbage, error, hung, refused, empty]) {
      const after = await service.get(t.id);
      expect(after).toMatchObject({ lastStatus: 'failed', lastSamples: 0, consecutiveFailures: 1, lastNotes: null });
      reasons.set(t.id, after.lastError);
      expect((await runsOf(t.id)).map((r) => [r.status, r.error, r.notes])).toEqual([
        ['failed', after.lastError, null],
      ]);
      expect(await samplesOf(t.hostName)).toEqual([]);
    }
    expect(reasons.get(garbage.id)).toMatch(/^the response looks like HTML or XML, not Prometheus text exposition/);
    expect(reasons.get(error.id)).toBe('HTTP 500 Internal Server Error');
    expect(reasons.get(hung.id)).toBe('timed out after 300 ms');
    expect(reasons.get(refused.id)).toMatch(/^connection refused by 127\.0\.0\.1:\d+$/);
    expect(reasons.get(empty.id)).toBe('no samples parsed: the response holds no Prometheus samples');

    const failures = await t.metrics.scrapeFailures.get();
    expect(failures.values.reduce((sum, v) => sum + v.value, 0) - failuresBefore).toBe(5);
    expect(failures.values.find((v) => v.labels.target === hung.name)?.value).toBe(1);
  });

  it('counts failures in a row and resets the count on the first successful scrape', async () => {
    switchHealthy = false;
    const flaky = await target({ url: `${peer.url}/switch`, host_name: 'flaky' });
    await job.runOnce();
    await makeDue(flaky.id);
    await job.runOnce();
    expect(await service.get(flaky.id)).toMatchObject({
      lastStatus: 'failed',
      lastError: 'HTTP 503 Service Unavailable',
      consecutiveFailures: 2,
    });

    switchHealthy = true;
    await makeDue(flaky.id);
    await job.runOnce();
    expect(await service.get(flaky.id)).toMatchObject({
      lastStatus: 'ok',
      lastError: null,
      lastSamples: 1,
      consecutiveFailures: 0,
    });
    expect((await runsOf(flaky.id)).map((r) => r.status)).toEqual(['failed', 'failed', 'ok']);
  });

  it('stores at most the per-scrape cap and says in the run what it dropped', async () => {
    const capped = newService(t.database, { maxSamplesPerScrape: 10 });
    const created = await target({ url: `${peer.url}/metrics`, host_name: 'capped' });
    const { run, target: after } = await capped.scrapeNow(created.id);
    expect(run).toMatchObject({ status: 'ok', samples: 10, error: null });
    expect(run.notes).toBe(
      '33 samples over the cap of 10 per scrape dropped; narrow the target with include/exclude patterns',
    );
    expect(after).toMatchObject({ lastStatus: 'ok', lastNotes: run.notes, lastError: null });
    expect(await runsOf(created.id)).toMatchObject([{ status: 'ok', error: null, notes: run.notes }]);
    expect(await samplesOf('capped')).toHaveLength(10);
  });

  it('does not scrape disabled or deleted targets, nor targets not yet due', async () => {
    const disabled = await target({ url: `${peer.url}/disabled`, enabled: false });
    const deleted = await target({ url: `${peer.url}/deleted` });
    await service.delete(SYSTEM_ACTOR, deleted.id);
    const due = await target({ url: `${peer.url}/due` });
    expect((await job.runOnce()).map((c) => c.id)).toEqual([due.id]);
    expect(await job.runOnce()).toEqual([]);
    expect(peer.hits.get('/disabled')).toBeUndefined();
    expect(peer.hits.get('/deleted')).toBeUndefined();
    expect(peer.hits.get('/due')).toBe(1);
    expect(disabled.enabled).toBe(false);
  });

  describe('several instances on one database', () => {
    let second: Database;

    beforeAll(async () => {
      // PostgreSQL: a second pool, as another Warden instance would have. PGlite is one
      // process's database: the second instance shares it.
      second =
        engine === 'postgresql'
          ? await openDatabase({ config: t.config.database, logger: silentLogger, metrics: t.metrics })
          : t.database;
    });
    afterAll(async () => {
      if (second !== t.database) {
        await second.close();
      }
    });

    it('never lets two claims at once take the same target', async () => {
      const ids = new Set<number>();
      for (let i = 0; i < 20; i += 1) {
        ids.add((await target({ url: `${peer.url}/claim/${i}` })).id);
      }
      const other = newService(second);
      for (let round = 0; round < 3; round += 1) {
        for (const id of ids) {
          await makeDue(id);
        }
        const [mine, theirs] = await Promise.all([service.claimDue(15), other.claimDue(15)]);
        const mineIds = mine.map((c) => c.id);
        const theirIds = theirs.map((c) => c.id);
        expect(mineIds.filter((id) => theirIds.includes(id))).toEqual([]);
        expect(new Set([...mineIds, ...theirIds])).toEqual(ids);
        expect(await Promise.all([service.claimDue(15), other.claimDue(15)])).toEqual([[], []]);
      }
    });

    it('scrapes each due target exactly once in a round shared by two scrapers', async () => {
      const created: ScrapeTarget[] = [];
      for (let i = 0; i < 12; i += 1) {
        created.push(await target({ url: `${peer.url}/round/${i}`, host_name: `round-${i}` }));
      }
      const otherJob = new ScrapeJob(newService(second), t.config.metrics, silentLogger, t.metrics);
      const [mine, theirs] = await Promise.all([job.runOnce(), otherJob.runOnce()]);
      expect(mine.length + theirs.length).toBe(12);
      for (const [i, c] of created.entries()) {
        expect(peer.hits.get(`/round/${i}`), `target ${i}`).toBe(1);
        expect((await runsOf(c.id)).map((r) => r.status)).toEqual(['ok']);
        expect(await samplesOf(`round-${i}`)).toMatchObject([
          { name: 'path_hits', labels: { path: `/round/${i}` }, value: 1 },
        ]);
      }
    });
  });

  it('stop() abandons a scrape in flight without recording it, and resolves', async () => {
    const stopping = new ScrapeJob(service, t.config.metrics, silentLogger, t.metrics);
    const stuck = await target({ url: `${peer.url}/hang?stop`, interval_s: 120, timeout_ms: 60_000 });
    stopping.start();
    while (peer.hits.get('/hang?stop') === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await stopping.stop();
    expect(await runsOf(stuck.id)).toEqual([]);
    expect(await service.get(stuck.id)).toMatchObject({ lastStatus: null, consecutiveFailures: 0 });
  });
});
