/**
 * HTTP load generator that runs in a process of its own, so the client's JavaScript does
 * not share the event loop (or the CPU time) of the server under test.
 *
 * The parent starts it with `startLoadClient()` and sends it runs over the IPC channel:
 * each run keeps `concurrency` requests in flight on keep-alive connections for
 * `durationMs`, then answers with the request count, the status codes, latency
 * percentiles and the client's own CPU use. A run is GET by default; with `post` it POSTs
 * bodies made from pre-built templates (see PostBodies) and checks every answer.
 * `node --import tsx bench/lib/load-client.ts` is the child side; everything else in this
 * file is the parent side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

/** One load run: GET (or POST, with `post`) `url` with `headers`, `concurrency` at a time, for `durationMs`. */
export interface LoadRun {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly concurrency: number;
  readonly durationMs: number;
  /** POST bodies made from these templates instead of GET. */
  readonly post?: PostBodies;
}

/**
 * Bodies of a POST run. The templates are built once by the parent; each request takes
 * the next one in turn and writes its own *stamp* over every occurrence of
 * `stampPlaceholder`: epoch milliseconds, max(now, previous stamp + 1), kept across runs
 * for the life of the client process. So no two requests carry the same stamp (a body
 * that uses it as a sample time never repeats a sample), and building a body costs one
 * buffer copy, not a JSON serialization.
 */
export interface PostBodies {
  readonly templates: readonly string[];
  /** Exactly STAMP_LENGTH ASCII characters that occur nowhere else in the templates. */
  readonly stampPlaceholder: string;
  readonly contentType: string;
  /**
   * What an accepted answer looks like: this status and, when `field` is given, a JSON
   * body whose top-level `field` equals `equals`. Anything else counts as rejected.
   */
  readonly expect: { readonly status: number; readonly field?: string; readonly equals?: number };
}

/** Characters of a stamp (epoch milliseconds have 13 digits until the year 2286). */
export const STAMP_LENGTH = 13;

export interface LoadResult {
  /** Completed requests (any status). */
  readonly requests: number;
  /** Requests that failed without a response (connection errors, timeouts). */
  readonly failures: number;
  /** First failure's message, if any. */
  readonly firstFailure: string | null;
  /** Responses by status code. */
  readonly statuses: Readonly<Record<string, number>>;
  /** From the first request sent to the last response received. */
  readonly elapsedMs: number;
  readonly requestsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU time (user + system) of the client process during the run. */
  readonly clientCpuMs: number;
  /** POST runs only. */
  readonly post?: PostOutcome;
}

export interface PostOutcome {
  /** Answers that matched `expect`. */
  readonly accepted: number;
  /** Answers that did not (any other status or field value). */
  readonly rejected: number;
  /** Status and start of the body of the first rejected answer, if any. */
  readonly firstRejection: string | null;
  /** Body bytes sent (all requests, answered or not). */
  readonly bytesSent: number;
  /** Stamps of the first and last request of the run. */
  readonly firstStamp: number;
  readonly lastStamp: number;
}

type ParentMessage = { type: 'run'; id: number; run: LoadRun } | { type: 'exit' };
type ChildMessage =
  | { type: 'ready' }
  | { type: 'result'; id: number; result: LoadResult }
  | { type: 'error'; id: number; message: string };

/** A request that got no answer in this long counts as failed. */
const REQUEST_TIMEOUT_MS = 5000;
/** A run is abandoned (and the client killed) when it overruns its duration by this much. */
const RUN_GRACE_MS = 15_000;
const START_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

function getOnce(agent: http.Agent, target: URL, headers: Readonly<Record<string, string>>): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        method: 'GET',
        hostname: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        headers,
        timeout: REQUEST_TIMEOUT_MS,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no response within ${REQUEST_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end();
  });
}

interface PostAnswer {
  readonly status: number;
  readonly body: string;
}

