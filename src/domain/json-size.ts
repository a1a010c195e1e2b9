/**
 * The size guardrails of ingestion measure a record as JSON text, in UTF-8 bytes. Serialising
 * every record to measure it took a tenth of the main thread's CPU under `stream`
 * (bench/RESULTS.md, session 25), for records a fiftieth of their limit; a bound read off the
 * record's strings and structure settles nearly all of them, and only a record that may be near
 * its limit is serialised.
 */

/** The longest a number serialises to (`-0.0000012345678901234567`, `-1.7976931348623157e+308`). */
const NUMBER_CHARS = 25;

/** `JSON.stringify(value)`'s length in UTF-8 bytes (0 when it gives nothing). */
export function jsonByteLength(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '');
}

/** Whether `jsonByteLength(value) > limit`, serialising only a value that may be. */
export function jsonLongerThan(value: unknown, limit: number): boolean {
  return !jsonSurelyWithin(value, limit) && jsonByteLength(value) > limit;
}

/**
 * Whether `jsonByteLength(value) <= limit` can be told without serialising: a bound at six bytes
 * a character settles a small record; one it cannot is bounded again with its plain ASCII strings
 * counted as written (a kilobyte payload of names and URLs). False says only "maybe not".
 */
export function jsonSurelyWithin(value: unknown, limit: number): boolean {
  return jsonBytesBound(value, limit) <= limit || jsonBytesBound(value, limit, true) <= limit;
}

/** A string JSON writes as it is, between its quotes: printable ASCII but `"` and `\`. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * At most what a string serialises to: 6 bytes a UTF-16 unit (`\u001f`, a lone `\udc00`; any
 * other character takes at most 3) and its quotes; or, `exact`, the length of a plain ASCII one
 * as it is written, at the cost of a look at its characters.
 */
function stringBound(s: string, exact: boolean): number {
  return exact && PLAIN.test(s) ? s.length + 2 : 6 * s.length + 2;
}

/**
 * At least `jsonByteLength(value)`, without serialising it; `Infinity` once the count passes
 * `stop`, and for anything JSON.stringify may render by rules of its own (an object that is not
 * a plain object or array: `toJSON`, a class, a BigInt), which only serialising measures. An
 * array's `undefined` counts as `null`; an object's is counted though JSON.stringify leaves it out.
 * `exactStrings` counts plain ASCII strings (keys too) as written, after a look at each.
 */
export function jsonBytesBound(value: unknown, stop: number, exactStrings = false): number {
  let total = 0;
  // A stack rather than recursion: a hostile depth must not overflow the call stack.
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const v = pending.pop();
    switch (typeof v) {
      case 'string':
        total += stringBound(v, exactStrings);
        break;
      case 'number':
        total += NUMBER_CHARS;
        break;
      case 'boolean':
      case 'undefined':
        total += 5;
        break;
      case 'object': {
        if (v === null) {
          total += 4;
          break;
        }
        const proto = Object.getPrototypeOf(v);
        if (proto === Array.prototype) {
          const items = v as unknown[];
          // Brackets, and a comma after each item (one too many: a bound).
          total += 2 + items.length;
          for (let i = 0; i < items.length; i++) pending.push(items[i]);
        } else if (proto === Object.prototype || proto === null) {
          total += 2;
          const record = v as Record<string, unknown>;
          for (const key in record) {
            // The key, its colon and a comma.
            total += stringBound(key, exactStrings) + 2;
            pending.push(record[key]);
          }
        } else {
          return Number.POSITIVE_INFINITY;
        }
        break;
      }
      default:
        return Number.POSITIVE_INFINITY;
    }
    if (total > stop) return Number.POSITIVE_INFINITY;
  }
  return total;
}
