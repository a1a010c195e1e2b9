/**
 * The datetime parser reads `toISOString`'s own form without its regular expression: the two
 * readings must agree on every text of that form, instants and refusals alike. The oracle is the
 * same instant written `+00:00` instead of `Z`, which only the general reading takes.
 */
import { describe, expect, it } from 'vitest';
import { prng } from '../../src/domain/demo-data.js';
import { parseDatetime } from '../../src/domain/document-validation.js';

const pad = (n: number, width: number) => String(n).padStart(width, '0');

function canonical(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number): string {
  return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}.${pad(ms, 3)}Z`;
}

describe('parseDatetime on the canonical form', () => {
  it('reads what toISOString writes back to the same instant', () => {
    const random = prng(1);
    for (let i = 0; i < 2_000; i++) {
      // Years 0100 to 9999 (toISOString writes years outside 0000–9999 with a sign and six digits).
      const ms = Math.floor(-59_011_459_200_000 + random() * (253_402_300_799_999 + 59_011_459_200_000));
      const text = new Date(ms).toISOString();
      expect(parseDatetime(text)).toEqual({ ok: true, ms });
    }
  });

  it('agrees with the general reading on valid and invalid fields alike', () => {
    const random = prng(2);
    const pick = (values: number[]) => values[Math.floor(random() * values.length)]!;
    for (let i = 0; i < 5_000; i++) {
      const text = canonical(
        pick([0, 1, 99, 100, 1900, 1970, 2000, 2024, 2025, 2100, 9999]),
        pick([0, 1, 2, 4, 6, 9, 11, 12, 13]),
        pick([0, 1, 15, 28, 29, 30, 31, 32]),
        pick([0, 9, 23, 24]),
        pick([0, 30, 59, 60]),
        pick([0, 30, 59, 60]),
        pick([0, 7, 999]),
      );
      expect(parseDatetime(text), text).toEqual(parseDatetime(text.replace(/Z$/, '+00:00')));
    }
  });

  it('leaves texts of the same length but another shape to the general reading', () => {
    for (const text of [
      '2026-11-28T09:30:00.000+', // no zone letter
      '2026-11-28 09:30:00.000Z', // a space for T, which the general reading takes
      '2026-11-28T09:30:0a.000Z',
      '2026/11/28T09:30:00.000Z',
      '2026-11-28T09:30:00,000Z',
      '2026-02-29T00:00:00.000Z', // not a leap year
      '2000-02-29T00:00:00.000Z', // a leap year (divisible by 400)
      '1900-02-29T00:00:00.000Z', // not one (divisible by 100)
      '0050-06-01T00:00:00.000Z', // a year Date.UTC would read as 1950
    ]) {
      const general = text.endsWith('Z') ? parseDatetime(text.replace(/Z$/, '+00:00')) : undefined;
      const got = parseDatetime(text);
      if (general) expect(got, text).toEqual(general);
      else expect(got.ok, text).toBe(false);
    }
    expect(parseDatetime('2000-02-29T00:00:00.000Z')).toEqual({ ok: true, ms: Date.UTC(2000, 1, 29) });
    expect(parseDatetime('0050-06-01T00:00:00.000Z')).toEqual({ ok: true, ms: Date.parse('0050-06-01T00:00:00.000Z') });
  });
});
