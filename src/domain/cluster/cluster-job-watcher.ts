/**
 * Job updates made anywhere in the cluster, told to this process's subscribers. Nodes write job
 * rows only (claims, lease renewals with progress, final writes, requeues); a trigger announces
 * every committed change on `segql_job_updates` with the row itself (pg migrations
 * `job_update_notify`, `job_update_payload`), and each serving process LISTENs and publishes each
 * state on the event bus as the single-process runner publishes its own (the job's topic, its
 * sandbox's). A row too large for a notification comes as its id and is read here: of states
 * written closer together than one read, subscribers then hear the latest.
 * Each serving process watches, so a subscriber sees a job's updates whichever node it is
 * connected to; they are published to this process only, as through Redis every other node would
 * deliver each update once more.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { Store } from '../../db/store.js';
import { type EventBus, topics } from '../events.js';
import { ToldJobStates } from '../jobs/job-state-order.js';
import { type Job, jobById, jobFromRowJson } from '../jobs/job-store.js';
import { isTerminal } from '../jobs/job-types.js';

export const JOB_UPDATES_CHANNEL = 'segql_job_updates';

/**
 * How long notifications gather before they are told: none beyond the current turn. A job
 * announced by id is read then, and gives its state as it is then; waiting 20 ms merged a
 * preview's running estimates when every notification was an id.
 */
const BATCH_MS = 0;
/** How many jobs' last told state is remembered. */
const TOLD_MAX = 5_000;
/** How long to wait before listening again after the connection was lost. */
const RECONNECT_MS = 1_000;

export class ClusterJobWatcher {
  private client: pg.Client | undefined;
  /** Notified changes in commit order: the job's row, or its id when the row was too large. */
  private readonly pending: (Job | number)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Per job id, the state last told: where it stands in the job's life (job-state-order.ts) and its key. */
  private readonly told = new ToldJobStates(TOLD_MAX);

  constructor(private readonly deps: { url: string; store: Store; bus: Pick<EventBus, 'publishLocal'>; log: Logger }) {}

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.deps.url });
    client.on('notification', (n) => {
      const notice = this.parse(n.payload);
      if (notice === undefined) return;
      this.pending.push(notice);
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

  private parse(payload: string | undefined): Job | number | undefined {
    if (payload?.startsWith('{')) {
      try {
        return jobFromRowJson(payload);
      } catch (err) {
        this.deps.log.warn({ err }, 'job updates: unreadable notification');
        return undefined;
      }
    }
    const id = Number(payload);
    return Number.isSafeInteger(id) ? id : undefined;
  }

  private async flush(): Promise<void> {
    const notices = this.pending.splice(0);
    for (const notice of notices) {
      if (typeof notice !== 'number') {
        this.announce(notice);
        continue;
      }
      try {
        const job = await jobById(this.deps.store, notice);
        if (job) this.announce(job);
      } catch (err) {
        this.deps.log.warn({ err, jobId: notice }, 'job updates: cannot read the job');
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
    const seen = this.told.keyOf(job.id);
    const state = JSON.stringify([job.status, job.progressDone, job.progressTotal, job.result, job.error]);
    if (seen === state || (seen !== undefined && isTerminal(job.status) && seen.startsWith(`["${job.status}"`))) {
      return false;
    }
    // Nor a state older than the one told: a row read after its notification is as it stands
    // then, newer than the rows the next notifications carry, and a state this process's queue
    // told at once (a cancel) can pass the notifications of the changes before it.
    return this.told.tell(job, state);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.client?.end().catch(() => {});
  }
}
