/**
 * `COPY … FROM STDIN` over node-postgres without another dependency: a pg Query whose
 * answer to the server's CopyInResponse is the given data in CopyData messages, then
 * CopyDone. pg's own Query answers CopyInResponse with CopyFail; everything else (errors,
 * CommandComplete with the row count, ReadyForQuery) it already handles. The data is
 * sent whole, so this is for bounded batches, not for streaming a large file.
 */
import type { Duplex } from 'node:stream';
import pg from 'pg';

/** The parts of pg's Connection that COPY uses (present in pg 8, absent from @types/pg). */
interface CopyConnection {
  readonly stream: Duplex;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/** Largest CopyData message sent; the server takes any size, this only bounds one buffer copy. */
const CHUNK_BYTES = 256 * 1024;

class CopyFromQuery extends pg.Query {
  constructor(
    text: string,
    private readonly data: Buffer,
    callback: (error: Error | undefined, result: { rowCount: number | null }) => void,
  ) {
    super(text, callback);
  }

  /** Called by pg's Client when the server is ready for the data (see the file comment). */
  handleCopyInResponse(connection: CopyConnection): void {
    for (let at = 0; at < this.data.length; at += CHUNK_BYTES) {
      connection.sendCopyFromChunk(this.data.subarray(at, at + CHUNK_BYTES));
    }
    connection.endCopyFrom();
  }
}

/**
 * Runs `copy <table> (…) from stdin` (text format unless the statement says otherwise)
 * with `data` as its input; resolves with the number of rows copied.
 */
export function copyFromStdin(client: pg.ClientBase, statement: string, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const query = new CopyFromQuery(statement, data, (error, result) => {
      if (error !== undefined && error !== null) {
        reject(error);
      } else {
        resolve(result.rowCount ?? 0);
      }
    });
    client.query(query);
  });
}
