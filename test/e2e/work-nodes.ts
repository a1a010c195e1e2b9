/**
 * What the cluster's e2e tests share: `segql work` processes whose JSON log lines the test reads
 * as they come, the `segql` command run to its end, and waiting for a condition.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

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
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli.ts', 'work', '--node', name, ...(options.args ?? [])],
    {
      cwd: root,
      env: { ...process.env, SEGQL_LOG_LEVEL: 'info', ...options.env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
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
      ['--import', 'tsx', 'src/cli.ts', ...args],
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
