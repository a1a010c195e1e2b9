/**
 * The search index below the API: the triggers of drizzle/0011 keep it in the transaction of
 * each change (seen inside it, gone with its rollback), every query form against a fixed
 * corpus with the expected entities in order, and that no query, however it is typed, reaches
 * SQLite as anything but a DomainError or results.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { writeUnit } from '../../src/db/unit.js';
import { createManualAudience, deleteAudience, updateAudience } from '../../src/domain/audiences.js';
import {
  createSegmentDefinition,
  deleteSegmentDefinition,
  updateSegmentDefinition,
} from '../../src/domain/definitions.js';
import { DomainError } from '../../src/domain/errors.js';
import { createFolder } from '../../src/domain/folders.js';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { updateProfileSchema } from '../../src/domain/profile-schema.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { diffHits } from '../../src/domain/search/live-search.js';
import { type SearchHit, searchEntities, searchNamespaces } from '../../src/domain/search/search.js';

async function corpus() {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  const other = (await ensureSandbox(conn, 'other')).id;
  const marketing = await createFolder(conn, sandboxId, { name: 'Marketing' });
  const nordics = await createFolder(conn, sandboxId, { name: 'Nordics', parentId: marketing.id });
  const audience = async (
    name: string,
    description: string,
    extra: { labels?: string[]; folderId?: number; namespace?: string } = {},
  ) => (await createManualAudience(conn, sandboxId, { name, description, ...extra })).id;
  const ids = {
    churn: await audience('Churn risk', 'Customers likely to leave soon', {
      labels: ['retention'],
      folderId: nordics.id,
    }),
    loyal: await audience('Loyal shoppers', 'Frequent buyers who rarely churn', { labels: ['vip'] }),
    news: await audience('Newsletter readers', 'Opened the newsletter this week', { folderId: marketing.id }),
    winback: await audience('Winback', 'Lapsed customers to win back', { namespace: 'crm' }),
    oslo: await createSegmentDefinition(conn, sandboxId, {
      name: 'Oslo residents',
      description: 'People living in Oslo',
      expression: { format: 'PQL_TEXT', value: 'homeAddress.city = "Oslo"' },
    }),
  };
  await updateProfileSchema(conn, sandboxId, [
    { class: 'profile', path: '_tenant.churnScore', type: 'number', description: 'Model output' },
    { class: 'profile', path: '_tenant.signupDay', type: 'datetime', description: 'First seen' },
  ]);
  const elsewhere = (
    await createManualAudience(conn, other, { name: 'Churn elsewhere', description: 'another sandbox' })
  ).id;
  return { conn, sandboxId, other, ids, elsewhere };
}

type Corpus = Awaited<ReturnType<typeof corpus>>;

/** The hits of a query as "<kind> <name>" (or the field key), best first. */
async function found(
  c: Pick<Corpus, 'conn' | 'sandboxId'>,
  query: string,
  namespace: string | null = 'segql',
  sandboxId = c.sandboxId,
): Promise<string[]> {
  return (await searchEntities(c.conn, sandboxId, namespace, query, { first: 50 })).hits.map(
    (h) => `${h.kind} ${h.entityKey}`,
  );
}

