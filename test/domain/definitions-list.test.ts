/**
 * The definitions list (listSegmentDefinitions) read through its page statements: every order
 * pages forwards and backwards over every definition exactly once, ties on the sort key broken by
 * id, filters switch on one by one, and a hand-made cursor of the wrong type gives no rows.
 */
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import {
  createSegmentDefinition,
  DEFINITION_ORDER_FIELDS,
  listSegmentDefinitions,
  type SegmentDefinition,
  updateSegmentDefinition,
} from '../../src/domain/definitions.js';
import { encodeCursor } from '../../src/domain/paging.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

describe('definitions list', () => {
  it('pages every order both ways, filters, and refuses a cursor of the wrong type', async () => {
    const conn = openDatabase(':memory:');
    try {
      const { id: sandboxId } = await ensureSandbox(conn, 'prod');
      const names = [
        'delta',
        'Alpha',
        'charlie',
        'Bravo',
        'echo',
        'Ägir',
        'foxtrot',
        'golf',
        'hotel',
        'India',
        'juliet',
      ];
      const made: SegmentDefinition[] = [];
      for (const [i, name] of names.entries()) {
        // Index: delta 0, Alpha 1, … juliet 10. Pairs share a creation instant, so ties are broken by id.
        const def = await createSegmentDefinition(
          conn,
          sandboxId,
          {
            name,
            expression: { format: 'PQL_TEXT', value: i % 3 === 0 ? 'true' : `loyalty.tier = "t${i}"` },
            evaluationInfo: i % 4 === 0 ? { streaming: true } : null,
            lifecycleState: i % 2 === 0 ? 'PUBLISHED' : 'DRAFT',
            labels: i % 3 === 0 ? ['vip'] : [],
          },
          1_000 + Math.floor(i / 2),
        );
        made.push(def);
      }
      // Updated instants in another order than created.
      for (const [i, def] of made.entries()) {
        made[i] = await updateSegmentDefinition(conn, sandboxId, def.id, { description: 'd' }, null, 9_000 - (i % 5));
      }
      const sortKey = (field: (typeof DEFINITION_ORDER_FIELDS)[number], d: SegmentDefinition) =>
        field === 'NAME' ? d.name.toLowerCase() : field === 'CREATED_AT' ? d.createdAt : d.updatedAt;
      for (const field of DEFINITION_ORDER_FIELDS) {
        for (const direction of ['ASC', 'DESC'] as const) {
          const sign = direction === 'ASC' ? 1 : -1;
          const expected = [...made]
            .sort((a, b) => {
              const [ka, kb] = [sortKey(field, a), sortKey(field, b)];
              return sign * (ka < kb ? -1 : ka > kb ? 1 : a.id - b.id);
            })
            .map((d) => d.id);
          const forward: number[] = [];
          let after: string | null = null;
          for (let guard = 0; guard < 10; guard++) {
            const page = await listSegmentDefinitions(conn, sandboxId, {}, { field, direction }, { first: 4, after });
            forward.push(...page.items.map((d) => d.id));
            if (!page.hasNextPage) break;
            after = page.cursors.at(-1)!;
          }
          expect(forward, `${field} ${direction} forward`).toEqual(expected);
          const backward: number[] = [];
          let before: string | null = null;
          for (let guard = 0; guard < 10; guard++) {
            const page = await listSegmentDefinitions(conn, sandboxId, {}, { field, direction }, { last: 4, before });
            backward.unshift(...page.items.map((d) => d.id));
            if (!page.hasPreviousPage) break;
            before = page.cursors[0]!;
          }
          expect(backward, `${field} ${direction} backward`).toEqual(expected);
        }
      }
      const ids = async (filter: Parameters<typeof listSegmentDefinitions>[2]) => {
        const list = await listSegmentDefinitions(conn, sandboxId, filter, undefined, { first: 50 });
        expect(await list.totalCount()).toBe(list.items.length);
        return list.items.map((d) => d.name);
      };
      expect(await ids({})).toHaveLength(names.length);
      expect(await ids({ nameContains: 'HA' })).toEqual(['Alpha', 'charlie']);
      expect(await ids({ lifecycleState: 'DRAFT' })).toEqual(['Alpha', 'Bravo', 'Ägir', 'golf', 'India']);
      expect(await ids({ label: 'vip' })).toEqual(['delta', 'Bravo', 'foxtrot', 'India']);
      expect(await ids({ evaluationMethod: 'STREAMING' })).toEqual(['delta', 'echo', 'hotel']);
      expect(await ids({ evaluationMethod: 'BATCH' })).toHaveLength(names.length);
      expect(await ids({ updatedAfter: 8_997 })).toEqual([
        'delta',
        'Alpha',
        'charlie',
        'Ägir',
        'foxtrot',
        'golf',
        'juliet',
      ]);
      expect(await ids({ label: 'vip', lifecycleState: 'PUBLISHED' })).toEqual(['delta', 'foxtrot']);
      expect(await ids({ folderId: 1 })).toEqual([]);
      // A cursor whose key is not of the sort field's type: no rows, on either database.
      const wrong = await listSegmentDefinitions(
        conn,
        sandboxId,
        {},
        { field: 'CREATED_AT', direction: 'ASC' },
        { after: encodeCursor(['x', 1]) },
      );
      expect(wrong.items).toEqual([]);
    } finally {
      conn.close();
    }
  });
});
