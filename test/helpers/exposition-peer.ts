/**
 * Real HTTP peers for scrape tests: node:http servers on 127.0.0.1 serving exposition
 * text, garbage, errors, or never answering.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const NODE_EXPORTER_TEXT = readFileSync(new URL('../fixtures/node-exporter.prom', import.meta.url), 'utf8');

export interface Peer {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** Requests served so far, by path. */
  readonly hits: Map<string, number>;
  close(): Promise<void>;
}

export type PeerHandler = (request: IncomingMessage, response: ServerResponse) => void;

/** A server on a free port of 127.0.0.1 answering with `handler`. */
export async function startPeer(handler: PeerHandler): Promise<Peer> {
  const hits = new Map<string, number>();
  const server = createServer((request, response) => {
    const path = request.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    handler(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Serves `text` (a function: read per request) as Prometheus text exposition. */
export function exposition(text: string | (() => string)): PeerHandler {
  return (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    response.end(typeof text === 'string' ? text : text());
  };
}

/** Accepts the request and never answers. */
export const hang: PeerHandler = () => {};

/** A URL on 127.0.0.1 where nothing listens (a port just released). */
export async function refusingUrl(): Promise<string> {
  const peer = await startPeer(hang);
  await peer.close();
  return `${peer.url}/metrics`;
}
