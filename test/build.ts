/**
 * The source compiled to JavaScript once per `vitest run`, for the processes the tests spawn.
 * Each `node --import tsx src/cli.ts serve` paid tsx's loader hooks on the modules it loads, and
 * again in each of its worker threads: about 3.0 s of CPU to start a server and answer a query
 * against 1.3 s built, and 0.6 s against 0.15 s per thread, on the 2-core CI machine. The build
 * is file for file (no bundle), so the modules keep their places: a worker module or job task
 * named beside its caller is found beside it (src/domain/jobs/worker-thread.ts takes the `.js`
 * there when the running code is built).
 *
 * The options are those tsx compiles with, so the spawned processes run the code `npm start` runs.
 */
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The directory `buildSource` compiled into (test/global-setup.ts). */
    segqlBuild: string;
  }
}

const root = fileURLToPath(new URL('..', import.meta.url));

/** Compiles src/ into a fresh directory beside links to what the code reads at run time; returns the directory. */
export async function buildSource(): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'segql-build-'));
  try {
    const entryPoints = readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
      .map((file) => join(root, 'src', file));
    await build({
      entryPoints,
      outdir: join(out, 'src'),
      outbase: join(root, 'src'),
      absWorkingDir: root,
      bundle: false,
      platform: 'node',
      format: 'esm',
      target: `node${process.versions.node}`,
      keepNames: true,
      logLevel: 'warning',
    });
    // Read relative to the modules: the version from package.json, the migrations; and the packages.
    for (const name of ['package.json', 'drizzle', 'node_modules']) symlinkSync(join(root, name), join(out, name));
  } catch (err) {
    rmSync(out, { recursive: true, force: true });
    throw err;
  }
  return out;
}

/** The arguments that make `node` run `segql args…`, built (as the spawned processes of the tests run it). */
export function segqlArgs(...args: string[]): string[] {
  return [join(inject('segqlBuild'), 'src', 'cli.js'), ...args];
}

/** The same from source, as `npm start` runs it. */
export function segqlFromSourceArgs(...args: string[]): string[] {
  return ['--import', 'tsx', 'src/cli.ts', ...args];
}
