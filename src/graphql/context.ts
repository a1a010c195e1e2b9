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
  /** The loaders made so far, by name. */
  readonly #made = new Map<string, DataLoader<number, unknown>>();
  #folders?: Promise<Map<number, Folder>>;

  constructor(
    private readonly conn: Store,
    private readonly sandboxId: number,
  ) {}

  /** The loader `name`, made on first use from its batch read. */
  #loader<V>(
    name: string,
    load: (conn: Store, sandboxId: number, ids: readonly number[]) => Map<number, V> | Promise<Map<number, V>>,
    missing: V,
  ) {
    let loader = this.#made.get(name) as DataLoader<number, V> | undefined;
    if (!loader) {
      loader = batched((ids) => load(this.conn, this.sandboxId, ids), missing);
      this.#made.set(name, loader as DataLoader<number, unknown>);
    }
    return loader;
  }

  get profile() {
    return this.#loader<Profile | undefined>('profile', profilesByIds, undefined);
  }

  get identities() {
    return this.#loader<Identity[]>('identities', identitiesOf, []);
  }

  get audience() {
    return this.#loader<Audience | undefined>('audience', audiencesByIds, undefined);
  }

  get definition() {
    return this.#loader<SegmentDefinition | undefined>('definition', definitionsByIds, undefined);
  }

  /** Definition ids that name an audience through inSegment. */
  get dependents() {
    return this.#loader<number[]>('dependents', dependentDefinitions, []);
  }

  /** Audience ids a definition names through inSegment. */
  get dependsOn() {
    return this.#loader<number[]>('dependsOn', dependenciesOf, []);
  }

  get segmentJob() {
    return this.#loader<SegmentJob | undefined>(
      'segmentJob',
      (conn, sandboxId, ids) => jobsByIds(conn, sandboxId, [...ids], 'SEGMENT'),
      undefined,
    );
  }

  /** Per definition id, the newest segment job that evaluates it. */
  get latestSegmentJob() {
    return this.#loader<SegmentJob | undefined>('latestSegmentJob', latestSegmentJobs, undefined);
  }

  get memberships() {
    return this.#loader<Membership[]>('memberships', membershipsOfProfiles, []);
  }

  get schedule() {
    return this.#loader<Schedule | undefined>('schedule', schedulesByIds, undefined);
  }

  /** Which schedule keeps an audience fresh, and whether its last run went wrong. */
  get freshness() {
    return this.#loader<Freshness>('freshness', audienceFreshness, { scheduleId: null, stale: null });
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
