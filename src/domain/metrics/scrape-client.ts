/**
 * Fetches a target's exposition over HTTP: bounded in time (the target's timeout, covering
 * the connection, the headers and the whole body) and in size (the body is read in chunks
 * and abandoned past the limit, also when it arrives compressed). Every failure becomes a
 * ScrapeError whose message a person can act on: "timed out after 5000 ms",
 * "HTTP 503 Service Unavailable", "connection refused by 10.0.0.5:9100".
 */
import { VERSION } from '../../version.js';

/** Largest exposition body read, in bytes (after decompression). */
export const MAX_EXPOSITION_BYTES = 20 * 1024 * 1024;

/** A scrape failed; the message says why, for people. */
export class ScrapeError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ScrapeError';
  }
}

/** The scrape was abandoned because Warden is stopping; it is not the target's fault. */
export class ScrapeAbortedError extends Error {
  constructor() {
    super('scrape abandoned: Warden is stopping');
    this.name = 'ScrapeAbortedError';
  }
}

export interface FetchExpositionOptions {
  readonly timeoutMs: number;
  /** Default MAX_EXPOSITION_BYTES. */
  readonly maxBytes?: number;
  /** Aborts the scrape (shutdown); it then rejects with ScrapeAbortedError. */
  readonly signal?: AbortSignal;
}

/** Fetches the text at `url`; rejects with ScrapeError or ScrapeAbortedError. */
export type ExpositionFetcher = (url: string, options: FetchExpositionOptions) => Promise<string>;

const ACCEPT = 'text/plain;version=0.0.4;q=1,*/*;q=0.1';

function codeOf(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') {
    return undefined;
  }
  if ('code' in error && typeof error.code === 'string') {
    return error.code;
  }
  // Several addresses tried (IPv6 and IPv4): the first tells the story.
  if ('errors' in error && Array.isArray(error.errors)) {
    return codeOf(error.errors[0]);
  }
  return undefined;
}

/** A readable reason for a failed request (fetch reports them all as "fetch failed"). */
export function describeFetchFailure(error: unknown, url: URL): string {
  const cause = error instanceof Error && error.cause !== undefined ? error.cause : error;
  const code = codeOf(cause);
  const where = url.host;
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused by ${where}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host ${url.hostname} not found (DNS)`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return `connection to ${where} closed before the response was complete`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${where} is unreachable (${code})`;
    case undefined:
      break;
    default:
      if (code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL')) {
        return `TLS with ${where} failed: ${cause instanceof Error ? cause.message : code}`;
      }
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return `request to ${where} failed: ${message}${code !== undefined && !message.includes(code) ? ` (${code})` : ''}`;
}

async function readBody(response: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel();
    throw new ScrapeError(`response too large: ${declared} bytes declared, the limit is ${maxBytes}`);
  }
  if (response.body === null) {
    return new Uint8Array(0);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      break;
    }
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new ScrapeError(`response too large: more than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** The default fetcher: global fetch with the limits described above. */
export const fetchExposition: ExpositionFetcher = async (url, options) => {
  const maxBytes = options.maxBytes ?? MAX_EXPOSITION_BYTES;
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
  const parsedUrl = new URL(url);
  try {
    const response = await fetch(parsedUrl, {
      signal,
      headers: { accept: ACCEPT, 'user-agent': `Warden/${VERSION}` },
      redirect: 'follow',
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw new ScrapeError(`HTTP ${response.status}${response.statusText === '' ? '' : ` ${response.statusText}`}`);
    }
    const body = await readBody(response, maxBytes);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      throw new ScrapeError('the response is not UTF-8 text, so not Prometheus text exposition');
    }
  } catch (error) {
    if (error instanceof ScrapeError) {
      throw error;
    }
    if (options.signal?.aborted === true) {
      throw new ScrapeAbortedError();
    }
    if (timeout.aborted) {
      throw new ScrapeError(`timed out after ${options.timeoutMs} ms`, { cause: error });
    }
    throw new ScrapeError(describeFetchFailure(error, parsedUrl), { cause: error });
  }
};
