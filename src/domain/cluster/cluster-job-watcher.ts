/**
 * Job updates made anywhere in the cluster, told to this process's subscribers. Nodes write job
 * rows only (claims, lease renewals with progress, final writes, requeues); a trigger announces
 * every change on `segql_job_updates` with the job's id (pg migration `job_update_notify`), and
 * each serving process LISTENs, reads the changed jobs in batches and publishes them on the
 * event bus as the single-process runner publishes its own (the job's topic, its sandbox's).
 * Each serving process watches, so a subscriber sees a job's updates whichever node it is
 * connected to; they are published to this process only, as through Redis every other node would
 * deliver each update once more.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { Store } from '../../db/store.js';
import { type EventBus, topics } from '../events.js';
import { type Job, jobById } from '../jobs/job-store.js';
import { isTerminal } from '../jobs/job-types.js';

export const JOB_UPDATES_CHANNEL = 'segql_job_updates';

/**
 * How long notifications gather before their jobs are read: none beyond the current turn. Each
 * read gives a job's state as it is then, so states written closer together than one read are
 * told as the latest; waiting 20 ms merged a preview's running estimates (one heard of several in
 * a third of the runs), reading at once heard them all in eight of eight. Progress is written at
 * most every 50 ms per running range or job, so the reads stay few.
 */
const BATCH_MS = 0;
/** How many jobs' last told state is remembered. */
const TOLD_MAX = 5_000;
/** How long to wait before listening again after the connection was lost. */
const RECONNECT_MS = 1_000;

export class ClusterJobWatcher {
  private client: pg.Client | undefined;
  private readonly pending = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Per job id, the state last told (insertion order: oldest first). */
  private readonly told = new Map<number, string>();

  constructor(private readonly deps: { url: string; store: Store; bus: Pick<EventBus, 'publishLocal'>; log: Logger }) {}

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.deps.url });
    client.on('notification', (n) => {
      const id = Number(n.payload);
      if (!Number.isSafeInteger(id)) return;
      this.pending.add(id);
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.flushing = this.flushing.then(() => this.flush());
      }, BATCH_MS);
    });
    client.on('error', (err) => this.deps.log.warn({ err }, 'job updates: connection lost'));
    client.on('end', () => {
      if (this.stopped) return;
      // Updates made while nobody listened are not replayed; the next change of each job is.
      setTimeout(() => {
        if (!this.stopped) this.start().catch((err) => this.deps.log.warn({ err }, 'job updates: cannot listen'));
      }, RECONNECT_MS).unref();
    });
    await client.connect();
    await client.query(`LISTEN ${JOB_UPDATES_CHANNEL}`);
    this.client = client;
  }

  private async flush(): Promise<void> {
    const ids = [...this.pending];
    this.pending.clear();
    for (const id of ids) {
      try {
        const job = await jobById(this.deps.store, id);
        if (job) this.announce(job);
      } catch (err) {
        this.deps.log.warn({ err, jobId: id }, 'job updates: cannot read the job');
      }
    }
  }

  /**
   * Tells this process's subscribers a job's state, unless they were told it already: what the
   * watcher reads after a notification, and what this process's queue has just written.
   */
  announce(job: Job): void {
    if (!this.changed(job)) return;
    this.deps.bus.publishLocal(topics.job(job.id), job);
    this.deps.bus.publishLocal(topics.sandboxJobs(job.sandboxId), job);
  }

  /**
   * Whether a job read after a notification is news to subscribers. A row changes after its job
   * has ended too (a node clearing its lease, the staged rows' cleanup touching it), and a
   * subscriber told SUCCEEDED twice would act twice (audienceSizeChanged reports a job's size
   * moves once per SUCCEEDED it hears): a job is told once per state it is seen in, and once
   * when it ends.
   */
  private changed(job: Job): boolean {
    const seen = this.told.get(job.id);
    const state = JSON.stringify([job.status, job.progressDone, job.progressTotal, job.result, job.error]);
    if (seen === state || (seen !== undefined && isTerminal(job.status) && seen.startsWith(`["${job.status}"`))) {
      return false;
    }
    this.told.set(job.id, state);
    // Jobs seen long ago are forgotten: a few thousand recent ones cover every live subscriber.
    if (this.told.size > TOLD_MAX) this.told.delete(this.told.keys().next().value!);
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.client?.end().catch(() => {});
  }
}
