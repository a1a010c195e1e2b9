import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { ingestEventGroup, ingestEvents } from '../../src/domain/event-ingest.js';
import { IdentityCache, identityKey } from '../../src/domain/identity-cache.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { deleteProfile } from '../../src/domain/profiles.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

const NOW = Date.parse('2026-11-28T12:00:00Z');

let dir: string;
let conn: Connection;
let sandboxId: number;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'segql-identities-'));
  conn = openDatabase(join(dir, 'segql.db'));
  sandboxId = (await ensureSandbox(conn, 'prod')).id;
});
afterEach(() => {
  conn.close();
  rmSync(dir, { recursive: true, force: true });
});

const person = (name: string) => ({ namespace: 'email', id: `${name}@example.com` });
let n = 0;

/** Ingests one event for `who` and returns the profile it landed on. */
function eventFor(who: string, on: Connection = conn): number {
  const result = ingestEvents(
    on,
    sandboxId,
    [{ id: `e${n++}`, identity: person(who), timestamp: new Date(NOW).toISOString(), eventType: 'x', data: {} }],
    { now: NOW },
  );
  return result.profileIds[0]!;
}

/** The profile the store says `who` is, or undefined. */
function stored(who: string): number | undefined {
  return conn.sqlite
    .prepare('SELECT profile_id FROM identities WHERE namespace = ? AND value = ?')
    .pluck()
    .get('email', person(who).id) as number | undefined;
}

const profileExists = (id: number) => conn.sqlite.prepare('SELECT count(*) FROM profiles WHERE id = ?').pluck().get(id);

describe('event ingest finds profiles by identity', () => {
  it('follows identity stitching', () => {
    const ann = eventFor('ann');
    const bob = eventFor('bob');
    expect(eventFor('bob')).toBe(bob);
    ingestProfiles(conn, sandboxId, [{ identities: [person('ann'), person('bob')], attributes: {} }], { now: NOW });
    expect(eventFor('bob')).toBe(ann);
    expect(stored('bob')).toBe(ann);
  });

  it('follows a deleted profile, deleted here or by another connection', async () => {
    const ann = eventFor('ann');
    await deleteProfile(conn, sandboxId, person('ann'));
    const again = eventFor('ann');
    expect(again).not.toBe(ann);
    expect(profileExists(again)).toBe(1);
    const other = openDatabase(join(dir, 'segql.db'));
    try {
      await deleteProfile(other, sandboxId, person('ann'));
    } finally {
      other.close();
    }
    const third = eventFor('ann');
    expect(third).not.toBe(again);
    expect(profileExists(third)).toBe(1);
  });

  it('keeps nothing of a rolled-back ingest', () => {
    const [outcome] = ingestEventGroup(
      conn,
      [
        {
          sandboxId,
          events: [{ id: 'c1', identity: person('cid'), timestamp: new Date(NOW).toISOString(), eventType: 'x' }],
        },
      ],
      {
        now: NOW,
        onProfilesChanged: () => {
          throw new Error('shared step failed');
        },
      },
    );
    expect(outcome!.ok).toBe(false);
    expect(stored('cid')).toBeUndefined();
    // dan may well get the id cid's profile had in the rolled-back transaction.
    const dan = eventFor('dan');
    const cid = eventFor('cid');
    expect(cid).not.toBe(dan);
    expect(stored('cid')).toBe(cid);
  });
});

describe('the identity cache itself', () => {
  const key = (value: string) => identityKey(1, 'email', value);
  const found = (...values: string[]) => values.map((v) => ({ key: key(v), profileId: v.charCodeAt(0) }));

  it('keeps at most its capacity, and drops those found longest ago first', () => {
    const cache = new IdentityCache(conn, 6);
    const mark = cache.begin();
    cache.keep(mark, found('a', 'b', 'c'));
    // Found again: kept past the drop that takes b and c.
    cache.keep(mark, found('a'));
    cache.keep(mark, found('d', 'e'));
    expect([...'abcde'].map((v) => cache.get(key(v)))).toEqual([97, undefined, undefined, 100, 101]);
    cache.keep(mark, found('f', 'g', 'h', 'i', 'j', 'k', 'l'));
    expect(cache.size).toBeLessThanOrEqual(6);
    expect(cache.get(key('l'))).toBe(108);
  });

  it('answers with the profile found last for an identity', () => {
    const cache = new IdentityCache(conn, 4);
    const mark = cache.begin();
    cache.keep(mark, [
      { key: key('a'), profileId: 1 },
      { key: key('b'), profileId: 2 },
    ]);
    // a and b are the older half now; a later find of a wins over it.
    cache.keep(mark, [{ key: key('a'), profileId: 3 }]);
    expect(cache.get(key('a'))).toBe(3);
    expect(cache.get(key('b'))).toBe(2);
    expect(cache.size).toBe(2);
  });
});
