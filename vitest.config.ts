import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { buildDirectory, builtModules, builtSource } from './test/build.js';

/**
 * The files that take longest, longest first: the longer of a file's two runs (SQLite and
 * e2e-postgres), averaged over three full runs on the 2-core machine (session 16). A fresh clone
 * has no duration cache, so vitest would order by file size and could start a 20 s file last,
 * leaving one fork to finish it alone; these start first and the short files fill in around them.
 * A stale entry only costs ordering; a file missing here just runs in vitest's own order.
 */
const SLOWEST_FIRST = [
  'test/e2e/authorization-matrix.test.ts',
  'test/e2e/lifecycle.test.ts',
  'test/e2e/cluster-jobs.test.ts',
  'test/e2e/cluster-api.test.ts',
  'test/e2e/upload-memory.test.ts',
  'test/e2e/subscription-lag.test.ts',
  'test/e2e/cluster-exports.test.ts',
  'test/bench/stream-postgres.test.ts',
  'test/domain/cluster-preview-job.test.ts',
  'test/domain/cluster-export-job.test.ts',
  'test/e2e/cli.test.ts',
  'test/e2e/segment-crash.test.ts',
  'test/e2e/previews.test.ts',
  'test/bench/batch-postgres.test.ts',
  'test/e2e/segment-jobs.test.ts',
  'test/bench/bench-runs.test.ts',
  'test/e2e/cli-postgres.test.ts',
  'test/e2e/cluster-ingestion.test.ts',
  'test/e2e/export-evaluate-first-crash.test.ts',
  'test/pql/fuzz.test.ts',
  'test/db/pg-query-pool.test.ts',
  'test/e2e/export-crash.test.ts',
  'test/e2e/export-evaluate-first.test.ts',
  'test/pql/differential.property.test.ts',
  'test/e2e/auth-sequences.test.ts',
  'test/e2e/memory-release.test.ts',
  'test/e2e/query-budget.test.ts',
  'test/e2e/ingestion-crash.test.ts',
  'test/e2e/documented-pql.test.ts',
  'test/e2e/external-audiences.test.ts',
  'test/db/pg-ingest-batch.test.ts',
  'test/db/pg-membership-batch.test.ts',
  'test/pql/differential.postgres.test.ts',
  'test/pql/explain.differential.test.ts',
  'test/e2e/auth.test.ts',
  'test/e2e/codegen.test.ts',
  'test/pql/postgres-regressions.test.ts',
  'test/e2e/clients.test.ts',
  'test/e2e/exports.test.ts',
  'test/e2e/database-damage.test.ts',
];

/**
 * Test files that need a process of their own, longest first. The other files share one process
 * per fork (`isolate: false`): a fresh process per file imported the app again for each of 175
 * files, about 80 s of a run's 490 s of CPU on the 2-core machine. These measure something
 * process-wide across awaits (SQL statement or streaming evaluation counters, open descriptors),
 * so work an earlier file left running in the same process would count as theirs.
 */
const OWN_PROCESS = [
  'test/e2e/definitions.test.ts',
  'test/e2e/latest-job.test.ts',
  'test/domain/ingest-thread.test.ts',
  'test/db/pg-streaming.test.ts',
  'test/e2e/subscription-loaders.test.ts',
  'test/server/process-metrics.test.ts',
];

/**
 * The e2e files that do not run again on PostgreSQL (project `e2e-postgres`, when
 * SEGQL_TEST_DATABASE_URL is set): those that start no server through the harness (CLI
 * commands, crash tests and cluster tests spawn their own processes and choose their database
 * themselves), and those about what only a SQLite process has.
 */
const E2E_NOT_ON_POSTGRES = [
  // Spawn their own processes (or none).
  'test/e2e/auth-sequences.test.ts',
  'test/e2e/cli-import.test.ts',
  'test/e2e/cli-postgres.test.ts',
  'test/e2e/cli.test.ts',
  'test/e2e/cluster-api.test.ts',
  'test/e2e/cluster-cancel.test.ts',
  'test/e2e/cluster-exports.test.ts',
  'test/e2e/cluster-ingestion.test.ts',
  'test/e2e/cluster-jobs.test.ts',
  'test/e2e/codegen.test.ts',
  'test/e2e/database-damage.test.ts',
  'test/e2e/export-crash.test.ts',
  'test/e2e/export-evaluate-first-crash.test.ts',
  'test/e2e/ingestion-crash.test.ts',
  'test/e2e/lifecycle.test.ts',
  'test/e2e/segment-crash.test.ts',
  'test/e2e/upload-memory.test.ts',
  // The response cache is off on PostgreSQL (no stamp sees other nodes' commits).
  'test/e2e/response-cache.test.ts',
  // SQLite's write gate between the job workers' result writes and the requests.
  'test/e2e/write-gate.test.ts',
  // Two servers sharing only Redis, each with a database of its own: on PostgreSQL nodes share one
  // database and learn job changes from it (test/e2e/cluster-api.test.ts runs that cluster).
  'test/e2e/redis-nodes.test.ts',
];

