import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileSink } from '../../src/domain/exports/file-sink.js';
import { addNamespaceCounts } from '../../src/domain/exports/namespace-tally.js';

const dir = mkdtempSync(join(tmpdir(), 'segql-file-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Namespaces and ids that a careless scanner of the bytes would get wrong: quotes, backslashes,
// commas, newlines (escaped in JSON), non-ASCII, and the scanner's own markers inside ids and attributes.
const NAMESPACES = ['email', 'crmId', 'na"me', 'back\\slash', 'com,ma', 'line\nbreak', 'ünï 🎉', '中文'];
const TRICKY_IDS = ['plain', '{"namespace":"fake"}', '],"status":"X', 'ends with backslash \\', '"quoted"'];

function lineOf(i: number, size: number): string {
  const identities = NAMESPACES.filter((_, k) => (i >> k) % 3 !== 0 || k === i % NAMESPACES.length).map((ns, k) => ({
    namespace: ns,
    id: `${TRICKY_IDS[(i + k) % TRICKY_IDS.length]}-${i}`,
  }));
  const attributes = {
    '{"namespace":"inAttributes"': `],"status":"${'x'.repeat(i % size)}`,
    name: ['Ann', 'Émile', '🎉'][i % 3],
    identities: [{ namespace: 'notAnIdentity', id: 'x' }],
  };
  return `${JSON.stringify({ audienceId: 'QXVkaWVuY2U6MQ==', identities, status: 'REALIZED', qualifiedAt: null, exitedAt: null, attributes })}\n`;
}

/** Rows per namespace as a reader of the file counts them: JSON.parse per line. */
function truth(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const row = JSON.parse(line) as { identities: { namespace: string }[] };
    for (const ns of new Set(row.identities.map((i) => i.namespace))) out[ns] = (out[ns] ?? 0) + 1;
  }
  return out;
}

function written(path: string, sink: FileSink) {
  const result = sink.finish();
  const bytes = readFileSync(path);
  const namespaces: Record<string, number> = {};
  addNamespaceCounts(namespaces, result.namespaceSets);
  return { result, bytes, namespaces };
}

describe('export file sink', () => {
  it('writes, hashes and counts a small file on the calling thread', () => {
    const path = join(dir, 'small.ndjson');
    const sink = new FileSink(path, { countNamespaces: true });
    let text = '';
    for (let i = 0; i < 200; i++) {
      const line = lineOf(i, 50);
      text += line;
      if (i % 2 === 0) sink.write(line);
      else sink.write(Buffer.from(line));
    }
    expect(sink.position).toBe(Buffer.byteLength(text));
    const { result, bytes, namespaces } = written(path, sink);
    expect(bytes.toString('utf8')).toBe(text);
    expect(result.bytes).toBe(bytes.length);
    expect(result.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(namespaces).toEqual(truth(text));
    expect(Object.keys(namespaces).sort()).toEqual([...NAMESPACES].sort());
  });

  it('hands a large file to its thread: the same bytes, hash and counts, pieces of any size across the ring', () => {
    const path = join(dir, 'large.ndjson');
    const sink = new FileSink(path, { countNamespaces: true });
    let text = '';
    let pending = '';
    let i = 0;
    // About 40 MiB: the 16 MiB of slots wrap twice; writes of every kind and size, cut mid-line and
    // mid-character.
    while (text.length < 40 << 20) {
      const line = lineOf(i, 4000);
      text += line;
      pending += line;
      const kind = i % 7;
      if (kind === 0 && pending.length > 3000) {
        // Bytes cut inside a line (maybe inside a UTF-8 character): the next write carries on.
        const bytes = Buffer.from(pending);
        const cut = Math.floor(bytes.length / 2);
        sink.write(bytes.subarray(0, cut));
        sink.write(bytes.subarray(cut));
        pending = '';
      } else if (kind === 3 && pending.length > 200_000) {
        sink.write(Buffer.from(pending));
        pending = '';
      } else if (kind === 5) {
        sink.write(pending);
        pending = '';
      } else if (kind === 6 && pending === line) {
        sink.writeLine(line.slice(0, -1));
        pending = '';
      }
      i++;
    }
    // One write larger than the buffer and than the ring, and one line larger than the buffer.
    const big = Array.from({ length: 9000 }, (_, k) => lineOf(i + k, 4000)).join('');
    const long = lineOf(3_000_007, 4_000_000);
    text += big + long;
    sink.write(pending);
    sink.write(Buffer.from(big));
    sink.writeLine(long.slice(0, -1));
    expect(sink.position).toBe(Buffer.byteLength(text));
    const { result, bytes, namespaces } = written(path, sink);
    expect(bytes.length).toBe(Buffer.byteLength(text));
    expect(bytes.equals(Buffer.from(text))).toBe(true);
    expect(result.bytes).toBe(bytes.length);
    expect(result.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(namespaces).toEqual(truth(text));
  }, 120_000);

  it('counts nothing unless asked, and writes a large CSV-like file whole', () => {
    const path = join(dir, 'plain.csv');
    const sink = new FileSink(path);
    const row = 'a,"b ""q""",ü,🎉\r\n';
    const rows = 200_000;
    for (let i = 0; i < rows; i++) sink.write(row);
    const { result, bytes } = written(path, sink);
    expect(result.namespaceSets).toEqual([]);
    expect(bytes.length).toBe(Buffer.byteLength(row) * rows);
    expect(bytes.equals(Buffer.from(row.repeat(rows)))).toBe(true);
    expect(result.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
  });

  it('abandons a file its thread is writing, which can then be removed', () => {
    const path = join(dir, 'abandoned.ndjson');
    const sink = new FileSink(path, { countNamespaces: true });
    for (let i = 0; i < 20; i++) sink.write(Buffer.alloc(1 << 20, 0x61));
    sink.abandon();
    rmSync(path);
    expect(existsSync(path)).toBe(false);
  });

  it.skipIf(!existsSync('/dev/full'))('fails with the disk error when its thread cannot write', () => {
    const sink = new FileSink('/dev/full');
    expect(() => {
      for (let i = 0; i < 64; i++) sink.write(Buffer.alloc(1 << 20, 0x61));
      sink.finish();
    }).toThrow(/ENOSPC|no space/i);
    sink.abandon();
  });
});
