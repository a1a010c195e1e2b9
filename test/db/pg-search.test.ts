/**
 * Segment search on PostgreSQL (src/domain/search/ts-match.ts) against SQLite's FTS5, the
 * reference: one corpus made on SQLite by the domain's functions and copied to the file's
 * PostgreSQL database, whose triggers then write its search documents afresh; every query form
 * then finds the same hits on both, name hits first, with the same counts, matched fields and
 * content, and a highlighted snippet. Runs when SEGQL_TEST_DATABASE_URL names a PostgreSQL server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { copySqliteToPostgres } from '../../src/db/pg/copy-from-sqlite.js';
import { statements } from '../../src/db/statement.js';
import type { Store } from '../../src/db/store.js';
import { writeUnit } from '../../src/db/unit.js';
import { createManualAudience } from '../../src/domain/audiences.js';
import { createSegmentDefinition } from '../../src/domain/definitions.js';
import { DomainError } from '../../src/domain/errors.js';
import { EventBus } from '../../src/domain/events.js';
import { createFolder } from '../../src/domain/folders.js';
import { encodeGlobalId } from '../../src/domain/ids.js';
import { updateProfileSchema } from '../../src/domain/profile-schema.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { liveSearchResults, SearchWatcher } from '../../src/domain/search/live-search.js';
import {
  restoreSnippet,
  type SearchHit,
  schemaFieldOfHit,
  searchEntities,
  searchNamespaces,
  taxonomy,
} from '../../src/domain/search/search.js';
import { describeOnPostgres, insertRows } from './statements-harness.js';

const { addField } = statements('pg-search-test', {
  addField: {
    sqlite:
      "INSERT INTO schema_fields (sandbox_id, class, path, type, created_at) VALUES (?, 'profile', ?, 'string', 0)",
    postgres:
      "INSERT INTO schema_fields (sandbox_id, class, path, type, created_at) VALUES ($1, 'profile', $2, 'string', 0)",
  },
});

async function corpus(conn: Connection) {
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
    cafe: await audience('Café owners', 'Crème brûlée lovers near the Straße', { labels: ['food_and_drink'] }),
    oslo: await createSegmentDefinition(conn, sandboxId, {
      name: 'Oslo residents',
      description: 'People living in Oslo',
      expression: { format: 'PQL_TEXT', value: 'homeAddress.city = "Oslo"' },
    }),
  };
  await updateProfileSchema(conn, sandboxId, [
    { class: 'profile', path: '_tenant.churnScore', type: 'number', description: 'Model output' },
    { class: 'profile', path: '_tenant.signupDay', type: 'datetime', description: 'First seen' },
    { class: 'profile', path: 'homeAddress.city', type: 'string', description: 'City of residence' },
  ]);
  await createManualAudience(conn, other, { name: 'Churn elsewhere', description: 'another sandbox' });
  return { sandboxId, other, ids, marketing, nordics };
}

const QUERIES = [
  'churn',
  'Churn',
  'homeaddress.city',
  'homeAddress.city',
  'expression:homeAddress.city',
  'city',
  'cafe',
  'café',
  'CAFÉ',
  'creme brulee',
  '"crème brûlée"',
  'food_and_drink',
  'labels:drink',
  'name:churn',
  'description:churn',
  'path:city',
  'path:churnscore',
  'type:datetime',
  'labels:vip',
  'label:retention',
  'folder:nordics',
  'folder:"marketing nordics"',
  'namespace:crm',
  'name:(churn OR newsletter)',
  'name:(loyal OR description:leave)',
  '"likely to leave"',
  '"leave likely"',
  '"oslo residents"',
  // Across two columns: FTS5 never matches a phrase there, nor does PostgreSQL.
  '"residents people"',
  'newslet*',
  'churn*',
  'tenant*',
  'chrun~1',
  'cgurm~1',
  'cgurm~2',
  'cgurm~',
  'sh?ppers',
  'sh?pers',
  'l*yal',
  '*etter',
  'customers AND leave',
  'customers && leave',
  'newsletter OR frequent',
  'churn NOT vip',
  'churn -retention',
  '(oslo OR newsletter) AND NOT readers',
  '(churn OR winback) AND (lapsed OR soon)',
  'type:datetime AND tenant',
  '"customers leave"~3',
  '"customers leave"~1',
  '"leave customers"~2',
  '"customers leave"',
  '"frequent rarely churn"~2',
  'zzzqqq',
  'churn AND zzzqqq',
  `name:"x') OR 1=1 --"`,
  `"'; DROP TABLE search_documents; --"`,
  `x') OR to_tsvector('a') @@ 'a`,
  `'churn' | 'loyal'`,
  'churn:* & !vip',
  'name\\:churn',
];

/**
 * Where PostgreSQL's snippet is not FTS5's: ts_headline chose a shorter fragment around a NEAR
 * match, and two matched words side by side are one mark (FTS5 marks each term on its own, and a
 * phrase as one).
 */
