/**
 * The ingest writer of a pooled database (PostgreSQL): each request of a group in a unit of its
 * own (pooled-ingest.ts), and inside that unit, before it commits, the steps SQLite's writer runs
 * inside its transaction — an external audience's pending members for the identities the ingest
 * stored first, then streaming segmentation of the profiles it changed (streaming-pooled.ts).
 * Their membership changes are published once the unit has committed. A sweep on a timer exits
 * the members of time-dependent streaming audiences whose window has passed, sandbox by sandbox.
 *
 * SQLite writes a group in one transaction because its one writer is the bottleneck; on the pool
 * requests commit on clients of their own, serialised per sandbox by the ingest lock, so a
 * request that fails fails alone without a retry pass.
 */
import type { Logger } from 'pino';
import type { IngestLimits } from '../config.js';
import type { Store } from '../db/store.js';
import type { UnitOf } from '../db/unit.js';
import type { EventRequestOutcome } from './event-ingest.js';
import type { EventBus } from './events.js';
import { resolvePendingMembersOn } from './external-audiences/pending-members.js';
import type { GroupReply, IngestWrite, IngestWriter } from './ingest-writer.js';
import type { MembershipChange } from './memberships.js';
import { type ChangedProfiles, ingestEventsPooled, ingestProfilesPooled } from './pooled-ingest.js';
import { readCatalog } from './profile-schema.js';
import { publishMembershipChanges } from './streaming.js';
import { segmentProfilesPooled, streamingSandboxIds, sweepExpiredPooled } from './streaming-pooled.js';

export class PooledIngestWriter implements IngestWriter {
  // Each group is a unit of its own under the sandbox's ingest lock: one at a time.
  readonly depth = 1;
  /** A group is a unit of round trips, whose statements take its events many at a time. */
  readonly groupEvents = 200;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      store: Store;
      limits: IngestLimits;
      bus: Pick<EventBus, 'publishAll'>;
      log: Logger;
      /** How often the expiry sweep runs. */
      sweepMs: number;
    },
  ) {}

  async write(group: IngestWrite[]): Promise<GroupReply> {
    const outcomes: EventRequestOutcome[] = [];
    for (const request of group) {
      try {
        outcomes.push({ ok: true, result: await this.writeOne(request) });
      } catch (error) {
        outcomes.push({ ok: false, error });
      }
    }
    return { busy: false, outcomes };
  }

  private async writeOne(request: IngestWrite) {
    const { store, limits } = this.deps;
    const { sandboxId } = request;
    const catalog = await readCatalog(store, sandboxId);
    const changes: MembershipChange[] = [];
    // What SQLite's writer runs inside its transaction, in the same order: a profile that arrives
    // after a list named it joins before the streaming step sees it.
    const inUnit = async (tx: UnitOf<Store>, changed: ChangedProfiles) => {
      changes.push(...(await resolvePendingMembersOn(tx, sandboxId, changed.newIdentities, changed.now)));
      changes.push(
        ...(await segmentProfilesPooled(tx, sandboxId, changed.profileIds, changed.now, {
          added: changed.added,
          written: changed.written,
          cause: 'streaming',
        })),
      );
    };
    const result =
      request.kind === 'profile'
        ? (await ingestProfilesPooled(store, sandboxId, request.records, { catalog, limits, inUnit })).result
        : (await ingestEventsPooled(store, sandboxId, request.events, { catalog, limits, inUnit })).result;
    // The unit has committed: what it changed can be told.
    publishMembershipChanges(this.deps.bus, changes);
    return result;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.sweeping ??= this.sweep().finally(() => {
        this.sweeping = undefined;
      });
    }, this.deps.sweepMs);
    this.timer.unref();
  }

  /** Exits expired members, one unit per sandbox, and publishes each sandbox's changes after its commit. */
  async sweep(now = Date.now()): Promise<void> {
    const { store, bus, log } = this.deps;
    try {
      for (const sandboxId of await streamingSandboxIds(store)) {
        publishMembershipChanges(bus, await sweepExpiredPooled(store, sandboxId, now));
      }
    } catch (err) {
      log.error({ err }, 'streaming sweep failed');
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }
}
