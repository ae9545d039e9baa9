/** JSON records from text: JSON-lines lines and array elements, with error positions people can find. */
import { describe, expect, it } from 'vitest';
import {
  JsonArraySplitter,
  formatPosition,
  locateJsonError,
  parseJsonLine,
  type ArrayElement,
  type JsonSyntaxProblem,
} from '../../../src/domain/metrics/json-records.js';

/** Feeds `text` in chunks of `size` characters; returns the elements and the problem. */
function split(text: string, size: number): { elements: ArrayElement[]; problem: JsonSyntaxProblem | undefined } {
  const splitter = new JsonArraySplitter();
  const elements: ArrayElement[] = [];
  for (let i = 0; i < text.length && splitter.problem === undefined; i += size) {
    elements.push(...splitter.push(text.slice(i, i + size)));
  }
  if (splitter.problem === undefined) {
    elements.push(...splitter.end());
  }
  return { elements, problem: splitter.problem };
}

const CHUNK_SIZES = [1, 2, 3, 7, 64, 100_000];

describe('JsonArraySplitter', () => {
  it('yields each element with its index and position, whatever the chunk boundaries', () => {
    const text = '\uFEFF[\n  {"a": 1, "s": "x]}\\"{y\\\\"},\n  {"b": [1, {"c": null}]},\n  3, true, "s"\n]\n';
    for (const size of CHUNK_SIZES) {
      const { elements, problem } = split(text, size);
      expect(problem, `chunk ${size}`).toBeUndefined();
      expect(elements, `chunk ${size}`).toEqual([
        { position: { line: 2, column: 3, index: 0 }, value: { a: 1, s: 'x]}"{y\\' } },
        { position: { line: 3, column: 3, index: 1 }, value: { b: [1, { c: null }] } },
        { position: { line: 4, column: 3, index: 2 }, value: 3 },
        { position: { line: 4, column: 6, index: 3 }, value: true },
        { position: { line: 4, column: 12, index: 4 }, value: 's' },
      ]);
    }
  });

  it('an empty array has no elements', () => {
    expect(split(' [ ] ', 1)).toEqual({ elements: [], problem: undefined });
  });

  it.each([
    [
      'a bad value inside an element',
      '[{"a": 1},\n {"b": tru}]',
      { line: 2, column: 11, index: 1 },
      "Unexpected token '}'",
    ],
    ['a missing comma between elements', '[{"a": 1}\n {"b": 2}]', { line: 2, column: 2 }, "Expected ',' or ']'"],
    ['a missing comma inside an element', '[\n{"a": 1\n "b": 2}]', { line: 3, column: 2, index: 0 }, "Expected ','"],
    ['a mismatched bracket', '[{"a": [1, 2}]', { line: 1, column: 13, index: 0 }, "Unexpected '}'"],
    ['a trailing comma', '[1, 2,\n]', { line: 2, column: 1 }, 'trailing comma'],
    ['an unclosed array', '[1,\n2', { line: 2, column: 2 }, 'not closed'],
    ['data after the array', '[1] [2]', { line: 1, column: 5 }, 'after the end of the array'],
  ])('%s is reported with its line and column', (_name, text, position, message) => {
    for (const size of CHUNK_SIZES) {
      const { problem } = split(text, size);
      expect(problem?.position, `chunk ${size}`).toEqual(position);
      expect(problem?.message, `chunk ${size}`).toContain(message);
    }
  });

  it('stops at the first error and yields nothing after it', () => {
    const { elements, problem } = split('[1, {"x": }, 3]', 4);
    expect(elements.map((e) => e.value)).toEqual([1]);
    expect(problem?.position).toMatchObject({ index: 1 });
  });
});

describe('parseJsonLine', () => {
  it('parses a line, skips blank ones and strips a BOM on line 1', () => {
    expect(parseJsonLine('{"a": 1}', 3)).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJsonLine('   ', 4)).toBeUndefined();
    expect(parseJsonLine('\uFEFF{"a": 1}', 1)).toEqual({ ok: true, value: { a: 1 } });
  });

  it('reports a malformed line with its column and the parser message, without echoing the line', () => {
    expect(parseJsonLine('{"a": 1,, "secret": "x"}', 7)).toEqual({
      ok: false,
      problem: { position: { line: 7, column: 9 }, message: 'Expected double-quoted property name' },
    });
    const bad = parseJsonLine('{"a": nope}', 2);
    expect(bad).toEqual({ ok: false, problem: { position: { line: 2, column: 8 }, message: "Unexpected token 'o'" } });
    expect(parseJsonLine('{"a": 1', 5)).toMatchObject({ problem: { position: { line: 5, column: 8 } } });
  });
});

describe('locateJsonError', () => {
  it('finds the offset of the first syntax error, or -1', () => {
    expect(locateJsonError('{"a": [1, 2, {"b": "c"}], "d": -1.5e3}')).toBe(-1);
    expect(locateJsonError('{"a": tru}')).toBe(6);
    expect(locateJsonError('{"a": "x\\q"}')).toBe(9);
    expect(locateJsonError('[1 2]')).toBe(3);
    expect(locateJsonError('{"a": 1} x')).toBe(9);
  });
});

describe('formatPosition', () => {
  it('names lines, columns and array elements', () => {
    expect(formatPosition({ line: 12 })).toBe('line 12');
    expect(formatPosition({ line: 3, column: 7 })).toBe('line 3, column 7');
    expect(formatPosition({ line: 9, column: 3, index: 4 })).toBe('element [4] (line 9, column 3)');
  });
});
