/**
 * `warden agent` as an operator runs it: the real CLI collecting this machine's metrics and
 * pushing them to a running Warden server, stopped with SIGTERM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_METRIC_NAMES } from '../../src/domain/metrics/collector.js';
import { runCli, show, SLOW, startCli } from '../helpers/cli.js';
import { createApiKey, startTestServer, type TestServer } from '../helpers/db.js';

describe('warden agent', () => {
  let t: TestServer;
  let apiKey: string;

  beforeAll(async () => {
    t = await startTestServer('pglite', { WARDEN_SELF_COLLECT: 'false', WARDEN_HEALTH_INTERVAL: '1h' });
    apiKey = await createApiKey(t.server.url, 'cli agent', ['ingest']);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  async function storedMetricNames(host: string): Promise<Set<string>> {
    const rows = await t.server.database.db
      .selectFrom('metric_series as m')
      .innerJoin('hosts as h', 'h.id', 'm.host_id')
      .innerJoin('metric_samples as s', 's.series_id', 'm.id')
      .select('m.name')
      .distinct()
      .where('h.name', '=', host)
      .execute();
    return new Set(rows.map((r) => r.name));
  }

  it(
    "pushes this host's documented metrics under its --name, with the key from the environment, and exits 0 on SIGTERM",
    async () => {
      const agent = startCli(['agent', '--server', t.server.url, '--interval', '1s', '--name', 'cli-agent-host'], {
        WARDEN_AGENT_API_KEY: apiKey,
        WARDEN_LOG_LEVEL: 'info',
      });
      let names = new Set<string>();
      try {
        const deadline = Date.now() + 90_000;
        // The second sweep brings CPU usage (a delta against the first).
        while (!names.has('cpu.usage_pct')) {
          if (Date.now() > deadline || agent.child.exitCode !== null) {
            throw new Error(`no CPU usage stored for cli-agent-host\n${JSON.stringify(agent.output(), null, 2)}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
          names = await storedMetricNames('cli-agent-host');
        }
      } finally {
        const result = await agent.stop('SIGTERM');
        expect(result.code, show(result)).toBe(0);
        expect(result.stdout).toContain('agent stopped');
        expect(result.stdout + result.stderr).not.toContain(apiKey);
      }
      for (const name of ['cpu.usage_pct', 'load.1', 'mem.used_pct', 'mem.total_bytes', 'swap.total_bytes']) {
        expect(names).toContain(name);
      }
      expect([...names].filter((name) => !HOST_METRIC_NAMES.has(name))).toEqual([]);
    },
    SLOW,
  );

  it('refuses to start without an API key, naming both ways to give one', async () => {
    const result = await runCli(['agent', '--server', t.server.url], {});
    expect(result.code, show(result)).toBe(2);
    expect(result.stderr).toContain('WARDEN_AGENT_API_KEY');
    expect(result.stderr).toContain('--api-key');

    const short = await runCli(['agent', '--server', t.server.url], { WARDEN_AGENT_API_KEY: 'wdn_abc' });
    expect(short.code, show(short)).toBe(2);
    expect(short.stderr).toContain('WARDEN_AGENT_API_KEY must be at least 8 characters long (value not shown)');
    expect(short.stderr).not.toContain('wdn_abc');
  });
});
