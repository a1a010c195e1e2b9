/** How the tests run `segql` as a process of its own. */
import { join } from 'node:path';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's build of src/ (test/build.ts); absent in watch mode. */
    segqlBuild?: string;
  }
}

/** The arguments that make `node` run `segql args…`: the run's build, or from source without one. */
export function segqlArgs(...args: string[]): string[] {
  const build = inject('segqlBuild');
  return build ? [join(build, 'src', 'cli.js'), ...args] : segqlFromSourceArgs(...args);
}

/** The arguments that run `segql args…` from source, as `npm start` does. */
export function segqlFromSourceArgs(...args: string[]): string[] {
  return ['--import', 'tsx', 'src/cli.ts', ...args];
}

/**
 * The environment for running a bench (`bench/run.ts`) from a test: its `segql` processes run the
 * run's build (SEGQL_BENCH_BUILD, bench/lib.ts) rather than start through tsx.
 */
export function benchEnv(): NodeJS.ProcessEnv {
  const build = inject('segqlBuild');
  return build ? { ...process.env, SEGQL_BENCH_BUILD: build } : process.env;
}
