/**
 * What the cluster's e2e tests share: `segql work` processes whose JSON log lines the test reads
 * as they come, the `segql` command run to its end, and waiting for a condition.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { expect } from 'vitest';
import { segqlArgs } from '../segql-command.js';

export const root = fileURLToPath(new URL('../..', import.meta.url));

/** A `segql work` process and the log lines it has written so far. */
export interface WorkNode<Line extends { msg: string }> {
  name: string;
  child: ChildProcess;
  lines: Line[];
  exited: Promise<void>;
}

/**
 * Starts `segql work --node NAME` with `args` and `env` added to this process's environment;
 * `onLine` hears each log line as it is written (the test's hooks: kill on a claim, say).
 */
export function startWorkNode<Line extends { msg: string }>(
  name: string,
  options: { args?: string[]; env: Record<string, string> },
  onLine?: (node: WorkNode<Line>, line: Line) => void,
): WorkNode<Line> {
  const child = spawn(process.execPath, segqlArgs('work', '--node', name, ...(options.args ?? [])), {
    cwd: root,
    env: { ...process.env, SEGQL_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const node: WorkNode<Line> = {
    name,
    child,
    lines: [],
    exited: new Promise((resolve) => child.once('exit', () => resolve())),
  };
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      return; // not a log line
    }
    node.lines.push(line);
    onLine?.(node, line);
  });
  return node;
}

/** Stops the nodes (SIGTERM) and waits for them to exit. */
export async function stopWorkNodes(nodes: readonly WorkNode<{ msg: string }>[]): Promise<void> {
  for (const n of nodes) n.child.kill('SIGTERM');
  await Promise.all(nodes.map((n) => n.exited));
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `segql ARGS` to its end with `env` added; its exit code and output. */
export function segql(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      segqlArgs(...args),
      { cwd: root, env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

/** Waits until `done` holds, checking every 50 ms; throws naming `what` after `ms`. */
export async function until(what: string, done: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until every node has logged that it started (connected and listening). */
export function untilStarted(nodes: readonly WorkNode<{ msg: string }>[], ms = 60_000): Promise<void> {
  return until(
    `${nodes.map((n) => n.name).join(', ')} started`,
    () => nodes.every((n) => n.lines.some((l) => l.msg === 'cluster node started')),
    ms,
  );
}

export interface TickRow {
  due_at: number;
  last_due_at: number | null;
  count: number;
  outcome: string;
  job_id: number | null;
}

/**
 * Creates an ACTIVE schedule of `type` due every second from the next whole second on, lets the
 * nodes run it for `seconds`, then deactivates it (a node inside its tick's transaction commits
 * first) and checks the cluster's promise: every second from the first due time on is accounted
 * for by exactly one tick (a MISSED run of several counts each), recorded by one node, the first
 * one STARTED. Returns the schedule and its ticks for the test's own checks.
 */
export async function expectEachSecondOnce(
  pool: pg.Pool,
  nodes: readonly WorkNode<{ msg: string; tick?: { scheduleId: number; dueAt: number } }>[],
  schedule: { sandboxId: number; name: string; type: string; properties: unknown; seconds: number },
): Promise<{ scheduleId: number; ticks: TickRow[] }> {
  const first = Math.ceil(Date.now() / 1000) * 1000 + 1000;
  const { rows } = await pool.query(
    `INSERT INTO schedules (sandbox_id, name, name_key, type, properties, cron, timezone, state, next_run_at, created_at, updated_at)
     VALUES ($1, $2, $2, $3, $4, '* * * * * ?', 'UTC', 'ACTIVE', $5, $6, $6) RETURNING id`,
    [schedule.sandboxId, schedule.name, schedule.type, JSON.stringify(schedule.properties), first, Date.now()],
  );
  const scheduleId = rows[0].id as number;
  await new Promise((r) => setTimeout(r, first + schedule.seconds * 1000 + 500 - Date.now()));
  await pool.query(`UPDATE schedules SET state = 'INACTIVE', next_run_at = NULL WHERE id = $1`, [scheduleId]);
  await new Promise((r) => setTimeout(r, 1_000));
  const ticks = (
    await pool.query(
      'SELECT due_at, last_due_at, count, outcome, job_id FROM schedule_ticks WHERE schedule_id = $1 ORDER BY due_at',
      [scheduleId],
    )
  ).rows as TickRow[];
  const covered: number[] = [];
  for (const t of ticks) for (let at = t.due_at; at <= (t.last_due_at ?? t.due_at); at += 1000) covered.push(at);
  expect(covered.length).toBeGreaterThanOrEqual(schedule.seconds);
  expect(covered).toEqual(covered.map((_, i) => first + i * 1000));
  expect(ticks.reduce((n, t) => n + t.count, 0)).toBe(covered.length);
  // One node recorded each of them (the others found the row locked or no longer due).
  const logged = nodes.flatMap((n) =>
    n.lines.filter((l) => l.msg === 'schedule-tick' && l.tick?.scheduleId === scheduleId).map((l) => l.tick!.dueAt),
  );
  expect(logged.sort((a, b) => a - b)).toEqual(ticks.map((t) => t.due_at));
  // The first due time started a run; later ones started one or skipped while one was active.
  expect(ticks[0]!.outcome).toBe('STARTED');
  for (const t of ticks) expect(['STARTED', 'SKIPPED_OVERLAP', 'MISSED']).toContain(t.outcome);
  return { scheduleId, ticks };
}
