/**
 * What a SQLite segment job writes: exactly the transitions between the memberships before it
 * and after it, each with its history row, and nothing for a member whose status stays — so the
 * daily re-run over unchanged data writes no membership row at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSegmentStore, type SegmentStore } from '../db/segment-store.js';

interface Row {
  audience_id: number;
  profile_id: number;
  status: string;
}

type Transition = [audienceId: number, profileId: number, from: string | null, to: string];

/** The transitions from one snapshot of memberships to the next, as history rows state them. */
function transitions(before: readonly Row[], after: readonly Row[]): Transition[] {
  const was = new Map(before.map((r) => [`${r.audience_id}:${r.profile_id}`, r.status]));
  const out: Transition[] = [];
  for (const r of after) {
    const from = was.get(`${r.audience_id}:${r.profile_id}`) ?? null;
    if (from !== r.status) out.push([r.audience_id, r.profile_id, from, r.status]);
  }
  return out.sort(byKey);
}

function byKey(a: Transition, b: Transition): number {
  return a[0] - b[0] || a[1] - b[1];
}

describe('a segment job on SQLite', () => {
  let store: SegmentStore;

  beforeAll(async () => {
    store = await buildSegmentStore('job-writes', 1_500);
    // Counts the job's writes to memberships (a temp trigger: this connection's writes, the job's).
    store.conn.sqlite.exec(`
      CREATE TEMP TABLE member_writes (kind TEXT NOT NULL);
      CREATE TEMP TRIGGER member_insert AFTER INSERT ON main.memberships BEGIN INSERT INTO member_writes VALUES ('insert'); END;
      CREATE TEMP TRIGGER member_update AFTER UPDATE ON main.memberships BEGIN INSERT INTO member_writes VALUES ('update'); END;
    `);
  }, 60_000);
  afterAll(() => store?.close());

  const memberships = () =>
    store.conn.sqlite
      .prepare('SELECT audience_id, profile_id, status FROM memberships ORDER BY audience_id, profile_id')
      .all() as Row[];
  const lastHistoryId = () =>
    (store.conn.sqlite.prepare('SELECT coalesce(max(id), 0) AS n FROM membership_history').get() as { n: number }).n;
  const historyAfter = (id: number): Transition[] =>
    (
      store.conn.sqlite
        .prepare('SELECT audience_id, profile_id, from_status, to_status FROM membership_history WHERE id > ?')
        .raw()
        .all(id) as Transition[]
    ).sort(byKey);
  const writes = () => {
    const counts = store.conn.sqlite
      .prepare('SELECT kind, count(*) AS n FROM temp.member_writes GROUP BY kind')
      .all() as { kind: string; n: number }[];
    store.conn.sqlite.exec('DELETE FROM temp.member_writes');
    return Object.fromEntries(counts.map((c) => [c.kind, c.n]));
  };

  /** Runs a job; what it changed, its history rows and its writes to memberships. */
  const job = async () => {
    const before = memberships();
    const mark = lastHistoryId();
    writes();
    const metrics = await store.runSqliteJob();
    const after = memberships();
    return {
      before,
      after,
      changed: transitions(before, after),
      history: historyAfter(mark),
      writes: writes(),
      metrics,
    };
  };

  it('writes each transition once with its history, and nothing for a member that stays', async () => {
    // A first evaluation: every qualifying profile enters.
    const first = await job();
    expect(first.before).toEqual([]);
    expect(first.after.length).toBeGreaterThan(500);
    expect(first.after.every((r) => r.status === 'REALIZED')).toBe(true);
    expect(first.history).toEqual(first.changed);
    expect(first.writes).toEqual({ insert: first.after.length });

    // The first re-run: every member stays, REALIZED → EXISTING.
    const second = await job();
    expect(second.changed.length).toBe(first.after.length);
    expect(second.changed.every(([, , from, to]) => from === 'REALIZED' && to === 'EXISTING')).toBe(true);
    expect(second.history).toEqual(second.changed);
    expect(second.writes).toEqual({ update: first.after.length });

    // The daily re-run over unchanged data: no row written, no history.
    const steady = await job();
    expect(steady.after).toEqual(second.after);
    expect(steady.history).toEqual([]);
    expect(steady.writes).toEqual({});
    for (const counts of Object.values(steady.metrics.segmentedProfileByStatusCounter)) {
      expect(counts.realized).toBe(0);
      expect(counts.exited).toBe(0);
    }

    // A third of a fifth of the profiles leave the Nordics, the rest of that fifth moves there.
    store.conn.sqlite.exec(
      `UPDATE profiles SET attributes = jsonb_set(attributes, '$.homeAddress.countryCode', CASE WHEN id % 3 = 0 THEN 'US' ELSE 'SE' END) WHERE id % 5 = 0`,
    );
    const moved = await job();
    const exits = moved.changed.filter(([, , , to]) => to === 'EXITED');
    const entries = moved.changed.filter(([, , , to]) => to === 'REALIZED');
    expect(exits.length).toBeGreaterThan(0);
    expect(entries.length).toBeGreaterThan(0);
    expect(exits.every(([, , from]) => from === 'EXISTING')).toBe(true);
    expect(moved.history).toEqual(moved.changed);
    expect((moved.writes.insert ?? 0) + (moved.writes.update ?? 0)).toBe(moved.changed.length);

    // Back as they were: those who left enter again from EXITED, those who came leave.
    store.conn.sqlite.exec(
      `UPDATE profiles SET attributes = jsonb_set(attributes, '$.homeAddress.countryCode', CASE WHEN id % 3 = 0 THEN 'SE' ELSE 'US' END) WHERE id % 5 = 0`,
    );
    const back = await job();
    const reentered = back.changed.filter(([, , from, to]) => from === 'EXITED' && to === 'REALIZED');
    expect(reentered.length).toBeGreaterThan(0);
    expect(back.history).toEqual(back.changed);
    expect(back.writes.insert ?? 0).toBe(back.changed.filter(([, , from]) => from === null).length);
    expect((back.writes.insert ?? 0) + (back.writes.update ?? 0)).toBe(back.changed.length);
  }, 120_000);
});