const SNIPPET_DIFFERS = new Set(['"customers leave"~3', 'creme brulee']);

const keyOf = (h: SearchHit) => `${h.kind} ${h.entityKey}`;

describeOnPostgres('segment search on PostgreSQL against FTS5', 'pg_search', (pg) => {
  let lite: Connection;
  let c: Awaited<ReturnType<typeof corpus>>;

  beforeAll(async () => {
    lite = openDatabase(':memory:');
    c = await corpus(lite);
    const client = await pg.conn.pool.connect();
    try {
      await copySqliteToPostgres(lite.sqlite, client);
    } finally {
      client.release();
    }
    // The copy takes SQLite's documents as they are; PostgreSQL's triggers write them again.
    await pg.conn.pool.query(`DELETE FROM search_documents;
      SELECT segql_search_audience(sandbox_id, id) FROM audiences;
      SELECT segql_search_definition(sandbox_id, id) FROM segment_definitions;
      SELECT segql_search_field(sandbox_id, class || ':' || path) FROM schema_fields;`);
  });

  afterAll(() => {
    lite?.close();
  });

  it('holds the documents SQLite holds, written by its own triggers', async () => {
    const columns =
      'kind, entity_key, name, description, gid, external_id, labels, folder, namespace, expression, path, type';
    const order = 'ORDER BY sandbox_id, kind, entity_key';
    const fromLite = lite.sqlite.prepare(`SELECT sandbox_id, ${columns} FROM search_documents ${order}`).all();
    const fromPg = (await pg.conn.pool.query(`SELECT sandbox_id, ${columns} FROM search_documents ${order}`)).rows;
    expect(fromPg).toEqual(fromLite);
  });

  const both = async <T>(run: (conn: Store) => Promise<T>) => ({ lite: await run(lite), pg: await run(pg.conn) });

  it.each(QUERIES)(
    'finds the same hits for %j (or refuses it alike), name hits first, with counts and snippets',
    async (query) => {
      const refusal = await searchEntities(lite, c.sandboxId, null, query).then(
        () => null,
        (err: DomainError) => err.message,
      );
      if (refusal !== null) {
        await expect(searchEntities(pg.conn, c.sandboxId, null, query)).rejects.toThrow(refusal);
        return;
      }
      const page = await both((conn) => searchEntities(conn, c.sandboxId, null, query, { first: 50 }));
      const keys = { lite: page.lite.hits.map(keyOf).sort(), pg: page.pg.hits.map(keyOf).sort() };
      expect(keys.pg).toEqual(keys.lite);
      expect(await page.pg.totalCount()).toBe(await page.lite.totalCount());
      expect(await searchNamespaces(pg.conn, c.sandboxId, query)).toEqual(
        await searchNamespaces(lite, c.sandboxId, query),
      );
      const liteByKey = new Map(page.lite.hits.map((h) => [keyOf(h), h]));
      for (const hit of page.pg.hits) {
        const reference = liteByKey.get(keyOf(hit))!;
        expect({ key: keyOf(hit), fields: hit.matchedFields, content: hit.content }).toEqual({
          key: keyOf(reference),
          fields: reference.matchedFields,
          content: reference.content,
        });
        expect(hit.snippet).toContain('<mark>');
        expect(reference.snippet).toContain('<mark>');
        if (!SNIPPET_DIFFERS.has(query)) expect(hit.snippet, keyOf(hit)).toBe(reference.snippet);
      }
      // Hits whose name alone answers the query lead on both: the same ones, in the lead.
      const nameLed = (hits: SearchHit[]) => {
        const lead: string[] = [];
        for (const h of hits) {
          if (h.matchedFields.length === 1 && h.matchedFields[0] === 'name') lead.push(keyOf(h));
          else break;
        }
        return lead.sort();
      };
      expect(nameLed(page.pg.hits)).toEqual(nameLed(page.lite.hits));
    },
  );

  it('puts name matches first and pages the same way', async () => {
    const churn = await both(async (conn) =>
      (await searchEntities(conn, c.sandboxId, 'segql', 'churn')).hits.map(keyOf),
    );
    expect(churn.pg).toEqual([`AUDIENCE ${c.ids.churn}`, `AUDIENCE ${c.ids.loyal}`]);
    expect(churn.pg).toEqual(churn.lite);
    const first = await searchEntities(pg.conn, c.sandboxId, null, 'churn OR newsletter OR oslo', { first: 2 });
    expect(first.hasNextPage).toBe(true);
    const rest = await searchEntities(pg.conn, c.sandboxId, null, 'churn OR newsletter OR oslo', {
      first: 50,
      after: first.cursors[1],
    });
    expect([...first.hits, ...rest.hits].map((h) => h.rank)).toEqual(
      Array.from({ length: first.hits.length + rest.hits.length }, (_, i) => i),
    );
    expect(new Set([...first.hits, ...rest.hits].map(keyOf)).size).toBe(await first.totalCount());
    const snippet = (await searchEntities(pg.conn, c.sandboxId, 'segql', 'cafe')).hits[0]?.snippet;
    expect(snippet).toBe('<mark>Café</mark> owners');
  });

  it('folds more letters than FTS5 does (docs/api.md, "On PostgreSQL")', async () => {
    const strasse = await both(async (conn) =>
      (await searchEntities(conn, c.sandboxId, null, 'strasse')).hits.map(keyOf),
    );
    expect(strasse).toEqual({ lite: [], pg: [`AUDIENCE ${c.ids.cafe}`] });
    const straße = await both(async (conn) =>
      (await searchEntities(conn, c.sandboxId, null, 'straße')).hits.map(keyOf),
    );
    expect(straße).toEqual({ lite: [`AUDIENCE ${c.ids.cafe}`], pg: [`AUDIENCE ${c.ids.cafe}`] });
  });

  it('keeps to the sandbox and the namespace', async () => {
    const other = await both(async (conn) => (await searchEntities(conn, c.other, null, 'churn')).hits.length);
    expect(other).toEqual({ lite: 1, pg: 1 });
    const crm = await both(async (conn) =>
      (await searchEntities(conn, c.sandboxId, 'crm', 'winback OR churn')).hits.map(keyOf),
    );
    expect(crm.pg).toEqual([`AUDIENCE ${c.ids.winback}`]);
    expect(crm.pg).toEqual(crm.lite);
  });

  it('finds words of documents written after the vocabulary was read', async () => {
    await searchEntities(pg.conn, c.sandboxId, null, 'chrun~1');
    const row = [c.sandboxId, 'profile', '_tenant.churnRate', 'number', 'Share that left', 5_000];
    await insertRows(
      lite,
      pg,
      'schema_fields',
      ['sandbox_id', 'class', 'path', 'type', 'description', 'created_at'],
      [row],
    );
    const hits = await both(async (conn) =>
      (await searchEntities(conn, c.sandboxId, 'schema', 'churnrafe~1')).hits.map(keyOf),
    );
    expect(hits.pg).toEqual(['FIELD profile:_tenant.churnRate']);
    expect(hits.pg).toEqual(hits.lite);
    // A transposition is one edit in a long word too.
    const swapped = await both(async (conn) =>
      (await searchEntities(conn, c.sandboxId, 'schema', 'chrunrate~1')).hits.map(keyOf),
    );
    expect(swapped).toEqual({ lite: ['FIELD profile:_tenant.churnRate'], pg: ['FIELD profile:_tenant.churnRate'] });
  });

  it("searches inside a unit on the unit's client, its documents gone with its rollback", async () => {
    const fields = async (conn: Store) => (await searchEntities(conn, c.sandboxId, 'schema', 'zebra*')).hits.map(keyOf);
    const rollback = new Error('rollback');
    await expect(
      writeUnit(pg.conn, async (tx) => {
        await tx.run(addField, [c.sandboxId, 'zebraStripes']);
        expect(await fields(tx)).toEqual(['FIELD profile:zebraStripes']);
        expect(await searchNamespaces(tx, c.sandboxId, 'zebrastripes~1')).toContainEqual({
          namespace: 'schema',
          count: 1,
        });
        throw rollback;
      }),
    ).rejects.toThrow(rollback);
    expect(await fields(pg.conn)).toEqual([]);
    expect((await searchEntities(pg.conn, c.sandboxId, 'schema', 'zebrastripes~1')).hits).toEqual([]);
  });

  it('streams live results from the revisions PostgreSQL keeps', async () => {
    const bus = new EventBus();
    const watcher = new SearchWatcher(pg.conn, bus, 5);
    const abort = new AbortController();
    const events = liveSearchResults({
      conn: pg.conn,
      bus,
      watcher,
      sandboxId: c.sandboxId,
      namespace: 'schema',
      query: 'giraffe*',
      first: 10,
      signal: abort.signal,
    });
    try {
      expect((await events.next()).value).toMatchObject({ type: 'RESULTS', hits: [], totalCount: 0 });
      await pg.conn.run(addField, [c.sandboxId, 'giraffeNeck']);
      await lite.run(addField, [c.sandboxId, 'giraffeNeck']);
      const added = (await events.next()).value;
      expect(added).toMatchObject({ type: 'ADDED', totalCount: 1, hit: { entityKey: 'profile:giraffeNeck' } });
    } finally {
      abort.abort();
      await events.return(undefined);
      watcher.stop();
    }
  });

  it('gives an audience its folders and a field hit its field', async () => {
    const folders = await both(async (conn) =>
      (await taxonomy(conn, c.sandboxId, encodeGlobalId('Audience', c.ids.churn))).map((f) => f.name),
    );
    expect(folders.pg).toEqual(['Marketing', 'Nordics']);
    expect(folders.pg).toEqual(folders.lite);
    const def = await both(async (conn) =>
      (await taxonomy(conn, c.sandboxId, encodeGlobalId('SegmentDefinition', c.ids.oslo.id))).map((f) => f.name),
    );
    expect(def.pg).toEqual(def.lite);
    await expect(taxonomy(pg.conn, c.other, encodeGlobalId('Audience', c.ids.churn))).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });
    const field = await both((conn) => schemaFieldOfHit(conn, c.sandboxId, 'profile:homeAddress.city'));
    expect(field.pg).toEqual({
      class: 'profile',
      path: 'homeAddress.city',
      type: 'string',
      description: 'City of residence',
    });
    expect(field.pg).toEqual(field.lite);
    expect(await schemaFieldOfHit(pg.conn, c.sandboxId, 'profile:gone')).toBeNull();
  });

  it('reads anything typed as literal words or BAD_USER_INPUT, never a PostgreSQL error', async () => {
    const alphabet = ['"', '*', '?', '~', '(', ')', ':', '-', '!', '\\', "'", ';', '&', '|', ' ', ' ', 'churn'];
    alphabet.push('name', 'NOT', 'OR', 'AND', '1', '2', 'é', '$1', '<->', '::', 'tsquery', '%s', '½', '\u0301');
    let seed = 11;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let answered = 0;
    for (let i = 0; i < 400; i++) {
      const length = 1 + Math.floor(random() * 8);
      const q = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      let liteCount: number | string;
      try {
        liteCount = await (await searchEntities(lite, c.sandboxId, null, q)).totalCount();
      } catch (err) {
        liteCount = err instanceof DomainError ? err.code : String(err);
      }
      let pgCount: number | string;
      try {
        pgCount = await (await searchEntities(pg.conn, c.sandboxId, null, q)).totalCount();
        await searchNamespaces(pg.conn, c.sandboxId, q);
        answered++;
      } catch (err) {
        if (!(err instanceof DomainError)) throw new Error(`query ${JSON.stringify(q)} failed with ${String(err)}`);
        pgCount = err.code;
      }
      expect({ q, count: pgCount }).toEqual({ q, count: liteCount });
    }
    expect(answered).toBeGreaterThan(40);
  });
});

describe("PostgreSQL's snippet in the column's own text", () => {
  it.each([
    [
      '<mark>homeAddress</mark> <mark>city</mark> Oslo',
      'homeAddress.city = "Oslo"',
      '<mark>homeAddress.city</mark> = "Oslo"',
    ],
    ['Marketing <mark>Nordics</mark>', '/Marketing/Nordics', '/Marketing/<mark>Nordics</mark>'],
    ['<mark>churn</mark> a b', 'x y <mark> churn a b c', '…<mark>churn</mark> a b…'],
    ['<mark>Café</mark> owners', 'Cafe\u0301 owners', '<mark>Café</mark> owners'],
    // Words that cannot be lined up leave the headline as it is.
    ['<mark>odd</mark> words', 'other text', '<mark>odd</mark> words'],
  ])('shows %j from %j as %j', (headline, source, shown) => {
    expect(restoreSnippet(headline, source)).toBe(shown);
  });
});