const repoPath = (spec: TestSpecification) => relative(spec.project.config.root, spec.moduleId).replaceAll('\\', '/');

/**
 * The projects whose files share processes, in the order their files run: the PostgreSQL e2e files
 * first, so that the shared project's many short files fill the end of the run.
 */
const SHARED_PROJECTS = ['e2e-postgres', 'shared'];

/**
 * The files of OWN_PROCESS first, in its order; then the files of each shared project together,
 * those of SLOWEST_FIRST in its order, then the rest in vitest's order (durations cached by an
 * earlier run, else size). A fork keeps its process only while the next file in the queue is one
 * of the same project (vitest's pool: `isolate: false` and an equal runner), so neither the
 * own-process files nor two projects may interleave. Ordered by SLOWEST_FIRST alone, the same file
 * of `shared` and `e2e-postgres` came one after the other: 28 switches of project in a run, each
 * a fresh process importing the app again (3–9 s of a file's collect time, against 0.1 s in a
 * process that has it). The own-process files used to come last, but definitions.test.ts on
 * PostgreSQL alone took 26 s there, the other fork idle; the short shared files fill the end.
 */
class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rest = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      if (spec.project.config.isolate) return OWN_PROCESS.indexOf(repoPath(spec)) - OWN_PROCESS.length;
      const i = SLOWEST_FIRST.indexOf(repoPath(spec));
      const block = SHARED_PROJECTS.indexOf(spec.project.name) * (SLOWEST_FIRST.length + 1);
      return block + (i < 0 ? SLOWEST_FIRST.length : i);
    };
    // Array.prototype.sort is stable: the unlisted files keep vitest's order.
    return rest.sort((a, b) => rank(a) - rank(b));
  }
}

// The modules of src/ run from the run's build (test/build.ts), so their worker threads need no tsx.
const plugins = [builtSource(buildDirectory())];
// Imported by Node rather than vite's module runner, their stack frames mapped back to src/ (test/source-maps.ts).
const external = [builtModules(buildDirectory())];
const setupFiles = ['test/source-maps.ts'];

/** What both projects share; the global setup stays with the root, which runs it once for both. */
const common = {
  plugins,
  // Pothos and yoga load graphql's CJS build; without the alias a test file would get the ESM one (docs/dependencies.md gotcha 2).
  resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
  test: {
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    server: { deps: { external } },
    setupFiles,
  },
} as const;

export default defineConfig({
  ...common,
  test: {
    ...common.test,
    // Vitest's default is one fewer fork than cores: one fork on the 2-core CI machine, which then
    // runs the files one after another while most of them wait on servers, children and timers.
    // Two forks still left the cores a third idle (125 % CPU over a run); three, on a fresh clone
    // with PostgreSQL and Redis: 265 s against 306 s. Both projects together: a project without
    // its own maxWorkers takes the root's.
    maxWorkers: 3,
    // One migrated PostgreSQL template per run, when SEGQL_TEST_DATABASE_URL is set (test/db/pg-test-database.ts).
    globalSetup: ['test/global-setup.ts'],
    sequence: { sequencer: SlowestFirst },
    projects: [
      {
        ...common,
        test: {
          ...common.test,
          name: 'shared',
          include: ['test/**/*.test.ts'],
          exclude: OWN_PROCESS,
          isolate: false,
          // Said outright: a process that ran an e2e-postgres file before keeps its environment.
          env: { SEGQL_E2E_BACKEND: 'sqlite' },
        },
      },
      { ...common, test: { ...common.test, name: 'own-process', include: OWN_PROCESS, isolate: true } },
      // The e2e suite again with every server on PostgreSQL (test/e2e/harness.ts reads the
      // variable at each server start, so these files may share processes with the others).
      ...(process.env.SEGQL_TEST_DATABASE_URL
        ? [
            {
              ...common,
              test: {
                ...common.test,
                name: 'e2e-postgres',
                include: ['test/e2e/**/*.test.ts'],
                exclude: [...E2E_NOT_ON_POSTGRES, ...OWN_PROCESS],
                isolate: false,
                env: { SEGQL_E2E_BACKEND: 'postgres' },
              },
            },
            {
              ...common,
              test: {
                ...common.test,
                name: 'e2e-postgres-own-process',
                include: OWN_PROCESS.filter((file) => file.startsWith('test/e2e/')),
                isolate: true,
                env: { SEGQL_E2E_BACKEND: 'postgres' },
              },
            },
          ]
        : []),
    ],
  },
});