function postOnce(
  agent: http.Agent,
  target: URL,
  headers: Readonly<Record<string, string>>,
  body: Buffer,
): Promise<PostAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        method: 'POST',
        hostname: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        headers: { ...headers, 'content-length': String(body.length) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no response within ${REQUEST_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}

/** The last stamp handed out by this process (see PostBodies). */
let lastStamp = 0;

function nextStamp(): number {
  lastStamp = Math.max(Date.now(), lastStamp + 1);
  return lastStamp;
}

/** A template as bytes with the offsets of its placeholders. */
interface PreparedTemplate {
  readonly bytes: Buffer;
  readonly offsets: readonly number[];
}

function prepareTemplates(post: PostBodies): PreparedTemplate[] {
  if (post.stampPlaceholder.length !== STAMP_LENGTH || Buffer.byteLength(post.stampPlaceholder) !== STAMP_LENGTH) {
    throw new Error(`stampPlaceholder must be ${STAMP_LENGTH} ASCII characters`);
  }
  if (post.templates.length === 0) {
    throw new Error('post.templates is empty');
  }
  return post.templates.map((template) => {
    const bytes = Buffer.from(template);
    const offsets: number[] = [];
    for (let at = bytes.indexOf(post.stampPlaceholder); at !== -1; at = bytes.indexOf(post.stampPlaceholder, at + 1)) {
      offsets.push(at);
    }
    return { bytes, offsets };
  });
}

/** A fresh body from a template with `stamp` written over its placeholders. */
function stampedBody(template: PreparedTemplate, stamp: number): Buffer {
  const digits = Buffer.from(String(stamp).padStart(STAMP_LENGTH, '0'));
  if (digits.length !== STAMP_LENGTH) {
    throw new Error(`stamp ${stamp} does not fit in ${STAMP_LENGTH} characters`);
  }
  const body = Buffer.allocUnsafe(template.bytes.length);
  template.bytes.copy(body);
  for (const offset of template.offsets) {
    digits.copy(body, offset);
  }
  return body;
}

/** Whether an answer matches `expect`. */
function isAccepted(answer: PostAnswer, expect: PostBodies['expect']): boolean {
  if (answer.status !== expect.status) {
    return false;
  }
  if (expect.field === undefined) {
    return true;
  }
  try {
    const parsed = JSON.parse(answer.body) as Record<string, unknown>;
    return parsed[expect.field] === expect.equals;
  } catch {
    return false;
  }
}

async function runLoad(run: LoadRun): Promise<LoadResult> {
  const target = new URL(run.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: run.concurrency, maxFreeSockets: run.concurrency });
  // Latencies in ms; grown by doubling, so recording one is an indexed store.
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let failures = 0;
  let firstFailure: string | null = null;
  const statuses = new Map<number, number>();
  const post = run.post;
  const templates = post === undefined ? [] : prepareTemplates(post);
  const postHeaders = post === undefined ? run.headers : { ...run.headers, 'content-type': post.contentType };
  let nextTemplate = 0;
  let accepted = 0;
  let rejected = 0;
  let firstRejection: string | null = null;
  let bytesSent = 0;
  let firstStamp = 0;
  let runLastStamp = 0;

  /** One request of the run; resolves with its status. */
  const requestOnce = async (): Promise<number> => {
    if (post === undefined) {
      return getOnce(agent, target, run.headers);
    }
    const template = templates[nextTemplate % templates.length] as PreparedTemplate;
    nextTemplate += 1;
    const stamp = nextStamp();
    if (firstStamp === 0) {
      firstStamp = stamp;
    }
    runLastStamp = stamp;
    const body = stampedBody(template, stamp);
    bytesSent += body.length;
    const answer = await postOnce(agent, target, postHeaders, body);
    if (isAccepted(answer, post.expect)) {
      accepted += 1;
    } else {
      rejected += 1;
      firstRejection ??= `${answer.status} ${answer.body.slice(0, 300)}`;
    }
    return answer.status;
  };

  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const deadline = started + run.durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const sent = performance.now();
      try {
        const status = await requestOnce();
        if (count === latencies.length) {
          const grown = new Float64Array(latencies.length * 2);
          grown.set(latencies);
          latencies = grown;
        }
        latencies[count] = performance.now() - sent;
        count += 1;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      } catch (error) {
        failures += 1;
        firstFailure ??= error instanceof Error ? error.message : String(error);
        // Do not spin on a dead server: failures end the run early.
        if (failures >= 100) {
          return;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: run.concurrency }, () => worker()));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  agent.destroy();

  const sorted = latencies.subarray(0, count).sort();
  return {
    requests: count,
    failures,
    firstFailure,
    statuses: Object.fromEntries([...statuses].map(([status, n]) => [String(status), n])),
    elapsedMs,
    requestsPerS: (count * 1000) / elapsedMs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    ...(post === undefined
      ? {}
      : { post: { accepted, rejected, firstRejection, bytesSent, firstStamp, lastStamp: runLastStamp } }),
  };
}

