/**
 * Value semantics shared by both engines (docs/pql-semantics.md "Truth and missing data",
 * "Arithmetic", "Arrays and maps"): comparisons that are false on missing or mixed types,
 * arithmetic that yields missing instead of errors, and SQLite's compensated `sum()`.
 *
 * Missing is `undefined` (a `null` in a document reads as missing too).
 */
import type { ArithmeticOp, CompareOp } from '../language/ast.js';
import { compareCodePoints } from './strings.js';

/** Absent or null. */
export function isMissing(value: unknown): value is null | undefined {
  return value === undefined || value === null;
}

/** `a = b` at run time: true only for two strings, two numbers or two booleans that are equal. */
export function valuesEqual(a: unknown, b: unknown): boolean {
  const t = typeof a;
  return (t === 'string' || t === 'number' || t === 'boolean') && t === typeof b && a === b;
}

/**
 * Order of two values of the same orderable type (numbers, datetimes as ms, strings by code
 * point): negative, 0 or positive; undefined when they are missing, of different types, or
 * not ordered (booleans, arrays, objects).
 */
export function compareValues(a: unknown, b: unknown): number | undefined {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isNaN(a) || Number.isNaN(b)) return undefined;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string') return compareCodePoints(a, b);
  return undefined;
}

/** `a op b` with the missing-data rules: false on missing or mixed types; booleans only `=`/`!=`. */
export function compareOp(op: CompareOp, a: unknown, b: unknown): boolean {
  if (op === '=') return valuesEqual(a, b);
  if (op === '!=') {
    const t = typeof a;
    return (t === 'string' || t === 'number' || t === 'boolean') && t === typeof b && a !== b;
  }
  const c = compareValues(a, b);
  if (c === undefined) return false;
  switch (op) {
    case '<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '>':
      return c > 0;
    case '>=':
      return c >= 0;
  }
}

/** `v in list`: v present and equal to some element (missing elements ignored). */
export function valueIn(value: unknown, list: unknown): boolean {
  if (isMissing(value) || !Array.isArray(list)) return false;
  for (const item of list) if (valuesEqual(value, item)) return true;
  return false;
}

/** `v notIn list`: v present, list present, and no element equals v. */
export function valueNotIn(value: unknown, list: unknown): boolean {
  if (isMissing(value) || !Array.isArray(list)) return false;
  for (const item of list) if (valuesEqual(value, item)) return false;
  return true;
}

/**
 * `a op b`: numbers (and `+` on two strings, which concatenates). Missing or mixed operands,
 * division or `%` by zero and a non-finite result are all missing (undefined). `/` is real
 * division; `%` keeps the sign of the dividend (JS `%`, SQLite `mod()`).
 */
export function arithmetic(op: ArithmeticOp, a: unknown, b: unknown): number | string | undefined {
  if (typeof a === 'number' && typeof b === 'number') {
    let r: number;
    switch (op) {
      case '+':
        r = a + b;
        break;
      case '-':
        r = a - b;
        break;
      case '*':
        r = a * b;
        break;
      case '/':
        if (b === 0) return undefined;
        r = a / b;
        break;
      case '%':
        if (b === 0) return undefined;
        r = a % b;
        break;
    }
    return Number.isFinite(r) ? r : undefined;
  }
  if (op === '+' && typeof a === 'string' && typeof b === 'string') return a + b;
  return undefined;
}

/** Unary minus: numbers only, missing otherwise. */
export function negate(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? -value : undefined;
}

// ---------------------------------------------------------------------------------------------
// SQLite sum()

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const KBN_SPLIT = 4503599627370496n; // 2^52: beyond it an i64 does not convert to a double exactly

/**
 * The INTEGER SQLite reads for this JS number, or undefined when it reads a REAL. Documents
 * reach SQLite as JSON text: `JSON.stringify` writes an integral number below 1e21 as plain
 * digits — the shortest decimal that round-trips, which above 2^53 is not always the double's
 * exact value (the double -4061110713104437760 is written -4061110713104438000) — and SQLite's
 * JSON reader keeps such a literal an INTEGER while it fits in 64 bits.
 */
