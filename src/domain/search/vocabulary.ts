/**
 * The words of a sandbox's search documents, for the query forms FTS5 cannot answer itself:
 * fuzzy terms (trigram candidates, then an edit-distance check) and wildcards inside or before
 * a word. Kept per connection and grown from the documents written since the last look
 * (document ids are never reused); words of deleted documents stay, which only costs an
 * expansion that matches nothing.
 *
 * On PostgreSQL ids are drawn before commit, so a document may commit after one with a higher id
 * was read: growing by id would miss it for good. There the words are read again, all of the
 * sandbox's, whenever its search revision (bumped by every change of its documents) has moved.
 */
import { cacheKey } from '../../db/connection-cache.js';
import { statements } from '../../db/statement.js';
import type { Store } from '../../db/store.js';
import { badInput } from '../errors.js';

// The text of each document written since the last look, every column (as the index has them).
const DOCUMENT_TEXT = `coalesce(name, '') || ' ' || coalesce(description, '') || ' ' || coalesce(gid, '') || ' ' ||
  coalesce(external_id, '') || ' ' || coalesce(labels, '') || ' ' || coalesce(folder, '') || ' ' ||
  namespace || ' ' || coalesce(expression, '') || ' ' || coalesce(path, '') || ' ' || coalesce(type, '')`;

const q = statements('search', {
  documentsSince: {
    sqlite: `SELECT id, ${DOCUMENT_TEXT} AS text FROM search_documents WHERE id > ? AND sandbox_id = ? ORDER BY id`,
    postgres: `SELECT id, ${DOCUMENT_TEXT} AS text FROM search_documents WHERE id > $1 AND sandbox_id = $2 ORDER BY id`,
  },
  revision: {
    sqlite: 'SELECT revision FROM search_revisions WHERE sandbox_id = ?',
    postgres: 'SELECT revision FROM search_revisions WHERE sandbox_id = $1',
  },
});

/** Words as FTS5's unicode61 tokenizer (remove_diacritics 2) cuts and folds them, near enough. */
export function searchTokens(text: string): string[] {
  return (
    text
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? []
  );
}

/** More words than this from one fuzzy or wildcard term is refused: the query says too little. */
export const MAX_EXPANSIONS = 128;

class Vocabulary {
  lastDocumentId = 0;
  /** PostgreSQL: the sandbox's search revision the words were read at. */
  revision: number | null = null;
  readonly words = new Set<string>();
  readonly byTrigram = new Map<string, string[]>();

  add(word: string): void {
    if (this.words.has(word)) return;
    this.words.add(word);
    for (const gram of trigrams(word)) {
      const list = this.byTrigram.get(gram);
      if (list) list.push(word);
      else this.byTrigram.set(gram, [word]);
    }
  }
}

function trigrams(word: string): Set<string> {
  const out = new Set<string>();
  const chars = [...word];
  for (let i = 0; i + 3 <= chars.length; i++) out.add(chars.slice(i, i + 3).join(''));
  return out;
}

const VOCABULARIES = cacheKey<Map<number, Vocabulary>>('search vocabularies');

async function vocabularyOf(conn: Store, sandboxId: number): Promise<Vocabulary> {
  const all = conn.cache.get(VOCABULARIES, () => new Map());
  let vocab = all.get(sandboxId);
  let revision: number | null = null;
  if (conn.dialect === 'postgres') {
    revision = (await conn.get<{ revision: number }>(q.revision, [sandboxId]))?.revision ?? 0;
    if (vocab && vocab.revision === revision) return vocab;
    vocab = undefined;
  }
  if (!vocab) {
    vocab = new Vocabulary();
    vocab.revision = revision;
    all.set(sandboxId, vocab);
  }
  const rows = await conn.all<{ id: number; text: string }>(q.documentsSince, [vocab.lastDocumentId, sandboxId]);
  for (const row of rows) {
    for (const word of searchTokens(row.text)) vocab.add(word);
    vocab.lastDocumentId = row.id;
  }
  return vocab;
}

/** Edit distance with adjacent transpositions counted as one edit (as Lucene's fuzzy query does), capped at max + 1. */
export function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      row.push(d);
      best = Math.min(best, d);
    }
    if (best > max) return max + 1;
    rows.push(row);
  }
  return rows[a.length]![b.length]!;
}

function capped(words: string[], what: string): string[] {
  if (words.length > MAX_EXPANSIONS)
    throw badInput(`Search query: ${what} matches more than ${MAX_EXPANSIONS} words; make it more specific`, 'query');
  return words.sort();
}

/** Words within `edits` edits of `word`: those sharing enough trigrams (q-gram lemma), then checked. */
export async function fuzzyWords(conn: Store, sandboxId: number, word: string, edits: number): Promise<string[]> {
  const vocab = await vocabularyOf(conn, sandboxId);
  const grams = trigrams(word);
  // An insertion, deletion or substitution breaks at most 3 trigrams; a transposition (one edit
  // here) breaks up to 4, so `chrunrate` shares only 3 of 7 with `churnrate`.
  const needed = grams.size - 4 * edits;
  let candidates: Iterable<string>;
  if (needed <= 0) {
    candidates = vocab.words;
  } else {
    const shared = new Map<string, number>();
    for (const gram of grams) for (const w of vocab.byTrigram.get(gram) ?? []) shared.set(w, (shared.get(w) ?? 0) + 1);
    candidates = [...shared].filter(([, n]) => n >= needed).map(([w]) => w);
  }
  const out: string[] = [];
  for (const candidate of candidates) if (editDistance(word, candidate, edits) <= edits) out.push(candidate);
  return capped(out, `"${word}~${edits}"`);
}

/** Words matching a pattern with `*` (any run) and `?` (one character). */
export async function wildcardWords(conn: Store, sandboxId: number, pattern: string): Promise<string[]> {
  const vocab = await vocabularyOf(conn, sandboxId);
  const literalPrefix = /^[^*?]*/.exec(pattern)![0];
  const regex = new RegExp(
    `^${[...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('')}$`,
    'u',
  );
  const out: string[] = [];
  for (const word of vocab.words) if (word.startsWith(literalPrefix) && regex.test(word)) out.push(word);
  return capped(out, `"${pattern}"`);
}
