/**
 * How big a regular expression may be. RE2 runs in time linear in the input, but the factor
 * is the size of the compiled program, and a counted repetition copies its operand once per
 * count: `.{1000}` is a thousand-instruction program run for every character of every value.
 * The checker refuses such patterns up front, while the user is still typing them.
 */
import type { RE2JS } from 're2js';

/** The largest bound of one counted repetition (`x{n}`, `x{n,}`, `x{n,m}`). */
const MAX_REGEX_REPEAT = 100;
/** The largest compiled program (RE2's approximate cost; nested repetitions multiply into it). */
const MAX_REGEX_PROGRAM_SIZE = 500;

/** The largest bound among the counted repetitions of an RE2 pattern (0 when there are none). */
function largestRepeat(pattern: string): number {
  let largest = 0;
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '\\') {
      if (pattern[i + 1] === 'Q') {
        // \Q…\E quotes everything up to \E (or the end) literally.
        const end = pattern.indexOf('\\E', i + 2);
        i = end < 0 ? pattern.length : end + 2;
      } else {
        i += 2;
      }
    } else if (c === '[') {
      i = classEnd(pattern, i);
    } else if (c === '{') {
      const m = /^\{(\d+)(?:,(\d*))?\}/.exec(pattern.slice(i));
      if (m) {
        largest = Math.max(largest, Number(m[1]), m[2] ? Number(m[2]) : 0);
        i += m[0].length;
      } else {
        i++;
      }
    } else {
      i++;
    }
  }
  return largest;
}

/** The index just past the character class opening at `start` (a `]` first in the class is literal). */
function classEnd(pattern: string, start: number): number {
  let i = start + 1;
  if (pattern[i] === '^') i++;
  if (pattern[i] === ']') i++;
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '\\') i += 2;
    else if (c === '[' && pattern[i + 1] === ':') {
      const end = pattern.indexOf(':]', i + 2);
      i = end < 0 ? i + 1 : end + 2;
    } else if (c === ']') return i + 1;
    else i++;
  }
  return i;
}

/** Why a compiled pattern is too costly to run, or undefined when it is within the limits. */
export function regexTooComplex(pattern: string, compiled: RE2JS): string | undefined {
  const repeat = largestRepeat(pattern);
  if (repeat > MAX_REGEX_REPEAT) {
    return `regular expression "${pattern}" repeats up to ${repeat} times; a counted repetition may be at most {${MAX_REGEX_REPEAT}}`;
  }
  const size = compiled.programSize();
  if (size > MAX_REGEX_PROGRAM_SIZE) {
    return `regular expression "${pattern}" is too complex: it compiles to ${size} instructions, over the limit of ${MAX_REGEX_PROGRAM_SIZE} (repetitions multiply)`;
  }
  return undefined;
}
