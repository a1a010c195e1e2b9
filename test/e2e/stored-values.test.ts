import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ok, startTestServer, type TestServer } from './harness.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
  ok(
    await server.gql(
      `mutation { updateProfileSchema(input: { fields: [
        { class: EVENT, path: "_tenant.deliveredAt", type: "datetime" },
        { class: PROFILE, path: "_tenant.scores", type: "map<number>" }
      ] }) { fields { path } } }`,
    ),
  );
});
afterAll(() => server.stop());

const INGEST_PROFILES = `mutation($records: [ProfileInput!]!) {
  ingestProfiles(records: $records) { accepted rejected errors { index message code } }
}`;
const INGEST_EVENTS = `mutation($events: [EventInput!]!) {
  ingestEvents(events: $events) { accepted rejected errors { index message code } }
}`;

const IMPOSSIBLE: [string, string][] = [
  ['2026-01-01T00:00:00+99:99', 'the UTC offset +99:99 is outside -14:00 to +14:00'],
  ['2026-01-01T00:00:00-14:30', 'the UTC offset -14:30 is outside -14:00 to +14:00'],
  ['2026-01-01T00:00:00+05:60', 'the UTC offset +05:60 is outside -14:00 to +14:00'],
  ['2026-02-30T00:00:00Z', '2026-02-30 is not a date in the calendar'],
  ['2026-13-01T00:00:00Z', '2026-13-01 is not a date in the calendar'],
  ['2026-01-01T25:00:00Z', 'hour 25 is past 23'],
  ['2026-01-01T10:60:00Z', 'minute 60 is past 59'],
  ['2026-01-01T10:00:61Z', 'second 61 is past 59'],
];

describe('nothing is stored wrongly in silence', () => {
  it('profile datetimes that are impossible are rejected per record, naming the path and why', async () => {
    const records = [
      ...IMPOSSIBLE.map(([value], i) => ({
        identities: [{ namespace: 'email', id: `dt${i}@x.io` }],
        attributes: { person: { birthDate: value } },
      })),
      {
        identities: [{ namespace: 'email', id: 'fine@x.io' }],
        attributes: { person: { birthDate: '1990-05-17T00:00:00+14:00' } },
      },
    ];
    const res = ok(await server.gql(INGEST_PROFILES, { records })).ingestProfiles;
    expect(res).toMatchObject({ accepted: 1, rejected: IMPOSSIBLE.length });
    IMPOSSIBLE.forEach(([, reason], i) => {
      expect(res.errors[i].index).toBe(i);
      expect(res.errors[i].message).toBe(`Field "person.birthDate" must be an ISO-8601 datetime: ${reason}`);
    });
    const stored = ok(
      await server.gql('{ profile(identity: { namespace: "email", id: "fine@x.io" }) { attributes } }'),
    ).profile;
    expect(stored.attributes.person.birthDate).toBe('1990-05-16T10:00:00.000Z');
  });

  it('impossible event timestamps refuse the request; impossible datetimes in event data are rejected per record', async () => {
    const identity = { namespace: 'email', id: 'events@x.io' };
    // EventInput.timestamp is a DateTime: an impossible one is refused with the request, naming why.
    for (const [timestamp, reason] of [
      ['2026-01-01T00:00:00+99:99', 'the UTC offset +99:99 is outside -14:00 to +14:00'],
      ['2026-02-30T00:00:00Z', '2026-02-30 is not a date in the calendar'],
    ]) {
      const refused = await server.gql(INGEST_EVENTS, { events: [{ identity, eventType: 'web.view', timestamp }] });
      expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(refused.errors?.[0]?.message).toContain(reason);
    }
    const events = [
      {
        identity,
        eventType: 'delivery',
        timestamp: '2026-01-01T00:00:00Z',
        data: { _tenant: { deliveredAt: '2026-01-01T24:30:00Z' } },
      },
      { identity, eventType: 'web.view', timestamp: '2026-01-01T00:00:00-12:00' },
    ];
    const res = ok(await server.gql(INGEST_EVENTS, { events })).ingestEvents;
    expect(res).toMatchObject({ accepted: 1, rejected: 1 });
    expect(res.errors.map((e: { index: number; message: string }) => [e.index, e.message])).toEqual([
      [0, 'Field "_tenant.deliveredAt" must be an ISO-8601 datetime: hour 24 is past 23'],
    ]);
  });

  it('the DateTime scalar rejects the same values with BAD_USER_INPUT', async () => {
    for (const [value, reason] of IMPOSSIBLE) {
      const res = await server.gql(
        'query($at: DateTime) { evaluateProfile(identity: { namespace: "email", id: "fine@x.io" }, expression: "true", at: $at) { qualifies } }',
        { at: value },
      );
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(res.errors?.[0]?.message).toContain(reason);
    }
    const literal = await server.gql(
      '{ evaluateProfile(identity: { namespace: "email", id: "fine@x.io" }, expression: "true", at: "2026-01-01T00:00:00+99:99") { qualifies } }',
    );
    expect(literal.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const fine = await server.gql(
      '{ evaluateProfile(identity: { namespace: "email", id: "fine@x.io" }, expression: "true", at: "2026-01-01T00:00:00+14:00") { qualifies } }',
    );
    expect(ok(fine).evaluateProfile.qualifies).toBe(true);
  });

  it.each(['__proto__', 'constructor', 'prototype'])('refuses a schema path with the segment %s', async (segment) => {
    const res = await server.gql(
      `mutation { updateProfileSchema(input: { fields: [{ class: PROFILE, path: "_tenant.${segment}.x", type: "string" }] }) { fields { path } } }`,
    );
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.fields.0.path' });
    expect(res.errors?.[0]?.message).toContain(`"${segment}" cannot be a path segment`);
    const schema = ok(await server.gql('{ profileSchema { fields { path } } }'));
    expect(schema.profileSchema.fields.map((f: { path: string }) => f.path)).not.toContain(`_tenant.${segment}.x`);
  });

  it('a map key "__proto__" is a per-record error, not a dropped value', async () => {
    const records = [
      {
        identities: [{ namespace: 'email', id: 'proto@x.io' }],
        attributes: JSON.parse('{"_tenant": {"scores": {"__proto__": 5, "ok": 1}}}'),
      },
      { identities: [{ namespace: 'email', id: 'scores@x.io' }], attributes: { _tenant: { scores: { a: 1 } } } },
    ];
    const res = ok(await server.gql(INGEST_PROFILES, { records })).ingestProfiles;
    expect(res).toMatchObject({ accepted: 1, rejected: 1 });
    expect(res.errors[0]).toMatchObject({
      index: 0,
      message: 'Field "_tenant.scores.__proto__": the key "__proto__" cannot be stored',
    });
  });
});
