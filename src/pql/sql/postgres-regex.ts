/**
 * RE2 patterns (the JS engine's regexes) as PostgreSQL advanced regular expressions with the
 * same matches. The two engines agree on a subset only, so this translates that subset and
 * names the first thing outside it; anything else is rejected for PostgreSQL rather than run
 * with another meaning.
 *
 * The differences handled: RE2's `.` does not match a newline (ARE's does) → `[^\n]`; `\d`,
 * `\w`, `\s` are ASCII in RE2 (locale classes in ARE) → explicit brackets; a leading `(?i)`
 * folds case in both, but RE2 also folds `k` with the Kelvin sign and `s` with the long s, so
 * under `(?i)` only ASCII letters other than k and s may appear. Rejected: other flags and
 * group forms, lazy quantifiers, Unicode classes, word boundaries, repeats over 255 (ARE's
 * limit), and letters in a bracket under `(?i)`.
 *
 * `regexGroup` needs more than the same matches: the same substring. RE2 takes the leftmost
 * match that its preference order finds first; ARE takes the leftmost-longest. With at most
 * one quantifier and alternatives of one character each, there is a single choice (how many
 * repetitions) and greedy-first is longest, so group texts agree; other patterns are rejected
 * for `regexGroup`.
 */

const ASCII_PUNCTUATION = /^[!-/:-@[-`{-~]$/;
const CLASSES: Readonly<Record<string, string>> = {
  d: '0-9',
  w: '0-9A-Za-z_',
  s: '\\t\\n\\f\\r ',
};
const CHAR_ESCAPES: Readonly<Record<string, string>> = { n: '\\n', t: '\\t', r: '\\r', f: '\\f' };

export interface TranslatedRegex {
  /** The ARE pattern (with `(?i)` in front when the RE2 pattern had it). */
  pattern: string;
  /** Capturing groups. */
  groups: number;
  /** Whether group texts are provably the same as RE2's (see above). */
  groupSafe: boolean;
}

/** The ARE form of `source`, or the reason it has none. */
export function translateRegex(source: string): TranslatedRegex | { unsupported: string } {
  const chars = Array.from(source);
  let i = 0;
  let insensitive = false;
  if (source.startsWith('(?i)')) {
    insensitive = true;
    i = 4;
  }
  let out = '';
  let groups = 0;
  let quantifiers = 0;
  let depth = 0;
  // Per group depth: atoms in the current alternation branch, and whether the group has a `|`.
  const branch: number[] = [0];
  const alternates: boolean[] = [false];
  let wideAlternation = false;
  let lastWasAtom = false;
  const fail = (what: string) => ({ unsupported: `the regex ${JSON.stringify(source)} uses ${what}` });
  const atom = (text: string, width = 1) => {
    out += text;
    lastWasAtom = true;
    branch[depth] = branch[depth]! + width;
  };
  const closeBranch = () => {
    if (alternates[depth] && branch[depth] !== 1) wideAlternation = true;
  };

  for (; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === '\\') {
      const next = chars[++i];
      if (next === undefined) return fail('a trailing backslash');
      const lower = next.toLowerCase();
      if (ASCII_PUNCTUATION.test(next)) atom(`\\${next}`);
      else if (CLASSES[lower] !== undefined) {
        if (insensitive && lower === 'w') return fail('\\w under (?i)');
        atom(`[${next === lower ? '' : '^'}${CLASSES[lower]}]`);
      } else if (CHAR_ESCAPES[next] !== undefined) atom(CHAR_ESCAPES[next]);
      else return fail(`the escape \\${next}`);
    } else if (c === '.') {
      atom('[^\\n]');
    } else if (c === '[') {
      const end = bracket(chars, i + 1, insensitive);
      if ('unsupported' in end) return fail(end.unsupported);
      atom(end.text);
      i = end.next - 1;
    } else if (c === '(') {
      if (chars[i + 1] === '?') {
        if (chars[i + 2] !== ':') return fail('a group flag or named group');
        out += '(?:';
        i += 2;
      } else {
        out += '(';
        groups++;
      }
      depth++;
      branch[depth] = 0;
      alternates[depth] = false;
      lastWasAtom = false;
    } else if (c === ')') {
      if (depth === 0) return fail('an unbalanced )');
      closeBranch();
      const single = branch[depth] === 1;
      depth--;
      atom(')', single ? 1 : 2);
    } else if (c === '|') {
      closeBranch();
      if (branch[depth] !== 1) wideAlternation = true;
      alternates[depth] = true;
      branch[depth] = 0;
      out += '|';
      lastWasAtom = false;
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      if (!lastWasAtom) return fail('a quantifier with nothing to repeat');
      let q = c;
      if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(chars.slice(i).join(''));
        if (!m) return fail('a { that is not a repeat count');
        const max = m[3] === undefined || m[3] === '' ? Number(m[1]) : Number(m[3]);
        if (Number(m[1]) > 255 || max > 255) return fail('a repeat count over 255');
        q = m[0];
        i += m[0].length - 1;
      }
      if (chars[i + 1] === '?' || chars[i + 1] === '+') return fail('a lazy or possessive quantifier');
      out += q;
      quantifiers++;
      lastWasAtom = false;
    } else if (c === '^' || c === '$') {
      out += c;
      lastWasAtom = false;
    } else if (c === ']' || c === '}') {
      return fail(`a bare ${c}`);
    } else {
      if (insensitive && (/[^\x00-\x7f]/.test(c) || /[kKsS]/.test(c))) return fail(`the letter ${c} under (?i)`);
      atom(c);
    }
  }
  if (depth !== 0) return fail('an unbalanced (');
  closeBranch();
  return {
    pattern: (insensitive ? '(?i)' : '') + out,
    groups,
    groupSafe: quantifiers <= 1 && !wideAlternation,
  };
}

/** A bracket expression from `start` (after `[`) to its `]`, in ARE form. */
function bracket(
  chars: readonly string[],
  start: number,
  insensitive: boolean,
): { text: string; next: number } | { unsupported: string } {
  let i = start;
  let out = '[';
  if (chars[i] === '^') {
    out += '^';
    i++;
  }
  let first = true;
  const item = (): string | { unsupported: string } => {
    const c = chars[i]!;
    if (c === '\\') {
      const next = chars[++i];
      if (next === undefined) return { unsupported: 'a trailing backslash' };
      if (ASCII_PUNCTUATION.test(next)) return `\\${next}`;
      if (CHAR_ESCAPES[next] !== undefined) return CHAR_ESCAPES[next];
      if (CLASSES[next] !== undefined && !(insensitive && next === 'w')) return CLASSES[next];
      return { unsupported: `the escape \\${next} in a bracket` };
    }
    if (c === '[') return { unsupported: 'a [ inside a bracket' };
    if (insensitive && /[A-Za-z]/.test(c)) return { unsupported: 'letters in a bracket under (?i)' };
    if (/[^\x00-\x7f]/.test(c)) return { unsupported: 'a non-ASCII character in a bracket' };
    return /[\]\\^-]/.test(c) ? `\\${c}` : c;
  };
  for (; i < chars.length; i++) {
    if (chars[i] === ']' && !first) return { text: `${out}]`, next: i + 1 };
    first = false;
    const a = item();
    if (typeof a !== 'string') return a;
    if (chars[i + 1] === '-' && chars[i + 2] !== undefined && chars[i + 2] !== ']') {
      i += 2;
      const b = item();
      if (typeof b !== 'string') return b;
      out += `${a}-${b}`;
    } else {
      out += a;
    }
  }
  return { unsupported: 'an unclosed [' };
}