describe('the search index', () => {
  let c: Corpus;
  let A: (id: number) => string;
  beforeAll(async () => {
    c = await corpus();
    A = (id) => `AUDIENCE ${id}`;
  });

  it('answers every query form against a fixed corpus, with the expected entities in order', async () => {
    const { churn, loyal, news, winback, oslo } = c.ids;
    // The definition and its audience carry the same text; the audience's document is the shorter.
    const osloHits = [A(oslo.audienceId), `DEFINITION ${oslo.id}`];
    expect(await found(c, 'churn')).toEqual([A(churn), A(loyal)]);
    expect(await found(c, 'customers AND leave')).toEqual([A(churn)]);
    expect(await found(c, 'customers && leave')).toEqual([A(churn)]);
    expect(await found(c, 'newsletter OR frequent')).toEqual([A(news), A(loyal)]);
    expect(await found(c, 'newsletter || frequent')).toEqual([A(news), A(loyal)]);
    expect(await found(c, 'churn NOT vip')).toEqual([A(churn)]);
    expect(await found(c, 'churn -retention')).toEqual([A(loyal)]);
    expect(await found(c, 'churn !retention')).toEqual([A(loyal)]);
    expect(await found(c, 'description:churn')).toEqual([A(loyal)]);
    expect(await found(c, 'name:churn')).toEqual([A(churn)]);
    expect(await found(c, 'labels:vip')).toEqual([A(loyal)]);
    expect(await found(c, 'label:retention')).toEqual([A(churn)]);
    expect(await found(c, 'folder:nordics')).toEqual([A(churn)]);
    expect(await found(c, 'folder:"marketing nordics"')).toEqual([A(churn)]);
    expect(await found(c, 'namespace:crm', null)).toEqual([A(winback)]);
    expect(await found(c, 'expression:oslo')).toEqual(osloHits);
    expect(await found(c, 'expression:homeaddress.city')).toEqual(osloHits);
    expect(await found(c, `id:${encodeGlobalId('Audience', churn)}`)).toEqual([A(churn)]);
    expect(await found(c, `id:"${encodeGlobalId('SegmentDefinition', oslo.id)}"`)).toEqual([`DEFINITION ${oslo.id}`]);
    expect(await found(c, '"likely to leave"')).toEqual([A(churn)]);
    expect(await found(c, '"leave likely"')).toEqual([]);
    expect(await found(c, '"customers leave"~3')).toEqual([A(churn)]);
    expect(await found(c, '"customers leave"~1')).toEqual([]);
    expect(await found(c, '"customers leave"')).toEqual([]);
    expect(await found(c, 'newslet*')).toEqual([A(news)]);
    expect(await found(c, 'sh?ppers')).toEqual([A(loyal)]);
    expect(await found(c, 'sh?pers')).toEqual([]);
    expect(await found(c, '*etter')).toEqual([A(news)]);
    expect(await found(c, 'l*yal')).toEqual([A(loyal)]);
    // Fuzzy: a transposition is one edit; two substitutions need ~2.
    expect(await found(c, 'chrun~1')).toEqual([A(churn), A(loyal)]);
    expect(await found(c, 'cgurm~1')).toEqual([]);
    expect(await found(c, 'cgurm~2')).toEqual([A(churn), A(loyal)]);
    expect(await found(c, 'cgurm~')).toEqual([A(churn), A(loyal)]);
    expect(await found(c, '(oslo OR newsletter) AND NOT readers')).toEqual(osloHits);
    expect(await found(c, '(churn OR winback) AND (lapsed OR soon)', null)).toEqual([A(winback), A(churn)]);
    // A field before a group applies to the terms inside that name no field of their own.
    expect(await found(c, 'name:(churn OR newsletter)')).toEqual([A(news), A(churn)]);
    expect(await found(c, 'description:(churn OR newsletter)')).toEqual([A(loyal), A(news)]);
    expect(await found(c, 'name:(loyal OR description:leave)')).toEqual([A(loyal), A(churn)]);
    expect(await found(c, 'winback', 'crm')).toEqual([A(winback)]);
    expect(await found(c, 'winback', 'segql')).toEqual([]);
    expect(await found(c, 'churn*', 'schema')).toEqual(['FIELD profile:_tenant.churnScore']);
    expect(await found(c, 'path:churnscore', 'schema')).toEqual(['FIELD profile:_tenant.churnScore']);
    expect(await found(c, 'type:datetime', 'schema')).toContain('FIELD profile:_tenant.signupDay');
    expect(await found(c, 'type:datetime', 'schema')).not.toContain('FIELD profile:_tenant.churnScore');
    expect(await found(c, 'type:datetime AND tenant', 'schema')).toEqual(['FIELD profile:_tenant.signupDay']);
    expect(await found(c, 'description:"first seen"', 'schema')).toEqual(['FIELD profile:_tenant.signupDay']);
  });

  it('puts name matches first, highlights the match and names the matched fields', async () => {
    const hits = (await searchEntities(c.conn, c.sandboxId, 'segql', 'churn')).hits;
    expect(hits.map((h) => [h.entityKey, h.rank, h.snippet, h.matchedFields])).toEqual([
      [String(c.ids.churn), 0, '<mark>Churn</mark> risk', ['name']],
      [String(c.ids.loyal), 1, 'Frequent buyers who rarely <mark>churn</mark>', ['description']],
    ]);
  });

  it('counts hits per namespace inside the sandbox only', async () => {
    expect(await searchNamespaces(c.conn, c.sandboxId, 'churn* OR winback')).toEqual([
      { namespace: 'segql', count: 2 },
      { namespace: 'crm', count: 1 },
      { namespace: 'schema', count: 1 },
    ]);
    expect(await searchNamespaces(c.conn, c.other, 'churn* OR winback')).toEqual([
      { namespace: 'segql', count: 1 },
      { namespace: 'schema', count: 0 },
    ]);
    expect(await found(c, 'churn', 'segql', c.other)).toEqual([A(c.elsewhere)]);
    expect(await found(c, 'elsewhere')).toEqual([]);
  });

  it('writes an entity into the index in the transaction of its change, and a rollback takes it out', async () => {
    const { conn, sandboxId } = c;
    const rollback = new Error('rollback');
    await expect(
      writeUnit(conn, async (tx) => {
        const id = (await createManualAudience(tx, sandboxId, { name: 'Uncommitted zebra' })).id;
        // Searchable inside the transaction that made it …
        expect(await found({ conn: tx, sandboxId }, 'zebra')).toEqual([A(id)]);
        throw rollback;
      }),
    ).rejects.toThrow(rollback);
    // … and gone with its rollback.
    expect(await found(c, 'zebra')).toEqual([]);

    const id = (await createManualAudience(conn, sandboxId, { name: 'Committed yak', description: 'first' })).id;
    expect(await found(c, 'yak')).toEqual([A(id)]);
    await updateAudience(conn, sandboxId, id, { description: 'grazing' });
    expect(await found(c, 'grazing')).toEqual([A(id)]);
    expect(await found(c, 'first')).toEqual([]);
    await expect(
      writeUnit(conn, async (tx) => {
        await deleteAudience(tx, sandboxId, id);
        expect(await found({ conn: tx, sandboxId }, 'yak')).toEqual([]);
        throw rollback;
      }),
    ).rejects.toThrow(rollback);
    expect(await found(c, 'yak')).toEqual([A(id)]);
    await deleteAudience(conn, sandboxId, id);
    expect(await found(c, 'yak')).toEqual([]);
    expect(
      conn.sqlite
        .prepare("SELECT count(*) AS n FROM search_documents WHERE kind = 'AUDIENCE' AND entity_key = ?")
        .get(String(id)),
    ).toEqual({ n: 0 });
  });

  it('re-indexes labels, folder moves and definition changes, for the definition and its audience', async () => {
    const { conn, sandboxId } = c;
    const def = await createSegmentDefinition(conn, sandboxId, {
      name: 'Bergen walkers',
      expression: { format: 'PQL_TEXT', value: 'homeAddress.city = "Bergen"' },
    });
    const both = [A(def.audienceId), `DEFINITION ${def.id}`];
    expect(await found(c, 'expression:bergen')).toEqual(both);
    await updateSegmentDefinition(conn, sandboxId, def.id, {
      expression: { format: 'PQL_TEXT', value: 'homeAddress.city = "Trondheim"' },
      labels: ['coastal'],
    });
    expect(await found(c, 'expression:bergen')).toEqual([]);
    expect(await found(c, 'expression:trondheim')).toEqual(both);
    expect(await found(c, 'labels:coastal')).toEqual(both);
    const folder = await createFolder(conn, sandboxId, { name: 'Westcoast' });
    await updateAudience(conn, sandboxId, def.audienceId, { folderId: folder.id, folderGiven: true });
    expect(await found(c, 'folder:westcoast')).toEqual(both);
    await deleteSegmentDefinition(conn, sandboxId, def.id);
    expect(await found(c, 'trondheim OR westcoast OR coastal OR walkers')).toEqual([]);
  });

  it('indexes the global id the API shows (segql_global_id is encodeGlobalId)', () => {
    const row = c.conn.sqlite
      .prepare("SELECT segql_global_id('Audience', 42) AS a, segql_global_id('SegmentDefinition', 7) AS d")
      .get();
    expect(row).toEqual({ a: encodeGlobalId('Audience', 42), d: encodeGlobalId('SegmentDefinition', 7) });
    const gid = c.conn.sqlite
      .prepare("SELECT gid FROM search_documents WHERE kind = 'AUDIENCE' AND entity_key = ?")
      .pluck()
      .get(String(c.ids.churn));
    expect(gid).toBe(encodeGlobalId('Audience', c.ids.churn));
  });

  it.each([
    ['NOT', '"NOT" needs a term after it (line 1, column 1)'],
    ['||', '"||" needs a term before it (line 1, column 1)'],
    ['churn AND', '"AND" needs a term after it (line 1, column 7)'],
    ['OR churn', '"OR" needs a term before it (line 1, column 1)'],
    ['churn OR OR risk', '"OR" needs a term after it (line 1, column 7)'],
    ['(churn NOT) risk', '"NOT" needs a term after it (line 1, column 8)'],
    ['churn\nAND', '"AND" needs a term after it (line 2, column 1)'],
    ['secret:(churn)', 'unknown field "secret"'],
    ['name:(churn', 'cannot be read'],
  ])('refuses the malformed query %j saying where', async (q, message) => {
    let error: unknown;
    try {
      await searchEntities(c.conn, c.sandboxId, null, q);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field: 'query' } });
    expect((error as DomainError).message).toContain(message);
    expect((error as DomainError).extensions.line).toBeTypeOf('number');
  });

  it('reads anything typed as literal words or BAD_USER_INPUT, never an SQLite error', async () => {
    // A seeded stream of queries made of the characters that mean something to Lucene or FTS5.
    const alphabet = [
      '"',
      '*',
      '?',
      '~',
      '^',
      '(',
      ')',
      ':',
      '-',
      '!',
      '{',
      '}',
      '[',
      ']',
      '\\',
      '/',
      '+',
      ' ',
      ' ',
      'churn',
      'NEAR',
      'NOT',
      'AND',
      'OR',
      'name',
      'rowid',
      'search_index',
      '1',
      '2',
      "'",
      ';',
      '&&',
      '||',
      'é',
      '0x',
    ];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let answered = 0;
    let refused = 0;
    for (let i = 0; i < 3000; i++) {
      const length = 1 + Math.floor(random() * 8);
      const q = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      try {
        await (await searchEntities(c.conn, c.sandboxId, null, q)).totalCount();
        await searchNamespaces(c.conn, c.sandboxId, q);
        answered++;
      } catch (err) {
        if (!(err instanceof DomainError) || err.code !== 'BAD_USER_INPUT') {
          throw new Error(`query ${JSON.stringify(q)} failed with ${String(err)}`);
        }
        expect(err.message).toMatch(/^Search query: /);
        refused++;
      }
    }
    // Both paths were taken many times.
    expect(answered).toBeGreaterThan(300);
    expect(refused).toBeGreaterThan(300);
  });
});

describe('live search differences', () => {
  const hit = (key: string, rank: number, content = key): SearchHit => ({
    kind: 'AUDIENCE',
    entityKey: key,
    namespace: 'segql',
    score: -rank,
    rank,
    snippet: content,
    matchedFields: ['name'],
    content,
  });

  it('reports a hit that appears, changes rank, changes content or goes', () => {
    const before = [hit('1', 0), hit('2', 1), hit('3', 2)];
    const after = [hit('2', 0), hit('1', 1), hit('3', 2, 'new text'), hit('4', 3)];
    expect(diffHits(before, after, 4).map((e) => [e.type, e.hit?.entityKey])).toEqual([
      ['CHANGED', '2'],
      ['CHANGED', '1'],
      ['CHANGED', '3'],
      ['ADDED', '4'],
    ]);
    expect(diffHits(after, [hit('1', 0)], 1).map((e) => [e.type, e.hit?.entityKey, e.hit?.rank])).toEqual([
      ['REMOVED', '2', 0],
      ['REMOVED', '3', 2],
      ['REMOVED', '4', 3],
      ['CHANGED', '1', 0],
    ]);
    expect(diffHits(before, before, 3)).toEqual([]);
  });
});