function sqliteInteger(value: number): bigint | undefined {
  if (!Number.isInteger(value)) return undefined;
  if (Number.isSafeInteger(value)) return BigInt(value);
  if (Math.abs(value) >= 1e21) return undefined;
  const decimal = BigInt(String(value));
  return decimal >= I64_MIN && decimal <= I64_MAX ? decimal : undefined;
}

/**
 * SQLite's `sum()` / `total()` / `avg()` accumulator (func.c `sumStep`), step for step:
 * integers add exactly as 64-bit integers while the sum fits; from the first REAL (or integer
 * overflow) on, Kahan–Babuška–Neumaier summation in doubles, big integers split so each part
 * converts exactly. `add` skips anything that is not a finite number (the engines pass only
 * the present numeric values; SQL filters by `json_type` the same way).
 */
export class KbnAccumulator {
  /** Number of values added. */
  count = 0;
  private approx = false;
  private iSum = 0n;
  // Fast path: an exact sum of safe integers kept as a double while it stays safe.
  private small = 0;
  private smallExact = true;
  private rSum = 0;
  private rErr = 0;

  add(value: number): void {
    if (typeof value !== 'number' || !Number.isFinite(value)) return;
    this.count++;
    const integer = Number.isSafeInteger(value) ? undefined : sqliteInteger(value);
    const isInteger = integer !== undefined || Number.isSafeInteger(value);
    if (this.approx) {
      if (isInteger) this.stepInt64(integer ?? BigInt(value));
      else this.step(value);
      return;
    }
    if (!isInteger) {
      this.initFrom(this.smallExact ? BigInt(this.small) : this.iSum);
      this.approx = true;
      this.step(value);
      return;
    }
    if (this.smallExact) {
      const next = this.small + value;
      if (integer === undefined && Number.isSafeInteger(next)) {
        this.small = next;
        return;
      }
      this.iSum = BigInt(this.small);
      this.smallExact = false;
    }
    const v = integer ?? BigInt(value);
    const x = this.iSum + v;
    if (x >= I64_MIN && x <= I64_MAX) {
      this.iSum = x;
    } else {
      // sqlite3AddInt64 overflowed: continue in doubles from the integer sum so far.
      this.initFrom(this.iSum);
      this.approx = true;
      this.stepInt64(v);
    }
  }

  /** The sum (0 when nothing was added), as SQLite's `total()` and, for count > 0, `sum()`. */
  result(): number {
    if (!this.approx) return this.smallExact ? this.small : Number(this.iSum);
    return Number.isFinite(this.rErr) ? this.rSum + this.rErr : this.rSum;
  }

  /** `avg()`: the sum divided by the count; undefined when nothing was added. */
  average(): number | undefined {
    return this.count === 0 ? undefined : this.result() / this.count;
  }

  private step(r: number): void {
    const s = this.rSum;
    const t = s + r;
    if (Math.abs(s) > Math.abs(r)) this.rErr += s - t + r;
    else this.rErr += r - t + s;
    this.rSum = t;
  }

  private stepInt64(v: bigint): void {
    if (v <= -KBN_SPLIT || v >= KBN_SPLIT) {
      const small = v % 16384n;
      this.step(Number(v - small));
      this.step(Number(small));
    } else {
      this.step(Number(v));
    }
  }

  private initFrom(v: bigint): void {
    if (v <= -KBN_SPLIT || v >= KBN_SPLIT) {
      const small = v % 16384n;
      this.rSum = Number(v - small);
      this.rErr = Number(small);
    } else {
      this.rSum = Number(v);
      this.rErr = 0;
    }
  }
}

/** The KBN sum of `values` as SQLite computes it; 0 for none. Non-numbers are skipped. */
export function kbnSum(values: Iterable<unknown>): number {
  const acc = new KbnAccumulator();
  for (const v of values) if (typeof v === 'number') acc.add(v);
  return acc.result();
}
