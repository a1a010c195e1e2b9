/**
 * A restart through the composition root the server uses (createApp / closeApp), on a database
 * file and a clock moved by hand: the scheduler is started the way the server starts it, after
 * the job runner, and the catch-up run is a real job that the runner then completes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, databaseFile } from '../../../src/config.js';
import { type Connection, openDatabase } from '../../../src/db/index.js';
import { type App, closeApp, createApp } from '../../../src/domain/app.js';
import { jobById, listJobs } from '../../../src/domain/jobs/job-store.js';
import { ensureSandbox } from '../../../src/domain/sandboxes.js';
import { listTicks } from '../../../src/domain/schedules/schedule-ticks.js';
import { ManualClock } from './manual-clock.js';

const MINUTE = 60_000;
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function boot(dataDir: string, clock: ManualClock): Promise<{ conn: Connection; app: App }> {
  const conn = openDatabase(databaseFile(dataDir));
  const log = pino({ level: 'silent' });
  return { conn, app: await createApp({ conn, limits: DEFAULT_LIMITS, log, dataDir, clock }) };
}

async function shutdown({ conn, app }: { conn: Connection; app: App }): Promise<void> {
  await closeApp(app);
  conn.close();
}

describe('a server restart', () => {
  it('after 10 due times passed while down, runs once at start and records the other 9 as MISSED', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'segql-schedule-restart-'));
    dirs.push(dataDir);
    const clock = new ManualClock(Date.parse('2026-11-28T12:00:30.000Z'));
    const first = await boot(dataDir, clock);
    const sandboxId = (await ensureSandbox(first.conn, 'prod')).id;
    const schedule = await first.app.schedules.create(sandboxId, {
      name: 'minutely',
      type: 'BATCH_SEGMENTATION',
      properties: { segments: ['*'] },
      cron: '* * * * *',
    });
    await shutdown(first);
    expect(clock.pending).toBe(0);

    // Down from 12:00:30 to 12:10:30: the due times 12:01 … 12:10 pass with no server.
    await clock.advance(10 * MINUTE);
    const second = await boot(dataDir, clock);
    try {
      const ticks = (await listTicks(second.conn, sandboxId, schedule.id, { first: 50 })).items.reverse();
      expect(ticks.map((t) => `${new Date(t.dueAt).toISOString().slice(11, 16)} ${t.outcome}`)).toEqual([
        ...['01', '02', '03', '04', '05', '06', '07', '08', '09'].map((m) => `12:${m} MISSED`),
        '12:10 STARTED',
      ]);
      for (const t of ticks.slice(0, 9)) expect(t.reason).toBe('the server was not running at this time');
      expect(ticks.every((t) => t.recordedAt === Date.parse('2026-11-28T12:10:30.000Z'))).toBe(true);
      const runs = (await listJobs(second.conn, sandboxId, { scheduleId: schedule.id }, { first: 50 })).items;
      expect(runs.map((r) => r.id)).toEqual([ticks[9]!.jobId]);
      // The catch-up run is a real job: the runner started with the app completes it.
      const deadline = Date.now() + 10_000;
      let status = (await jobById(second.conn, runs[0]!.id))?.status;
      while (status !== 'SUCCEEDED' && status !== 'FAILED' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        status = (await jobById(second.conn, runs[0]!.id))?.status;
      }
      expect(status).toBe('SUCCEEDED');
      // And the scheduler is armed again for the next due time, on its one timer.
      expect(clock.pending).toBe(1);
      await clock.advance(MINUTE);
      expect((await listTicks(second.conn, sandboxId, schedule.id, { first: 1 })).items[0]).toMatchObject({
        dueAt: Date.parse('2026-11-28T12:11:00.000Z'),
        outcome: 'STARTED',
      });
    } finally {
      await shutdown(second);
    }
  });

  it('takes a tick that finds the write lock held elsewhere again on a timer, never waiting on the loop', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'segql-schedule-busy-'));
    dirs.push(dataDir);
    const clock = new ManualClock(Date.parse('2026-11-28T12:00:30.000Z'));
    const booted = await boot(dataDir, clock);
    const other = new Database(databaseFile(dataDir));
    try {
      const sandboxId = (await ensureSandbox(booted.conn, 'prod')).id;
      const schedule = await booted.app.schedules.create(sandboxId, {
        name: 'minutely',
        type: 'BATCH_SEGMENTATION',
        properties: { segments: ['*'] },
        cron: '* * * * *',
      });
      // Another connection (a job's worker writing its results) holds the write lock at 12:01.
      other.exec('BEGIN IMMEDIATE');
      const started = Date.now();
      await clock.advanceTo(Date.parse('2026-11-28T12:01:00.000Z'));
      // With the connection's 5 s busy wait the tick would have blocked here for 5 s.
      expect(Date.now() - started).toBeLessThan(1_000);
      expect((await listTicks(booted.conn, sandboxId, schedule.id, { first: 5 })).items).toEqual([]);
      other.exec('COMMIT');
      await clock.advance(50);
      expect((await listTicks(booted.conn, sandboxId, schedule.id, { first: 5 })).items).toMatchObject([
        { dueAt: Date.parse('2026-11-28T12:01:00.000Z'), outcome: 'STARTED' },
      ]);
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await shutdown(booted);
    }
  });
});
