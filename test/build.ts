/**
 * The source compiled to JavaScript once per `vitest run`, for the processes the tests spawn.
 * Each `node --import tsx src/cli.ts serve` paid tsx's loader hooks on the modules it loads, and
 * again in each of its worker threads: about 3.0 s of CPU to start a server and answer a query
 * against 1.3 s built, and 0.6 s against 0.15 s per thread, on the 2-core CI machine. The build
 * is file for file (no bundle), so the modules keep their places: a worker module or job task
 * named beside its caller is found beside it (src/domain/jobs/worker-thread.ts takes the `.js`
 * there when the running code is built).
 *
 * The options are those tsx compiles with, so the spawned processes run the code `npm start`
 * runs. In watch mode nothing is built (the build would not follow edits): the spawned
 * processes run from source as before.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(root, 'src') + sep;

/** A fresh name for a run's build directory. */
export function buildDirectory(): string {
  return join(tmpdir(), `segql-build-${randomBytes(5).toString('hex')}`);
}

/** Compiles src/ into `out` beside links to what the code reads at run time (version, migrations, packages). */
export async function buildSource(out: string): Promise<void> {
  mkdirSync(out, { recursive: true });
  try {
    const entryPoints = readdirSync(srcDir, { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
      .map((file) => join(srcDir, file));
    await build({
      entryPoints,
      outdir: join(out, 'src'),
      outbase: srcDir,
      absWorkingDir: root,
      bundle: false,
      platform: 'node',
      format: 'esm',
      target: `node${process.versions.node}`,
      keepNames: true,
      logLevel: 'warning',
    });
    for (const name of ['package.json', 'drizzle', 'node_modules']) symlinkSync(join(root, name), join(out, name));
  } catch (err) {
    rmSync(out, { recursive: true, force: true });
    throw err;
  }
}
