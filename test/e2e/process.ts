import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { segqlArgs, segqlFromSourceArgs } from '../segql-command.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** Kills every server a test started and has not stopped (call from afterAll, so a failed test leaks none). */
export function killSpawned(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/**
 * Runs `segql serve` as its own process and waits until it listens: built (test/build.ts), or
 * with `fromSource` through tsx as `npm start` runs it.
 */
export async function spawnServer(
  dataDir: string,
  env: Record<string, string> = {},
  { fromSource = false } = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, fromSource ? segqlFromSourceArgs('serve') : segqlArgs('serve'), {
    cwd: root,
    env: {
      ...process.env,
      PORT: '0',
      SEGQL_DATA_DIR: dataDir,
      SEGQL_DEMO_PROFILES: '0',
      SEGQL_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /"url":"(http:[^"]+)"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('exit', () => reject(new Error(`server exited:\n${output}`)));
  });
  return { child, url, exited };
}
