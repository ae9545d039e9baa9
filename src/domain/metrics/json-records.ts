/**
 * Reading JSON records from a stream of text, with positions people can find in an editor:
 * - JSON-lines: one value per line; a line that does not parse is reported with its line
 *   and column and reading goes on.
 * - A JSON array: `JsonArraySplitter` cuts the text into elements as it arrives (so a
 *   multi-gigabyte file is never held whole) and parses each element on its own. The
 *   first syntax error stops it: after a broken element the boundaries of the next ones
 *   are guesswork.
 *
 * Lines and columns are 1-based; columns count UTF-16 code units (characters, outside
 * the astral planes). Everything here is pure: no I/O.
 */

/** Where a record (or a syntax error) sits in its file. */
export interface RecordPosition {
  /** 1-based line. */
  readonly line: number;
  /** 1-based column; given for syntax errors and array elements. */
  readonly column?: number;
  /** 0-based index of the element in an array file. */
  readonly index?: number;
}

/** A syntax error: where and what. */
export interface JsonSyntaxProblem {
  readonly position: RecordPosition;
  readonly message: string;
}

/** One element of an array file, parsed. */
export interface ArrayElement {
  readonly position: RecordPosition;
  readonly value: unknown;
}

/** An array element larger than this is refused (a broken file would otherwise be buffered whole). */
export const MAX_ELEMENT_CHARS = 64 * 1024 * 1024;

/** "line 12", "line 3, column 7", "element [4] (line 9, column 3)". */
export function formatPosition(position: RecordPosition): string {
  const where =
    position.column === undefined ? `line ${position.line}` : `line ${position.line}, column ${position.column}`;
  return position.index === undefined ? where : `element [${position.index}] (${where})`;
}

/**
 * The offset of the first syntax error in `text`, or -1 when it is valid JSON. Used when
 * V8's message carries no position ("Unexpected token '}', … is not valid JSON").
 */
export function locateJsonError(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new JsonErrorAt(i);
  };
  const skipWhitespace = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
        return;
      }
      i += 1;
    }
  };
  const numberPattern = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const readString = (): void => {
    i += 1; // opening quote
    for (;;) {
      if (i >= text.length) {
        fail();
      }
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i += 1;
        return;
      }
      if (c < 0x20) {
        fail();
      }
      if (c === 0x5c) {
        const next = text[i + 1];
        if (next === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
            i += 1;
            fail();
          }
          i += 6;
          continue;
        }
        if (next === undefined || !'"\\/bfnrt'.includes(next)) {
          i += 1;
          fail();
        }
        i += 2;
        continue;
      }
      i += 1;
    }
  };
  const readValue = (): void => {
    skipWhitespace();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i += 1;
      skipWhitespace();
      if (text[i] === close) {
        i += 1;
        return;
      }
      for (;;) {
        if (c === '{') {
          skipWhitespace();
          if (text[i] !== '"') {
            fail();
          }
          readString();
          skipWhitespace();
          if (text[i] !== ':') {
            fail();
          }
          i += 1;
        }
        readValue();
        skipWhitespace();
        if (text[i] === ',') {
          i += 1;
          continue;
        }
        if (text[i] === close) {
          i += 1;
          return;
        }
        fail();
      }
    }
    if (c === '"') {
      readString();
      return;
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    numberPattern.lastIndex = i;
    if (numberPattern.test(text)) {
      i = numberPattern.lastIndex;
      return;
    }
    fail();
  };
  try {
    readValue();
    skipWhitespace();
    if (i < text.length) {
      fail();
    }
    return -1;
  } catch (error) {
    if (error instanceof JsonErrorAt) {
      return error.offset;
    }
    // Nesting deep enough to exhaust the stack: report the start.
    return 0;
  }
}

class JsonErrorAt extends Error {
  constructor(readonly offset: number) {
    super(`JSON error at ${offset}`);
  }
}

/**
 * Parses `text`; on a syntax error returns the offset of the error and V8's message
 * without the echo of the input and without "at position N" (the caller gives the
 * position as line and column).
 */
export function parseJson(text: string): { ok: true; value: unknown } | { ok: false; offset: number; message: string } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    const raw = error instanceof Error ? error.message : String(error);
    const at = /at position (\d+)/.exec(raw);
    let offset = at?.[1] === undefined ? locateJsonError(text) : Number(at[1]);
    if (offset < 0) {
      offset = 0;
    }
    // "Unexpected token '}'" names the token V8 stopped at, which may follow the start of
    // the bad value found by locateJsonError (`tru}`): point at the token named.
    const token = /^Unexpected token '(.)'/u.exec(raw)?.[1];
    if (at === null && token !== undefined) {
      const found = text.indexOf(token, offset);
      if (found !== -1) {
        offset = found;
      }
    }
    if (/^Unexpected end of JSON input/.test(raw)) {
      offset = text.length;
    }
    const message =
      raw
        .replace(/, ".*" is not valid JSON$/s, '')
        .replace(/\s*in JSON at position \d+.*$/s, '')
        .replace(/\s*\(line \d+ column \d+\)$/, '')
        .trim() || 'Invalid JSON';
    return { ok: false, offset, message };
  }
}

