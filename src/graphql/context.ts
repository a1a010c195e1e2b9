import DataLoader from 'dataloader';
import type { Logger } from 'pino';
import type { Limits } from '../config.js';
import type { Store } from '../db/store.js';
import type { Principal } from '../domain/api-keys.js';
import type { App } from '../domain/app.js';
import { type Audience, audiencesByIds, dependentDefinitions } from '../domain/audiences.js';
import { definitionsByIds, dependenciesOf, type SegmentDefinition } from '../domain/definitions.js';
import { allFolders, type Folder } from '../domain/folders.js';
import { jobsByIds } from '../domain/jobs/job-store.js';
import { type Membership, membershipsOfProfiles } from '../domain/memberships.js';
import { type Identity, identitiesOf, type Profile, profilesByIds } from '../domain/profiles.js';
import type { Sandbox } from '../domain/sandboxes.js';
import { audienceFreshness, type Freshness } from '../domain/schedules/freshness.js';
import { type Schedule, schedulesByIds } from '../domain/schedules/schedule-store.js';
import { latestSegmentJobs } from '../domain/segment-jobs/latest-jobs.js';
import type { SegmentJob } from '../domain/segment-jobs/segment-job.js';
import type { Metrics } from '../metrics.js';

export interface Context {
  app: App;
  /** Who is asking: the API key's scopes and sandboxes (everything when the server runs open). */
  principal: Principal;
  conn: Store;
  sandbox: Sandbox;
  limits: Limits;
  requestId: string;
  log: Logger;
  loaders: Loaders;
  metrics: Metrics;
  /** Aborted when the request or subscription ends. */
  signal?: AbortSignal;
}

/** A loader that batches ids into one `Map`-returning domain call. */
function batched<V>(load: (ids: readonly number[]) => Map<number, V> | Promise<Map<number, V>>, missing: V) {
  return new DataLoader<number, V>(async (ids) => {
    const found = await load(ids);
    return ids.map((id) => found.get(id) ?? missing);
  });
}

/**
 * One set per request, so batching never leaks data across requests or sandboxes. Every
 * relation a page of entities touches goes through one of these, so a page costs a constant
 * number of SQL statements whatever its size. Each loader is made when first used: most
 * requests touch one or two of them, and making all eleven (each a DataLoader with its cache
 * Map) was a tenth of the garbage of a light request (the `edge` bench, where every collection
 * is in the latency tail).
 */
export class Loaders {
  #profile?: DataLoader<number, Profile | undefined>;
  #identities?: DataLoader<number, Identity[]>;
  #audience?: DataLoader<number, Audience | undefined>;
  #definition?: DataLoader<number, SegmentDefinition | undefined>;
  #dependents?: DataLoader<number, number[]>;
  #dependsOn?: DataLoader<number, number[]>;
  #segmentJob?: DataLoader<number, SegmentJob | undefined>;
  #latestSegmentJob?: DataLoader<number, SegmentJob | undefined>;
  #memberships?: DataLoader<number, Membership[]>;
  #schedule?: DataLoader<number, Schedule | undefined>;
  #freshness?: DataLoader<number, Freshness>;
  #folders?: Promise<Map<number, Folder>>;

  constructor(
    private readonly conn: Store,
    private readonly sandboxId: number,
  ) {}

  get profile() {
    this.#profile ??= batched((ids) => profilesByIds(this.conn, this.sandboxId, ids), undefined);
    return this.#profile;
  }

  get identities() {
    this.#identities ??= batched((ids) => identitiesOf(this.conn, this.sandboxId, ids), []);
    return this.#identities;
  }

  get audience() {
    this.#audience ??= batched((ids) => audiencesByIds(this.conn, this.sandboxId, ids), undefined);
    return this.#audience;
  }

  get definition() {
    this.#definition ??= batched((ids) => definitionsByIds(this.conn, this.sandboxId, ids), undefined);
    return this.#definition;
  }

  /** Definition ids that name an audience through inSegment. */
  get dependents() {
    this.#dependents ??= batched((ids) => dependentDefinitions(this.conn, this.sandboxId, ids), []);
    return this.#dependents;
  }

  /** Audience ids a definition names through inSegment. */
  get dependsOn() {
    this.#dependsOn ??= batched((ids) => dependenciesOf(this.conn, this.sandboxId, ids), []);
    return this.#dependsOn;
  }

  get segmentJob() {
    this.#segmentJob ??= batched((ids) => jobsByIds(this.conn, this.sandboxId, [...ids], 'SEGMENT'), undefined);
    return this.#segmentJob;
  }

  /** Per definition id, the newest segment job that evaluates it. */
  get latestSegmentJob() {
    this.#latestSegmentJob ??= batched((ids) => latestSegmentJobs(this.conn, this.sandboxId, ids), undefined);
    return this.#latestSegmentJob;
  }

  get memberships() {
    this.#memberships ??= batched((ids) => membershipsOfProfiles(this.conn, this.sandboxId, ids), []);
    return this.#memberships;
  }

  get schedule() {
    this.#schedule ??= batched((ids) => schedulesByIds(this.conn, this.sandboxId, ids), undefined);
    return this.#schedule;
  }

  /** Which schedule keeps an audience fresh, and whether its last run went wrong. */
  get freshness() {
    this.#freshness ??= batched((ids) => audienceFreshness(this.conn, this.sandboxId, ids), {
      scheduleId: null,
      stale: null,
    });
    return this.#freshness;
  }

  /** The sandbox's folder tree, read once per request (folders are a small taxonomy). */
  folders(): Promise<Map<number, Folder>> {
    this.#folders ??= allFolders(this.conn, this.sandboxId);
    return this.#folders;
  }
}

export function createLoaders(conn: Store, sandboxId: number): Loaders {
  return new Loaders(conn, sandboxId);
}

const loadersPerEvent = new WeakMap<object, Map<number, Loaders>>();

/**
 * A subscription's context lives as long as the subscription: each event gets new loaders, so
 * it shows the data as of that event and a long subscription does not keep every row it ever
 * loaded (a thousand subscribers held hundreds of MB that way: the subs bench). The loaders
 * belong to the event: every subscriber of the sandbox that gets the same published event
 * shares them, so a thousand subscribers resolving one change cost one batch of statements,
 * not a thousand (what they may see is decided per field by the scopes, not by the loaders).
 */
export function renewLoaders(ctx: Context, event: object): void {
  let perSandbox = loadersPerEvent.get(event);
  if (!perSandbox) {
    perSandbox = new Map();
    loadersPerEvent.set(event, perSandbox);
  }
  let loaders = perSandbox.get(ctx.sandbox.id);
  if (!loaders) {
    loaders = createLoaders(ctx.conn, ctx.sandbox.id);
    perSandbox.set(ctx.sandbox.id, loaders);
  }
  ctx.loaders = loaders;
}

/** Whether `ctx` resolves through `event`'s own loaders (renewLoaders), shared by its subscribers. */
export function resolvesThroughEventLoaders(ctx: Context, event: object): boolean {
  return loadersPerEvent.get(event)?.get(ctx.sandbox.id) === ctx.loaders;
}
