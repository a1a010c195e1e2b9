/**
 * A small segmentation store in a temporary SQLite file: demo profiles and events (the seeded
 * generator the benchmarks use, at a fixed instant) and the twenty reference definitions of
 * bench/definitions.pql as published audiences — attribute filters, string and date functions,
 * event windows and counts, inSegment chains. Tests that compare two ways of evaluating (SQLite
 * and PostgreSQL, one node and several) start from it.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefinitions } from '../../bench/lib.js';
import { type Connection, openDatabase } from '../../src/db/index.js';
import { createSegmentDefinition, type SegmentDefinition } from '../../src/domain/definitions.js';
import { seedDemoData } from '../../src/domain/demo-data.js';
import { insertJob, updateJob } from '../../src/domain/jobs/job-store.js';
import { runJobTask } from '../../src/domain/jobs/task.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';
import { evaluateSegmentPlan, type SegmentMetrics } from '../../src/domain/segment-jobs/segment-evaluation.js';
import { orderedPlan } from '../../src/domain/segment-jobs/segment-job.js';

/** The instant the store is seeded at and evaluated at: 2026-11-01 00:00 UTC. */
export const STORE_NOW = Date.UTC(2026, 10, 1);

export interface SegmentStore {
  conn: Connection;
  file: string;
  sandboxId: number;
  definitions: SegmentDefinition[];
  /** The single-process segment job over the twenty definitions at STORE_NOW, as the job worker runs it. */
  runSqliteJob(): Promise<SegmentMetrics>;
  close(): void;
}

export async function buildSegmentStore(label: string, profiles: number, eventsPerProfile = 10): Promise<SegmentStore> {
  const file = join(tmpdir(), `segql-${label}-${process.pid}-${Date.now()}.db`);
  const conn = openDatabase(file);
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  seedDemoData(conn, sandboxId, { profiles, eventsPerProfile, seed: 42, now: STORE_NOW });
  const definitions: SegmentDefinition[] = [];
  for (const d of loadDefinitions()) {
    definitions.push(
      await createSegmentDefinition(
        conn,
        sandboxId,
        { name: d.name, expression: { format: 'PQL_TEXT', value: d.text }, lifecycleState: 'PUBLISHED' },
        STORE_NOW,
      ),
    );
  }
  return {
    conn,
    file,
    sandboxId,
    definitions,
    async runSqliteJob() {
      const definitionIds = definitions.map((d) => d.id);
      const job = await insertJob(conn, sandboxId, 'SEGMENT', { definitionIds, all: false, at: STORE_NOW });
      await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
      const plan = await orderedPlan(conn, sandboxId, definitions, {
        jobId: job.id,
        now: STORE_NOW,
        chunkSize: 1_000,
        notes: [],
      });
      return runJobTask(conn, job.id, evaluateSegmentPlan, plan, { progress: () => {}, cancelled: () => false })
        .metrics;
    },
    close() {
      conn.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
    },
  };
}
