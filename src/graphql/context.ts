import DataLoader from 'dataloader';
import type { Logger } from 'pino';
import type { Limits } from '../config.js';
import type { Connection } from '../db/index.js';
import type { App } from '../domain/app.js';
import { type Identity, identitiesOf, type Profile, profilesByIds } from '../domain/profiles.js';
import type { Sandbox } from '../domain/sandboxes.js';
import type { Metrics } from '../metrics.js';

export interface Context {
  app: App;
  conn: Connection;
  sandbox: Sandbox;
  limits: Limits;
  requestId: string;
  log: Logger;
  loaders: Loaders;
  metrics: Metrics;
  /** Aborted when the request or subscription ends. */
  signal?: AbortSignal;
}

/** One set per request, so batching never leaks data across requests or sandboxes. */
export function createLoaders(conn: Connection, sandboxId: number) {
  return {
    profile: new DataLoader<number, Profile | undefined>(async (ids) => {
      const found = profilesByIds(conn, sandboxId, ids);
      return ids.map((id) => found.get(id));
    }),
    identities: new DataLoader<number, Identity[]>(async (ids) => {
      const found = identitiesOf(conn, sandboxId, ids);
      return ids.map((id) => found.get(id) ?? []);
    }),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
