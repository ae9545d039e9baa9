import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { startTestServer, adminFetch } from '../helpers/db.js';

describe('graceful shutdown', () => {
  it('finishes requests in flight, then stops listening, stops jobs and closes the database', async () => {
    let arrived = 0;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        const line = chunk.toString();
        if (line.includes('"msg":"incoming request"') && line.includes('"url":"/database/status"')) {
          arrived += 1;
        }
        callback();
      },
    });
    const logger = createLogger({ level: 'info', format: 'json' }, sink);
    const t = await startTestServer('pglite', { WARDEN_HEALTH_INTERVAL: '1s' }, logger);
    const { server } = t;
    const inFlight = [1, 2, 3].map(() => adminFetch(server.url, `/database/status`));
    // Shut down as soon as the server has received all three requests (bounded wait).
    for (let i = 0; i < 200 && arrived < 3; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(arrived).toBe(3);
    await server.close();
    const responses = await Promise.all(inFlight);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    const body = (await responses[0]?.json()) as { engine: string };
    expect(body.engine).toBe('pglite');

    await expect(fetch(`${server.url}/health`)).rejects.toThrow();
    await expect(sql`select 1`.execute(server.database.db)).rejects.toThrow();
    // close() is idempotent.
    await server.close();
  });
});
