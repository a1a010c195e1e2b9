import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/index.js';
import { Cancelled } from '../../src/domain/jobs/cancelled.js';
import { insertJob, jobById, updateJob } from '../../src/domain/jobs/job-store.js';
import { type JobTask, runJobTask } from '../../src/domain/jobs/task.js';
import { estimateFromSample } from '../../src/domain/previews/estimate.js';
import { ensureSandbox } from '../../src/domain/sandboxes.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A PROCESSING preview job, and a task that stores `ids` as its output and then does `then`. */
async function setup() {
  const conn = openDatabase(':memory:');
  const sandboxId = (await ensureSandbox(conn, 'prod')).id;
  const job = await insertJob(conn, sandboxId, 'PREVIEW', {
    expression: { format: 'PQL_TEXT', value: 'true' },
    expressionText: 'true',
    definitionId: null,
    sampleSize: null,
    confidenceLevel: 0.95,
    at: null,
    seed: 1,
  });
  await updateJob(conn, job.id, { status: 'PROCESSING', startedAt: Date.now() });
  const estimate = estimateFromSample({ read: 3, qualified: 3, population: 3, namespaces: {} }, 0.95, true);
  const storedRows = () =>
    conn.sqlite.prepare('SELECT count(*) FROM preview_results WHERE job_id = ?').pluck().get(job.id) as number;
  const store = () =>
    conn.sqlite
      .prepare('INSERT INTO preview_results (job_id, sandbox_id, profile_ids, count) VALUES (?, ?, ?, ?)')
      .run(job.id, sandboxId, Buffer.alloc(0), 3);
  return { conn, job, estimate, storedRows, store };
}

const never = () => false;

describe('runJobTask (what the job worker does with every task)', () => {
  it('commits the output with the SUCCEEDED state, the result and the final progress', async () => {
    const { conn, job, estimate, storedRows, store } = await setup();
    const task: JobTask<'PREVIEW', null> = (_conn, _plan, ctx) => {
      ctx.progress({ done: 3, total: 3, estimate });
      ctx.finish(() => {
        store();
        return { result: { estimate, sampleSize: 3 }, units: 3 };
      });
    };
    const reports: number[] = [];
    const result = runJobTask(conn, job.id, task, null, { progress: (p) => reports.push(p.done), cancelled: never });
    expect(result).toEqual({ estimate, sampleSize: 3 });
    expect(reports).toEqual([3]);
    expect(storedRows()).toBe(1);
    expect(await jobById(conn, job.id)).toMatchObject({
      status: 'SUCCEEDED',
      result: { estimate, sampleSize: 3 },
      progressDone: 3,
      progressTotal: 3,
    });
    expect((await jobById(conn, job.id))?.finishedAt).toBeTypeOf('number');
  });

  it('writes nothing when the output fails to write: the job stays PROCESSING for the runner to fail', async () => {
    const { conn, job, storedRows, store } = await setup();
    const task: JobTask<'PREVIEW', null> = (_conn, _plan, ctx) => {
      ctx.finish(() => {
        store();
        throw new Error('disk full');
      });
    };
    expect(() => runJobTask(conn, job.id, task, null, { progress: () => {}, cancelled: never })).toThrow('disk full');
    expect(storedRows()).toBe(0);
    expect(await jobById(conn, job.id)).toMatchObject({ status: 'PROCESSING', result: null });
  });

  it('lets a cancel that reached the database first win: Cancelled, and no output', async () => {
    const { conn, job, estimate, storedRows, store } = await setup();
    await updateJob(conn, job.id, { status: 'CANCELLING' });
    const task: JobTask<'PREVIEW', null> = (_conn, _plan, ctx) => {
      ctx.finish(() => {
        store();
        return { result: { estimate, sampleSize: 3 }, units: 3 };
      });
    };
    expect(() => runJobTask(conn, job.id, task, null, { progress: () => {}, cancelled: never })).toThrow(Cancelled);
    expect(storedRows()).toBe(0);
    expect((await jobById(conn, job.id))?.status).toBe('CANCELLING');
  });

  it('stops at finish when the cancel flag is up, without writing', async () => {
    const { conn, job, estimate, storedRows, store } = await setup();
    const task: JobTask<'PREVIEW', null> = (_conn, _plan, ctx) => {
      ctx.finish(() => {
        store();
        return { result: { estimate, sampleSize: 3 }, units: 3 };
      });
    };
    expect(() => runJobTask(conn, job.id, task, null, { progress: () => {}, cancelled: () => true })).toThrow(
      Cancelled,
    );
    expect(storedRows()).toBe(0);
    expect((await jobById(conn, job.id))?.status).toBe('PROCESSING');
  });

  it('refuses a task that returns without finishing its job', async () => {
    const { conn, job } = await setup();
    const task: JobTask<'PREVIEW', null> = () => {};
    expect(() => runJobTask(conn, job.id, task, null, { progress: () => {}, cancelled: never })).toThrow(
      /returned without finishing/,
    );
    expect((await jobById(conn, job.id))?.status).toBe('PROCESSING');
  });
});

describe('the job plumbing', () => {
  /** Where each relative import of the files in src/domain/jobs leads, as repository paths. */
  function importsOfJobsFolder(): Map<string, string[]> {
    const dir = join(root, 'src/domain/jobs');
    const out = new Map<string, string[]>();
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const source = readFileSync(join(dir, file), 'utf8');
      const targets = [...source.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) =>
        relative(root, resolve(dir, m[1]!)).replace(/\.js$/, '.ts'),
      );
      out.set(file, targets);
    }
    return out;
  }

  it('imports no job kind: the worker runs the task module a message names, the runner the kinds that defined themselves', () => {
    const imports = importsOfJobsFolder();
    expect([...imports.keys()]).toContain('job-worker.ts');
    const shared = ['src/config.ts', 'src/db/', 'src/domain/jobs/', 'src/domain/events.ts', 'src/domain/errors.ts'];
    const outside = [...imports].flatMap(([file, targets]) =>
      targets.filter((t) => !shared.some((s) => t.startsWith(s))).map((t) => `${file} -> ${t}`),
    );
    // ids and paging are the store's generic helpers; nothing else of the domain is reached.
    expect(outside.sort()).toEqual(['job-store.ts -> src/domain/ids.ts', 'job-store.ts -> src/domain/paging.ts']);
  });

  it('does not import the app: the runner gets its services in its constructor', () => {
    const imports = importsOfJobsFolder();
    for (const [file, targets] of imports) expect(targets, file).not.toContain('src/domain/app.ts');
  });
});
