/**
 * `exportedProfileByNamespaceCounter` counted from the bytes of an export's NDJSON lines (the
 * NDJSON files, or the records file of a CSV or Parquet export) as they go to disk: rows per
 * distinct set of namespaces, so a 500 k-row export keeps a handful of entries. The file sink
 * counts on its writer thread once a file is large (sink-thread.ts) and on the task's thread
 * otherwise, so the code is kept as source text run in both: the thread is plain JavaScript
 * started from a string, with no TypeScript loader to import this module.
 *
 * A line is read only up to its identities (`{"audienceId":…,"identities":[…],"status":"…`,
 * the key order every export line has): a namespace follows the text `{"namespace":"`, which
 * cannot occur inside a JSON string (its quotes are escaped), and the identities end at the first
 * `],"status":"`, before the attributes, whose keys may be anything. Bytes, not decoded text:
 * the markers are ASCII, which no byte of a multi-byte UTF-8 character equals. A row's set is a
 * path in a small tree keyed by the namespaces' names (the same few strings, each decoded once),
 * so a line costs no allocation. A line cut by the end of a piece waits for the next piece.
 */
export const NAMESPACE_TALLY_SOURCE = `function createNamespaceTally() {
  const KEY = Array.from('"namespace":"', (c) => c.charCodeAt(0));
  const END = Buffer.from('],"status":"', 'latin1');
  const root = { rows: 0, next: new Map() };
  const names = [];
  let carry = null;
  const follows = (buf, at, pattern) => {
    for (let j = 0; j < pattern.length; j++) if (buf[at + j] !== pattern[j]) return false;
    return true;
  };
  const nameAt = (buf, start, end) => {
    for (const [bytes, name] of names) {
      if (bytes.length !== end - start) continue;
      let j = 0;
      while (j < bytes.length && buf[start + j] === bytes[j]) j++;
      if (j === bytes.length) return name;
    }
    const name = buf.toString('latin1', start, end);
    if (names.length < 64) names.push([Buffer.from(buf.subarray(start, end)), name]);
    return name;
  };
  // The line starting at buf[from]: counted, and where the next one starts returned; -1 if it is unfinished.
  const line = (buf, from) => {
    const end = buf.indexOf(END, from);
    const nl = end === -1 ? buf.indexOf(10, from) : buf.indexOf(10, end);
    if (nl === -1) return -1;
    let node = root;
    for (let i = from; i < end && i < nl; i++) {
      if (buf[i] !== 123 || !follows(buf, i + 1, KEY)) continue;
      const start = i + 1 + KEY.length;
      let q = start;
      for (;;) {
        while (buf[q] !== 34) q++;
        let backslashes = 0;
        while (buf[q - 1 - backslashes] === 92) backslashes++;
        if (backslashes % 2 === 0) break;
        q++;
      }
      const name = nameAt(buf, start, q);
      let child = node.next.get(name);
      if (child === undefined) {
        child = { rows: 0, next: new Map() };
        node.next.set(name, child);
      }
      node = child;
      i = q;
    }
    node.rows++;
    return nl + 1;
  };
  return {
    push(bytes) {
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      let at = 0;
      if (carry) {
        const nl = buf.indexOf(10);
        if (nl === -1) {
          carry = Buffer.concat([carry, buf]);
          return;
        }
        line(Buffer.concat([carry, buf.subarray(0, nl + 1)]), 0);
        carry = null;
        at = nl + 1;
      }
      while (at < buf.length) {
        const next = line(buf, at);
        if (next === -1) {
          carry = Buffer.from(buf.subarray(at));
          return;
        }
        at = next;
      }
    },
    sets() {
      const out = [];
      const walk = (node, set) => {
        if (node.rows > 0) out.push([set, node.rows]);
        for (const [name, child] of node.next) walk(child, set === '' ? name : set + '\\n' + name);
      };
      walk(root, '');
      return out;
    },
  };
}`;

/** Rows per set of namespaces (the JSON-escaped names as latin1 text, joined by a newline). */
export type NamespaceSets = [set: string, rows: number][];

export interface NamespaceTally {
  /** Bytes of whole or partial lines, in file order. */
  push(bytes: Uint8Array): void;
  sets(): NamespaceSets;
}

export const createNamespaceTally = new Function(`return ${NAMESPACE_TALLY_SOURCE}`)() as () => NamespaceTally;

/** Rows per namespace, adding up the sets of one or more files (a row counts once per namespace). */
export function addNamespaceCounts(into: Record<string, number>, sets: NamespaceSets): void {
  for (const [set, rows] of sets) {
    if (set === '') continue;
    for (const raw of new Set(set.split('\n'))) {
      const ns = JSON.parse(`"${Buffer.from(raw, 'latin1').toString('utf8')}"`) as string;
      into[ns] = (into[ns] ?? 0) + rows;
    }
  }
}
