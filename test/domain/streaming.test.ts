import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import {
  createSegmentDefinition,
  type SegmentDefinition,
  updateSegmentDefinition,
} from '../../src/domain/definitions.js';
import { evaluateProfile } from '../../src/domain/evaluation.js';
import { ingestEvents } from '../../src/domain/event-ingest.js';
import { ingestProfiles } from '../../src/domain/profile-ingest.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import {
  segmentProfiles,
  streamingDefinitions,
  streamingEvaluationsTotal,
  streamingPlan,
  sweepExpired,
} from '../../src/domain/streaming.js';
import { createStreamingDefinition } from './streaming-definition.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-11-28T12:00:00Z');

describe('streaming segmentation', () => {
  it('agrees with evaluating the whole stored profile, though it reads only the last 24 h of events', async () => {
    const conn = openDatabase(':memory:');
    const sandboxId = (await ensureSandbox(conn, 'prod')).id;
    const sources = [
      'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 1 hour before now].count() = 0',
      'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 24 hours before now].count() >= 2',
      'loyalty.points > 10',
    ];
    const definitions: SegmentDefinition[] = [];
    for (const [i, value] of sources.entries()) {
      definitions.push(
        await createSegmentDefinition(
          conn,
          sandboxId,
          {
            name: `s${i}`,
            expression: { format: 'PQL_TEXT', value },
            evaluationInfo: { batch: true, streaming: true, edge: false },
            lifecycleState: 'PUBLISHED',
          },
          NOW,
        ),
      );
    }
    const chained = await createSegmentDefinition(
      conn,
      sandboxId,
      {
        name: 'chained',
        expression: { format: 'PQL_TEXT', value: 'inSegment("s1")' },
        evaluationInfo: { batch: true, streaming: true, edge: false },
        lifecycleState: 'PUBLISHED',
      },
      NOW,
    );
    // Dependency order: s1 before the definition reading it.
    const order = streamingDefinitions(conn, sandboxId).map((d) => d.name);
    expect(order.indexOf('s1')).toBeLessThan(order.indexOf('chained'));
    const people = [0, 1, 2, 3].map((i) => ({ namespace: 'email', id: `p${i}@example.com` }));
    ingestProfiles(
      conn,
      sandboxId,
      people.map((identity, i) => ({ identities: [identity], attributes: { loyalty: { points: i * 10 } } })),
      { now: NOW },
    );
    // Old purchases (beyond any streaming window) and recent ones.
    const at = (ms: number) => new Date(NOW - ms).toISOString();
    const purchases = [
      [0, 30 * 24 * HOUR],
      [0, 48 * HOUR],
      [1, 30 * HOUR],
      [1, 2 * HOUR],
      [1, 3 * HOUR],
      [2, 30 * 60_000],
      [2, 20 * HOUR],
      [3, 25 * HOUR],
    ] as const;
    ingestEvents(
      conn,
      sandboxId,
      purchases.map(([who, ago], n) => ({
        id: `e${n}`,
        identity: people[who]!,
        timestamp: at(ago),
        eventType: 'commerce.purchases',
        data: {},
      })),
      { now: NOW },
    );
    const ids = conn.sqlite.prepare('SELECT id FROM profiles ORDER BY id').pluck().all() as number[];
    const changes = segmentProfiles(conn, sandboxId, ids, NOW);
    expect(changes.every((c) => c.cause === 'streaming' && c.to === 'REALIZED')).toBe(true);
    for (const [i, identity] of people.entries()) {
      const whole = evaluateProfile(conn, sandboxId, identity, {
        at: NOW,
        audienceIds: [...definitions, chained].map((d) => d.audienceId),
      });
      const streamed = new Set(changes.filter((c) => c.profileId === ids[i]).map((c) => c.audienceId));
      expect([...streamed].sort(), identity.id).toEqual([...whole.audienceIds].sort());
    }
    // p1 has two purchases within 24 h: s1 and, in the same pass, chained.
    const p1 = changes.filter((c) => c.profileId === ids[1]).map((c) => c.audienceId);
    expect(p1).toContain(chained.audienceId);
    // An hour and a half later p2's purchase has left the 1-hour window: s0 holds again, which
    // the sweep does not add (it only drops), and nothing it holds has expired.
    expect(sweepExpired(conn, sandboxId, NOW + 90 * 60_000)).toEqual([]);
    // A day later the 24-hour counts are empty: p1 and p2 leave s1; evaluated again, both leave
    // chained (which reads s1), and p2, whose last purchase is no longer within the hour, enters s0.
    const expired = sweepExpired(conn, sandboxId, NOW + 26 * HOUR);
    const [s0, s1] = [definitions[0]!.audienceId, definitions[1]!.audienceId];
    expect(expired.map((c) => [c.audienceId, c.profileId, c.from, c.to, c.cause])).toEqual([
      [s1, ids[1], 'REALIZED', 'EXITED', 'expiry'],
      [s1, ids[2], 'REALIZED', 'EXITED', 'expiry'],
      [chained.audienceId, ids[1], 'REALIZED', 'EXITED', 'expiry'],
      [s0, ids[2], null, 'REALIZED', 'expiry'],
      [chained.audienceId, ids[2], 'REALIZED', 'EXITED', 'expiry'],
    ]);
    expect(sweepExpired(conn, sandboxId, NOW + 27 * HOUR)).toEqual([]);

    // A definition changed since (streaming turned off, or a new expression) is planned anew.
    await updateSegmentDefinition(conn, sandboxId, definitions[2]!.id, {
      evaluationInfo: { batch: true, streaming: false, edge: false },
    });
    expect(streamingDefinitions(conn, sandboxId).map((d) => d.name)).not.toContain('s2');
    await updateSegmentDefinition(conn, sandboxId, chained.id, {
      expression: { format: 'PQL_TEXT', value: 'loyalty.points > 25' },
    });
    const later = segmentProfiles(conn, sandboxId, ids, NOW + 28 * HOUR);
    // p3 (30 points) enters the changed definition; p2 (20 points) stays out; s2 is not evaluated.
    expect(later.filter((c) => c.audienceId === chained.audienceId).map((c) => [c.profileId, c.to])).toEqual([
      [ids[3], 'REALIZED'],
    ]);
    expect(later.some((c) => c.audienceId === definitions[2]!.audienceId)).toBe(false);
  });

  it('evaluates for new events only the definitions that read their type', async () => {
    const conn = openDatabase(':memory:');
    const sandboxId = (await ensureSandbox(conn, 'prod')).id;
    const define = (name: string, value: string) => createStreamingDefinition(conn, sandboxId, name, value, NOW);
    const buyers = await define(
      'buyers',
      'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 1 hour before now].count() >= 1',
    );
    const viewers = await define(
      'viewers',
      'xEvent[eventType = "web.pageView" and timestamp occurs <= 1 hour before now].count() >= 1',
    );
    const loyal = await define('loyal', 'loyalty.points > 10');
    const chained = await define('chained', 'inSegment("viewers")');
    const all = [buyers, viewers, loyal, chained].map((d) => d.audienceId);
    const hook = {
      onProfilesChanged: (id: number, ids: number[], now: number, added?: ReadonlyMap<number, ReadonlySet<string>>) => {
        segmentProfiles(conn, id, ids, now, 'streaming', added);
        return undefined;
      },
    };
    const ann = { namespace: 'email', id: 'ann@example.com' };
    ingestProfiles(conn, sandboxId, [{ identities: [ann], attributes: { loyalty: { points: 20 } } }], {
      now: NOW,
      ...hook,
    });
    const members = () =>
      conn.sqlite
        .prepare("SELECT audience_id FROM memberships WHERE status = 'REALIZED' ORDER BY audience_id")
        .pluck()
        .all() as number[];
    expect(members()).toEqual([loyal.audienceId]);

    // A page view: the definition on purchases and the one on attributes are not evaluated.
    const before = streamingEvaluationsTotal();
    const view = (id: string, identity: typeof ann) => ({
      id,
      identity,
      timestamp: new Date(NOW).toISOString(),
      eventType: 'web.pageView',
      data: {},
    });
    ingestEvents(conn, sandboxId, [view('v1', ann)], { now: NOW, ...hook });
    expect(streamingEvaluationsTotal() - before).toBe(2);
    expect(members()).toEqual([viewers.audienceId, loyal.audienceId, chained.audienceId].sort((a, b) => a - b));
    expect(evaluateProfile(conn, sandboxId, ann, { at: NOW, audienceIds: all }).audienceIds.sort()).toEqual(
      [viewers.audienceId, loyal.audienceId, chained.audienceId].sort(),
    );

    // A profile the events make is new: every definition meets it.
    const bob = { namespace: 'email', id: 'bob@example.com' };
    const next = streamingEvaluationsTotal();
    ingestEvents(conn, sandboxId, [view('v2', bob)], { now: NOW, ...hook });
    expect(streamingEvaluationsTotal() - next).toBe(4);
  });
});

