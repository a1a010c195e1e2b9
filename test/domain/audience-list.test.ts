/**
 * listAudiences prepares one statement per shape of request and binds every value at run time:
 * requests of the same shape with other values, and every filter, order and direction, must
 * page exactly as a computation over all the rows does.
 */
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import {
  type Audience,
  type AudienceFilter,
  type AudienceOrder,
  createManualAudience,
  listAudiences,
} from '../../src/domain/audiences.js';
import { DEFAULT_SANDBOX, ensureSandbox } from '../../src/domain/sandboxes.js';

const conn = openDatabase(':memory:');
const sandboxId = (await ensureSandbox(conn, DEFAULT_SANDBOX)).id;
const other = (await ensureSandbox(conn, 'other')).id;
const all: Audience[] = [];
for (let i = 0; i < 30; i++) {
  all.push(
    await createManualAudience(
      conn,
      sandboxId,
      {
        name: `${['Alpha', 'beta', 'Gamma'][i % 3]} ${String(29 - i).padStart(2, '0')}`,
        namespace: i % 2 === 0 ? 'email' : 'crmId',
        labels: i % 4 === 0 ? ['vip'] : ['plain'],
        lifecycleState: i % 5 === 0 ? 'DRAFT' : 'PUBLISHED',
      },
      1_000 + (i % 7) * 10,
    ),
  );
  await createManualAudience(conn, other, { name: `Alpha other ${i}` }, 1_000);
}

function expected(filter: AudienceFilter, order: AudienceOrder): number[] {
  const key = (a: Audience): string | number =>
    order.field === 'NAME' ? a.name.toLowerCase() : order.field === 'CREATED_AT' ? a.createdAt : a.size;
  return all
    .filter((a) => !filter.nameContains || a.name.toLowerCase().includes(filter.nameContains.toLowerCase()))
    .filter((a) => filter.namespace == null || a.namespace === filter.namespace)
    .filter((a) => filter.label == null || a.labels.includes(filter.label))
    .filter((a) => filter.lifecycleState == null || a.lifecycleState === filter.lifecycleState)
    .sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      const c = x < y ? -1 : x > y ? 1 : a.id - b.id;
      return order.direction === 'DESC' ? -c : c;
    })
    .map((a) => a.id);
}

async function pageForward(filter: AudienceFilter, order: AudienceOrder): Promise<number[]> {
  const ids: number[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await listAudiences(conn, sandboxId, filter, order, { first: 4, after });
    ids.push(...page.items.map((a) => a.id));
    if (!page.hasNextPage) return ids;
    after = page.cursors.at(-1);
  }
}

async function pageBackward(filter: AudienceFilter, order: AudienceOrder): Promise<number[]> {
  const ids: number[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await listAudiences(conn, sandboxId, filter, order, { last: 4, before });
    ids.unshift(...page.items.map((a) => a.id));
    if (!page.hasPreviousPage) return ids;
    before = page.cursors[0];
  }
}

describe('listAudiences', () => {
  const filters: AudienceFilter[] = [
    {},
    { namespace: 'email' },
    { namespace: 'crmId' },
    { nameContains: 'ALPHA' },
    { nameContains: 'gam', namespace: 'email' },
    { label: 'vip' },
    { lifecycleState: 'DRAFT' },
    { lifecycleState: 'PUBLISHED', label: 'plain' },
  ];
  const orders: AudienceOrder[] = [
    { field: 'NAME', direction: 'ASC' },
    { field: 'NAME', direction: 'DESC' },
    { field: 'CREATED_AT', direction: 'ASC' },
    { field: 'CREATED_AT', direction: 'DESC' },
  ];
  it('pages every filter and order forwards and backwards as a computation over all rows', async () => {
    for (const filter of filters) {
      for (const order of orders) {
        const want = expected(filter, order);
        expect(await pageForward(filter, order), JSON.stringify({ filter, order })).toEqual(want);
        expect(await pageBackward(filter, order), JSON.stringify({ filter, order, back: true })).toEqual(want);
        expect(await (await listAudiences(conn, sandboxId, filter, order, { first: 1 })).totalCount()).toBe(
          want.length,
        );
      }
    }
  });

  it('never shows another sandbox', async () => {
    const mine = (await listAudiences(conn, sandboxId, { nameContains: 'alpha' }, undefined, { first: 100 })).items;
    expect(mine.every((a) => !a.name.includes('other'))).toBe(true);
    expect((await listAudiences(conn, other, {}, undefined, { first: 100 })).items).toHaveLength(30);
  });
});
