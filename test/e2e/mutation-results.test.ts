import { isInterfaceType, isListType, isNonNullType, isObjectType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../../src/graphql/index.js';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;

beforeAll(async () => {
  // A small batch limit, so one ingest of an operation can be refused as a whole.
  server = await startTestServer({ limits: { maxBatch: 2 } });
});
afterAll(() => server.stop());

describe('mutation results', () => {
  it('are nullable for every mutation, so one failing field does not null the others', () => {
    const nonNull = Object.values(schema.getMutationType()!.getFields()).filter((f) => isNonNullType(f.type));
    expect(nonNull.map((f) => f.name)).toEqual([]);
  });

  it('follow one convention: a delete returns the id it deleted, an ingest its IngestResult, the rest their object', () => {
    // Read from the schema, so a mutation added later is held to the README's convention too.
    const off: string[] = [];
    for (const field of Object.values(schema.getMutationType()!.getFields())) {
      const type = field.type;
      const what = `${field.name}: ${String(type)}`;
      if (field.name.startsWith('delete')) {
        if (String(type) !== 'ID') off.push(what);
      } else if (field.name.startsWith('ingest')) {
        if (String(type) !== 'IngestResult') off.push(what);
      } else if (isListType(type) || !(isObjectType(type) || isInterfaceType(type))) {
        off.push(what);
      }
    }
    expect(off).toEqual([]);
  });

  it('keeps the first mutation result of an operation when the second fails', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({
        query: `mutation Two {
          created: createFolder(input: { name: "Nordics" }) { id name path }
          gone: deleteAudience(id: "QXVkaWVuY2U6OTk5OTk=")
        }`,
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: any; errors: any[] };
    expect(body.data.created).toMatchObject({ name: 'Nordics', path: '/Nordics' });
    expect(body.data.gone).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0]).toMatchObject({ path: ['gone'], extensions: { code: 'NOT_FOUND' } });
    // The first one was written, not only reported.
    const folders = ok(await server.gql('{ folders { id name } }')).folders;
    expect(folders).toEqual([{ id: body.data.created.id, name: 'Nordics' }]);
  });

  it('keeps the profiles ingested when the events of the same operation are refused', async () => {
    const res = await server.gql(
      `mutation($records: [ProfileInput!]!, $events: [EventInput!]!) {
        ingestProfiles(records: $records) { accepted profileIds }
        ingestEvents(events: $events) { accepted }
      }`,
      {
        records: [{ identities: [{ namespace: 'email', id: 'ann@example.se' }], attributes: {} }],
        // Over the batch limit: refused as a whole, after the profiles landed.
        events: Array.from({ length: 3 }, (_, i) => ({
          identity: { namespace: 'email', id: 'ann@example.se' },
          timestamp: '2026-11-27T18:03:00.000Z',
          eventType: `e${i}`,
        })),
      },
    );
    expect(res.data.ingestProfiles).toMatchObject({ accepted: 1 });
    expect(res.data.ingestEvents).toBeNull();
    expect(res.errors).toHaveLength(1);
    expect(res.errors?.[0]).toMatchObject({ path: ['ingestEvents'], extensions: { code: 'BAD_USER_INPUT' } });
    const profile = ok(await server.gql('{ profile(identity: { namespace: "email", id: "ann@example.se" }) { id } }'));
    expect(profile.profile.id).toBe(res.data.ingestProfiles.profileIds[0]);
  });
});