describe('the streaming plan of a connection others write definitions for (the ingest thread)', () => {
  it('is read again only after another connection commits, and then sees its change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segql-plan-'));
    try {
      const file = join(dir, 'segql.db');
      const main = openDatabase(file);
      const sandboxId = (await ensureSandbox(main, 'prod')).id;
      await createStreamingDefinition(main, sandboxId, 'points', 'loyalty.points > 10', NOW);
      const thread = openDatabase(file, { migrate: false });
      const first = streamingPlan(thread, sandboxId, true);
      expect(first.definitions.map((d) => d.name)).toEqual(['points']);
      // Nothing committed elsewhere: the plan is not read again. Shown by a definition this
      // connection writes itself, which it is promised never to do: the kept plan does not see it.
      await createStreamingDefinition(thread, sandboxId, 'unseen', 'loyalty.points > 99', NOW);
      expect(streamingPlan(thread, sandboxId, true)).toBe(first);
      // The plain plan reads the versions every time.
      expect(
        streamingPlan(thread, sandboxId)
          .definitions.map((d) => d.name)
          .sort(),
      ).toEqual(['points', 'unseen']);
      // The main thread's connection adds a definition: the next call reads the plan again.
      await createStreamingDefinition(main, sandboxId, 'gold', 'loyalty.tier = "gold"', NOW);
      const second = streamingPlan(thread, sandboxId, true);
      expect(second.definitions.map((d) => d.name).sort()).toEqual(['gold', 'points', 'unseen']);
      expect(streamingPlan(thread, sandboxId, true)).toBe(second);
      thread.close();
      main.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