/** The line and column of `offset` in `text`, which starts at `line`, `column` of its file. */
export function positionWithin(text: string, offset: number, line: number, column: number): RecordPosition {
  let lastNewline = -1;
  let lines = 0;
  const end = Math.min(offset, text.length);
  for (let i = text.indexOf('\n'); i !== -1 && i < end; i = text.indexOf('\n', i + 1)) {
    lines += 1;
    lastNewline = i;
  }
  return lines === 0 ? { line, column: column + offset } : { line: line + lines, column: offset - lastNewline };
}

/** Parses one line of a JSON-lines file (1-based `line`); blank lines give `undefined`. */
export function parseJsonLine(
  text: string,
  line: number,
): { ok: true; value: unknown } | { ok: false; problem: JsonSyntaxProblem } | undefined {
  const body = line === 1 && text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (body.trim() === '') {
    return undefined;
  }
  const parsed = parseJson(body);
  if (parsed.ok) {
    return parsed;
  }
  // A BOM that was cut off still occupies a column in an editor.
  const column = parsed.offset + 1 + (text.length - body.length);
  return { ok: false, problem: { position: { line, column }, message: parsed.message } };
}

type SplitterState = 'start' | 'first' | 'next' | 'value' | 'after' | 'done' | 'failed';

const STRING_STOP = /["\\]/g;

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Characters that end a scalar element (number, true, false, null). */
function endsScalar(c: number): boolean {
  return isWhitespace(c) || c === 0x2c || c === 0x5d || c === 0x5b || c === 0x7b || c === 0x7d || c === 0x22;
}

/**
 * Cuts a JSON array arriving in chunks into its elements. `push` returns the elements
 * completed by a chunk; `end` checks that the array was closed. After a syntax error
 * (`problem` is set) it accepts nothing more.
 *
 * Only brackets and strings are tracked to find where an element ends (mismatched
 * brackets are caught at once); each element is then checked by `JSON.parse`.
 */
export class JsonArraySplitter {
  private state: SplitterState = 'start';
  /** Absolute offset of the current chunk's first character. */
  private base = 0;
  private line = 1;
  /** Absolute offset of the first character of the current line. */
  private lineStart = 0;
  private index = 0;
  // The element being read.
  private parts: string[] = [];
  private partsLength = 0;
  private elementLine = 0;
  private elementColumn = 0;
  /** Closing brackets expected, innermost last. */
  private stack: number[] = [];
  private inString = false;
  private escaped = false;
  private scalar = false;
  private problemFound: JsonSyntaxProblem | undefined;

  /** The syntax error that stopped the splitter, if any. */
  get problem(): JsonSyntaxProblem | undefined {
    return this.problemFound;
  }

  push(chunk: string): ArrayElement[] {
    const out: ArrayElement[] = [];
    if (this.state === 'failed') {
      return out;
    }
    let elementStart = this.state === 'value' ? 0 : -1;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.state === 'value') {
        // The character at i is the element's last: the quote closing a string element or
        // the bracket closing the outermost one.
        let elementEnds = false;
        if (this.inString) {
          if (this.escaped) {
            this.escaped = false;
            i += 1;
            continue;
          }
          // Jump to the next quote or backslash (raw newlines cannot occur in valid strings).
          STRING_STOP.lastIndex = i;
          const stop = STRING_STOP.exec(chunk);
          if (stop === null) {
            i = n;
            break;
          }
          i = stop.index;
          if (chunk.charCodeAt(i) === 0x5c) {
            this.escaped = true;
          } else {
            this.inString = false;
            elementEnds = this.stack.length === 0;
          }
        } else {
          const c = chunk.charCodeAt(i);
          if (this.scalar) {
            if (endsScalar(c)) {
              if (!this.finishElement(chunk, elementStart, i, out)) {
                return out;
              }
              elementStart = -1;
              continue; // the delimiter is read in state 'after'
            }
            i += 1;
            continue;
          }
          if (c === 0x0a) {
            this.newline(i);
          } else if (c === 0x22) {
            this.inString = true;
          } else if (c === 0x7b || c === 0x5b) {
            this.stack.push(c === 0x7b ? 0x7d : 0x5d);
          } else if (c === 0x7d || c === 0x5d) {
            if (this.stack.pop() !== c) {
              this.fail(i, `Unexpected '${String.fromCharCode(c)}': it does not close the bracket opened last`);
              return out;
            }
            elementEnds = this.stack.length === 0;
          }
        }
        if (elementEnds) {
          if (!this.finishElement(chunk, elementStart, i + 1, out)) {
            return out;
          }
          elementStart = -1;
        }
        i += 1;
        continue;
      }

      const c = chunk.charCodeAt(i);
      if (c === 0x0a) {
        this.newline(i);
      }
      if (isWhitespace(c) || (c === 0xfeff && this.state === 'start' && this.base + i === 0)) {
        i += 1;
        continue;
      }
      switch (this.state) {
        case 'start':
          if (c !== 0x5b) {
            this.fail(i, `Expected '[' at the start of a JSON array file`);
            return out;
          }
          this.state = 'first';
          break;
        case 'first':
        case 'next':
          if (c === 0x5d && this.state === 'first') {
            this.state = 'done';
            break;
          }
          if (c === 0x2c || c === 0x5d || c === 0x7d) {
            this.fail(
              i,
              this.state === 'next' && c === 0x5d
                ? "Unexpected ']' after ',': remove the trailing comma"
                : `Unexpected '${String.fromCharCode(c)}': expected an array element`,
            );
            return out;
          }
          this.startElement(i, c);
          elementStart = i;
          continue; // the first character is read in state 'value'
        case 'after':
          if (c === 0x2c) {
            this.state = 'next';
          } else if (c === 0x5d) {
            this.state = 'done';
          } else {
            this.fail(i, `Expected ',' or ']' after array element`);
            return out;
          }
          break;
        case 'done':
          this.fail(i, 'Unexpected data after the end of the array');
          return out;
      }
      i += 1;
    }
    if (this.state === 'value' && elementStart >= 0) {
      this.parts.push(elementStart === 0 ? chunk : chunk.slice(elementStart));
      this.partsLength += n - elementStart;
      if (this.partsLength > MAX_ELEMENT_CHARS) {
        this.problemFound = {
          position: { line: this.elementLine, column: this.elementColumn, index: this.index },
          message:
            `Element is larger than ${MAX_ELEMENT_CHARS / 1024 / 1024} MiB: is a bracket or quote missing? ` +
            '(a large file is better written as JSON-lines)',
        };
        this.state = 'failed';
      }
    }
    this.base += n;
    return out;
  }

  /** Call after the last chunk; reports an array that was never closed. */
  end(): ArrayElement[] {
    const out: ArrayElement[] = [];
    if (this.state === 'value' && this.scalar) {
      // A scalar right at the end of the file ends there.
      const text = this.parts.join('');
      this.parts = [];
      this.partsLength = 0;
      this.finishText(text, out);
    }
    if (this.state !== 'done' && this.state !== 'failed') {
      this.problemFound = {
        position: { line: this.line, column: this.base - this.lineStart + 1 },
        message:
          this.state === 'start'
            ? 'The file is empty: expected a JSON array'
            : "Unexpected end of file: the array is not closed with ']'",
      };
      this.state = 'failed';
    }
    return out;
  }

  private newline(i: number): void {
    this.line += 1;
    this.lineStart = this.base + i + 1;
  }

  private startElement(i: number, first: number): void {
    this.state = 'value';
    this.parts = [];
    this.partsLength = 0;
    this.elementLine = this.line;
    this.elementColumn = this.base + i - this.lineStart + 1;
    this.stack = [];
    this.inString = false;
    this.escaped = false;
    this.scalar = first !== 0x7b && first !== 0x5b && first !== 0x22;
  }

  /** Parses the element ending at `end`; false when it is malformed (the splitter stops). */
  private finishElement(chunk: string, start: number, end: number, out: ArrayElement[]): boolean {
    this.parts.push(chunk.slice(start, end));
    const text = this.parts.join('');
    this.parts = [];
    this.partsLength = 0;
    return this.finishText(text, out);
  }

  private finishText(text: string, out: ArrayElement[]): boolean {
    const parsed = parseJson(text);
    const index = this.index;
    this.index += 1;
    if (!parsed.ok) {
      const at = positionWithin(text, parsed.offset, this.elementLine, this.elementColumn);
      this.problemFound = { position: { ...at, index }, message: parsed.message };
      this.state = 'failed';
      return false;
    }
    out.push({ position: { line: this.elementLine, column: this.elementColumn, index }, value: parsed.value });
    this.state = 'after';
    return true;
  }

  private fail(i: number, message: string): void {
    const position = { line: this.line, column: this.base + i - this.lineStart + 1 };
    this.problemFound = { position: this.state === 'value' ? { ...position, index: this.index } : position, message };
    this.state = 'failed';
  }
}
