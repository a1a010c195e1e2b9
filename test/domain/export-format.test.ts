import { describe, expect, it } from 'vitest';
import { csvField } from '../../src/domain/exports/row-writers.js';
import { parseRange } from '../../src/server/downloads.js';

describe('CSV fields (RFC 4180)', () => {
  it('quotes only what needs it and doubles quotes', () => {
    expect(csvField('plain ü 🎉')).toBe('plain ü 🎉');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('line\nbreak')).toBe('"line\nbreak"');
    expect(csvField('cr\rx')).toBe('"cr\rx"');
    expect(csvField('')).toBe('');
  });
});

describe('download byte ranges', () => {
  it('reads one range of a file of 100 bytes', () => {
    expect(parseRange(undefined, 100)).toBeNull();
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-500', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=50-1000', 100)).toEqual({ start: 50, end: 99 });
  });

  it('refuses what no byte of the file satisfies, and ignores what it does not understand', () => {
    expect(parseRange('bytes=100-', 100)).toBe('bad');
    expect(parseRange('bytes=20-10', 100)).toBe('bad');
    expect(parseRange('bytes=-0', 100)).toBe('bad');
    expect(parseRange('bytes=0-', 0)).toBe('bad');
    expect(parseRange('bytes=0-1,5-6', 100)).toBeNull();
    expect(parseRange('items=0-1', 100)).toBeNull();
  });
});