function childMain(): void {
  const send = (message: ChildMessage): void => {
    process.send?.(message);
  };
  process.on('message', (message: ParentMessage) => {
    if (message.type === 'exit') {
      process.disconnect();
      return;
    }
    runLoad(message.run).then(
      (result) => send({ type: 'result', id: message.id, result }),
      (error: unknown) =>
        send({ type: 'error', id: message.id, message: error instanceof Error ? error.message : String(error) }),
    );
  });
  // The parent going away (or sending `exit`) ends this process: nothing else keeps it alive.
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}

// ---------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------

export interface LoadClient {
  /** Runs one load run in the client process; rejects when it fails or overruns. */
  run(run: LoadRun): Promise<LoadResult>;
  /** Ends the client process (idempotent). */
  close(): Promise<void>;
}

/** Starts the load client process (`node --import tsx` on this file) and waits until it is ready. */
export async function startLoadClient(): Promise<LoadClient> {
  const script = fileURLToPath(import.meta.url);
  // stdout of the child goes to our stderr: the bench's stdout carries results only.
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], {
    stdio: ['ignore', 2, 2, 'ipc'],
    env: { ...process.env, WARDEN_LOAD_CLIENT: '1' },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>();
  let exitError: Error | undefined;

  child.on('message', (message: ChildMessage) => {
    if (message.type === 'ready') {
      return;
    }
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.type === 'result') {
      waiter?.resolve(message.result);
    } else {
      waiter?.reject(new Error(`load client: ${message.message}`));
    }
  });
  child.once('exit', (code, signal) => {
    exitError = new Error(`load client exited (code ${code ?? 'none'}, signal ${signal ?? 'none'})`);
    for (const waiter of pending.values()) {
      waiter.reject(exitError);
    }
    pending.clear();
  });

  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`load client not ready within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      reject(exitError ?? new Error('load client exited before it was ready'));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  }).catch(async (error: unknown) => {
    await kill();
    throw error;
  });

  return {
    run(run: LoadRun): Promise<LoadResult> {
      if (exitError !== undefined) {
        return Promise.reject(exitError);
      }
      const id = nextId;
      nextId += 1;
      return new Promise<LoadResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`load run overran ${run.durationMs} ms by more than ${RUN_GRACE_MS} ms`));
          void kill();
        }, run.durationMs + RUN_GRACE_MS);
        pending.set(id, {
          resolve: (result) => {
            clearTimeout(timer);
            resolve(result);
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
        child.send({ type: 'run', id, run } satisfies ParentMessage);
      });
    },
    async close(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) {
        return;
      }
      if (child.connected) {
        child.send({ type: 'exit' } satisfies ParentMessage);
      }
      const timer = setTimeout(() => void kill(), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

if (process.env.WARDEN_LOAD_CLIENT === '1' && process.argv[1] === fileURLToPath(import.meta.url)) {
  childMain();
}
