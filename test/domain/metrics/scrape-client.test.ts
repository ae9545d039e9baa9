import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ScrapeAbortedError,
  ScrapeError,
  describeFetchFailure,
  fetchExposition,
} from '../../../src/domain/metrics/scrape-client.js';
import { rejection } from '../../helpers/assert.js';
import { startPeer, type Peer } from '../../helpers/exposition-peer.js';

describe('fetching an exposition', () => {
  let peer: Peer;

  beforeAll(async () => {
    peer = await startPeer((request, response) => {
      switch (request.url ?? '/') {
        case '/ok':
          response.end('up 1\n');
          return;
        case '/gzip':
          response.writeHead(200, { 'content-encoding': 'gzip' });
          response.end(gzipSync('compressed 1\n'));
          return;
        case '/redirect':
          response.writeHead(302, { location: '/ok' });
          response.end();
          return;
        case '/declared-large':
          response.writeHead(200, { 'content-length': '2000' });
          response.end('x'.repeat(2000));
          return;
        case '/streamed-large':
          // No content-length: the limit must hold while reading.
          for (let i = 0; i < 10; i += 1) {
            response.write('y'.repeat(500));
          }
          response.end();
          return;
        case '/latin1':
          response.end(Buffer.from([0x6d, 0xe9, 0x74, 0x72, 0x69, 0x63, 0x20, 0x31]));
          return;
        case '/stall-body':
          response.writeHead(200);
          response.write('up 1\n');
          return; // headers and part of the body, then nothing
        case '/not-found':
          response.writeHead(404);
          response.end('no such page');
          return;
        default:
          return; // never answers
      }
    });
  });
  afterAll(async () => {
    await peer.close();
  });

  async function failure(path: string, options: { timeoutMs?: number; maxBytes?: number } = {}): Promise<string> {
    const error = await rejection(
      fetchExposition(`${peer.url}${path}`, { timeoutMs: options.timeoutMs ?? 2000, maxBytes: options.maxBytes }),
    );
    expect(error).toBeInstanceOf(ScrapeError);
    return (error as Error).message;
  }

  it('returns the text, following redirects and undoing gzip', async () => {
    expect(await fetchExposition(`${peer.url}/ok`, { timeoutMs: 2000 })).toBe('up 1\n');
    expect(await fetchExposition(`${peer.url}/redirect`, { timeoutMs: 2000 })).toBe('up 1\n');
    expect(await fetchExposition(`${peer.url}/gzip`, { timeoutMs: 2000 })).toBe('compressed 1\n');
  });

  it('refuses bodies over the limit, declared or streamed', async () => {
    expect(await failure('/declared-large', { maxBytes: 1000 })).toBe(
      'response too large: 2000 bytes declared, the limit is 1000',
    );
    expect(await failure('/streamed-large', { maxBytes: 1000 })).toBe('response too large: more than 1000 bytes');
  });

  it('names an HTTP error status, a body that is not UTF-8 and a body that stops coming', async () => {
    expect(await failure('/not-found')).toBe('HTTP 404 Not Found');
    expect(await failure('/latin1')).toBe('the response is not UTF-8 text, so not Prometheus text exposition');
    expect(await failure('/stall-body', { timeoutMs: 200 })).toBe('timed out after 200 ms');
    expect(await failure('/never', { timeoutMs: 200 })).toBe('timed out after 200 ms');
  });

  it('rejects with ScrapeAbortedError when Warden stops during the scrape', async () => {
    const controller = new AbortController();
    const pending = fetchExposition(`${peer.url}/never`, { timeoutMs: 30_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    expect(await rejection(pending)).toBeInstanceOf(ScrapeAbortedError);
  });

  it('turns low-level failures into readable reasons', () => {
    const failed = (code: string, message = code) =>
      new TypeError('fetch failed', { cause: Object.assign(new Error(message), { code }) });
    const url = new URL('http://exporter.example:9100/metrics');
    expect(describeFetchFailure(failed('ENOTFOUND'), url)).toBe('host exporter.example not found (DNS)');
    expect(describeFetchFailure(failed('ECONNRESET'), url)).toBe(
      'connection to exporter.example:9100 closed before the response was complete',
    );
    expect(describeFetchFailure(failed('CERT_HAS_EXPIRED', 'certificate has expired'), url)).toBe(
      'TLS with exporter.example:9100 failed: certificate has expired',
    );
    const refusedTwice = new TypeError('fetch failed', {
      cause: Object.assign(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), {}),
    });
    expect(describeFetchFailure(refusedTwice, url)).toBe('connection refused by exporter.example:9100');
    expect(describeFetchFailure(failed('EWEIRD', 'something odd'), url)).toBe(
      'request to exporter.example:9100 failed: something odd (EWEIRD)',
    );
  });
});
