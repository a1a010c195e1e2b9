/**
 * The source compiled to JavaScript once per `vitest run`, and what runs it. Code loaded from
 * `.ts` files outside vitest goes through tsx's loader hooks, once per process and again per
 * worker thread: a spawned `segql serve` took 3.0 s of CPU to start and answer a query against
 * 1.3 s built, and a thread loading the job worker 0.6 s against 0.15 s, on the 2-core CI
 * machine. The tests spawn the built CLI, and vitest resolves the modules of src/ to their built
 * copies, so the in-process servers' worker threads start built too (src/domain/jobs/worker-thread.ts
 * takes the `.js` beside a `.ts` module when the running code is built).
 *
 * The build is file for file (no bundle): the modules keep their places, so a worker module or
 * job task named beside its caller is found beside it. The options are those tsx compiles with,
 * so the tests run the code `npm start` runs. Each file has a source map beside it, so a failure
 * inside vitest points at the line of src/ rather than of the build (test/source-maps.ts; spawned
 * processes, started without --enable-source-maps to keep their start cheap, still name the built
 * files). In watch mode nothing is built (the build would not follow edits): everything runs
 * from source as before.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { Plugin } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(root, 'src') + sep;

/**
 * The run's build directory: named when the config loads (the resolver below needs it before the
 * global setup fills it), kept in the environment so every load of the config in this process agrees.
 */
export function buildDirectory(): string {
  process.env.SEGQL_TEST_BUILD ??= join(tmpdir(), `segql-build-${randomBytes(5).toString('hex')}`);
  return process.env.SEGQL_TEST_BUILD;
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
      sourcemap: 'linked',
      logLevel: 'warning',
    });
    for (const name of ['package.json', 'drizzle', 'node_modules']) symlinkSync(join(root, name), join(out, name));
  } catch (err) {
    rmSync(out, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The modules of the build, for vitest's `server.deps.external`: a test process imports them with
 * Node's own loader, as it does the packages, rather than have vite's module runner fetch each one
 * from the main process (transformed there again, per project) and evaluate it. Two files in a
 * fresh fork on the loaded 2-core machine: 8.2–9.1 s of import and 4.3–5.1 s of transform run
 * through vite, 4.6–4.8 s and 0.4–0.8 s imported by Node. Their stack frames still name the lines
 * of src/ (test/source-maps.ts).
 */
export function builtModules(out: string): RegExp {
  return new RegExp(`^${join(out, 'src').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/`);
}

/** Resolves every module of src/ to its copy in `out` once built, except in watch mode. */
export function builtSource(out: string): Plugin {
  let watching = false;
  return {
    name: 'segql-built-source',
    enforce: 'pre',
    configureVitest({ vitest }) {
      watching = vitest.config.watch;
    },
    async resolveId(source, importer, options) {
      if (watching) return null;
      const resolved = await this.resolve(source, importer, { ...options, skipSelf: true });
      if (!resolved || resolved.external || !resolved.id.startsWith(srcDir) || !resolved.id.endsWith('.ts')) {
        return resolved;
      }
      // Not yet built while the global setup itself loads (it builds): that one runs from source.
      const compiled = join(out, 'src', `${relative(srcDir, resolved.id).slice(0, -'.ts'.length)}.js`);
      return existsSync(compiled) ? compiled : resolved;
    },
  };
}
