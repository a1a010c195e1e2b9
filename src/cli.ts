/**
 * `segql serve | migrate | seed | import | keys | help`: the command line. `npm start` runs `serve`, which
 * migrates, seeds demo data into an empty `prod` sandbox (SEGQL_DEMO_PROFILES) and serves on PORT.
 * Usage goes to stdout with exit 0; a usage error is one line on stderr with exit 2.
 */
// First: it loads graphql's type checks before anything else loads graphql.
import './server/graphql-release-checks.js';
import { existsSync, readFileSync } from 'node:fs';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { destination, Logger } from 'pino';
import { type Config, databaseFile, loadConfig } from './config.js';
import type { Connection } from './db/index.js';
import { DatabaseDamagedError } from './db/integrity.js';
import type { Store } from './db/store.js';
import { DomainError } from './domain/errors.js';
import { decodeGlobalId, encodeGlobalId, internalId } from './domain/ids.js';

// Only what every command needs is imported above: each command imports its own modules when it
// runs, so help, version and usage errors answer without loading the database layer (about half
// a second of CPU per command under tsx, paid by every test that spawns the CLI).

/** A mistake in how segql was called: one line on stderr, exit 2, no stack trace. */
class UsageError extends Error {}

const USAGE: Record<string, string> = {
  segql: `usage: segql <command> [options]

commands:
  serve      migrate, seed demo data into an empty "prod" sandbox, and serve GraphQL (the default)
  migrate    apply database migrations and exit
  work       run segment and export jobs queued in PostgreSQL, as one node of a cluster
  segment    queue a segment job in PostgreSQL for the cluster's nodes, and follow it
  export     queue an export job in PostgreSQL for the cluster's nodes, and follow it
  cancel     cancel a segment or export job queued in PostgreSQL, and follow it to its end
  seed       add deterministic demo profiles and events to a sandbox
  import     read a CSV or NDJSON list into an external audience
  keys       create, list and revoke API keys
  help       show this help, or a command's: segql help <command>

options:
  -h, --help     show help (also after a command: segql seed --help)
  -v, --version  print the version

The environment configures the server (PORT, HOST, SEGQL_DATA_DIR, SEGQL_LOG_LEVEL, ...; see the README).
`,
  serve: `usage: segql serve

Applies migrations, seeds SEGQL_DEMO_PROFILES demo profiles into "prod" when it is empty, and serves
/graphql (HTTP, SSE, WebSocket), /healthz, /readyz and /metrics on HOST:PORT until SIGTERM or SIGINT.
`,
  migrate: `usage: segql migrate [--from-sqlite FILE]

Applies pending database migrations to SEGQL_DATA_DIR/segql.db and exits; with
SEGQL_DATABASE_URL=postgres://… set, applies the PostgreSQL migrations to that database instead.

  --from-sqlite FILE   with SEGQL_DATABASE_URL: then copies the SQLite store FILE (e.g.
                       SEGQL_DATA_DIR/segql.db, migrated first) into the PostgreSQL database,
                       which must hold no data yet; all of it arrives or none
`,
  work: `usage: segql work [--node NAME] [--lease-ms N] [--range-profiles N] [--range-slots N]

With SEGQL_DATABASE_URL=postgres://…: takes part in the segment and export jobs queued in that
database until SIGTERM or SIGINT. Every node running it shares the work: a segment job is split
into profile-id ranges, each evaluated by one node under a lease it renews, and ended by one
final write; an export job is run whole by one node under a lease, into the dataset's folder
under SEGQL_DATA_DIR, which every node must share (one machine, or a shared mount).

  --node NAME           this node's name in leases (default host:pid:random); unique per node
  --lease-ms N          how long a range stays this node's without a renewal (default
                        SEGQL_LEASE_MS, else 15000)
  --range-profiles N    about how many profiles a range holds (default SEGQL_RANGE_PROFILES,
                        else 100000)
  --range-slots N       how many ranges this node evaluates at once, each on a database
                        connection of its own (default SEGQL_RANGE_SLOTS, else 2)

One JSON line per event (job started, range or export claimed and ended, job ended) goes to stdout.
`,
  segment: `usage: segql segment (--all | --definition ID ...) [--sandbox NAME] [--at ISO] [--no-wait]

With SEGQL_DATABASE_URL=postgres://…: queues a segment job for the nodes running "segql work",
then prints its progress until it ends (exit 0 when it succeeded, 1 otherwise; --no-wait prints
the job's id and exits at once).

  --all             every batch-enabled definition whose audience is evaluated
  --definition ID   a definition, by its id (a number or the API's global id); repeatable
  --sandbox NAME    the sandbox (default prod)
  --at ISO          the evaluation instant (default: when the job starts)
`,
  export: `usage: segql export --dataset NAME --audience ID ... [--format NDJSON|CSV|PARQUET]
       [--mode FULL|CHANGES] [--sandbox NAME] [--no-wait]

With SEGQL_DATABASE_URL=postgres://…: queues an export job for the nodes running "segql work",
then prints its progress until it ends (exit 0 when it succeeded, 1 otherwise; --no-wait prints
the job's id and exits at once). The files land in the dataset's folder under the nodes'
SEGQL_DATA_DIR (exports/<sandbox id>/<dataset id>/).

  --dataset NAME    the dataset to write into, created when no dataset has that name
  --audience ID     an audience to export, by its id (a number or the API's global id); repeatable
  --format FORMAT   NDJSON, CSV or PARQUET (default: the dataset's, else NDJSON)
  --mode MODE       FULL (default) or CHANGES since the dataset's last export
  --sandbox NAME    the sandbox (default prod)
`,
  cancel: `usage: segql cancel JOB_ID [--sandbox NAME] [--no-wait]

With SEGQL_DATABASE_URL=postgres://…: cancels a queued or running segment or export job of the
cluster, and the segment job an export queued to run first for it, then prints the job's status
until it ends (exit 0 when it ended CANCELLED, 1 when it had already finished or finished before
the cancel reached it; --no-wait prints what the cancel did and exits at once). A queued job is
cancelled at once; a running one stops when its node next renews its lease (every third of the
lease time).

  JOB_ID            the job, by its id (a number or the API's global id)
  --sandbox NAME    the job's sandbox (default prod)
`,
  seed: `usage: segql seed [--profiles N] [--events-per-profile M] [--seed S] [--sandbox NAME]

  --profiles N            profiles to add (default 10000)
  --events-per-profile M  events per profile (default 10)
  --seed S                random seed; the same seed gives the same data on the same day (default 42)
  --sandbox NAME          sandbox to seed, created if missing (default prod)

Writes into the SQLite file of SEGQL_DATA_DIR, or with SEGQL_DATABASE_URL=postgres://… into that
PostgreSQL (migrated first), through the ingest a serving node uses.
`,
  import: `usage: segql import --audience NAME --file PATH [--mode replace|append] [--sandbox NAME]

  --audience NAME   the external audience, by its externalId or name
  --file PATH       the list: CSV with a header row naming the fields, or NDJSON (.ndjson, .jsonl)
  --mode MODE       replace (default): the list becomes the whole audience; append: it adds members
  --sandbox NAME    the sandbox of the audience (default prod)

Runs the ingestion in this process (a progress bar on a terminal, progress lines otherwise) and
prints its counts; bad rows are listed with their line numbers. Exit 0 when the run succeeded,
1 when it failed (no usable row), 2 on a usage error or an unknown audience.

With SEGQL_DATABASE_URL=postgres://…: stages the list under SEGQL_DATA_DIR, which the nodes must
share, and queues the run for them (as startExternalAudienceIngestion does), printing its status
on stderr until a node has run it; then the same report.
`,
  keys: `usage: segql keys create --name NAME [--sandbox NAME ...] [--scope read|write|admin ...]
       segql keys list
       segql keys revoke ID|PREFIX

  create   makes a key and prints it, once, alone on stdout (notes go to stderr), so
           KEY=$(npm run -s segql -- keys create --name app --scope read,write) captures it;
           --sandbox (default prod) must name existing sandboxes; --scope defaults to read
  list     one row per key: id, prefix, name, scopes, sandboxes, state
  revoke   by id or prefix; running servers on the same data directory notice at once
`,
};

const COMMANDS = ['serve', 'migrate', 'work', 'segment', 'export', 'cancel', 'seed', 'import', 'keys', 'help'] as const;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** node:util parseArgs in strict mode, with its errors cut to one line that names the command. */
function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (err) {
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      const first = err.message.split('. ')[0]!.replace(/\.$/, '');
      throw new UsageError(`segql ${command}: ${first} (see segql ${command} --help)`);
    }
    throw err;
  }
}

/** The destinations of the asynchronous logs, to write out before the process exits. */
const asyncLogs = new WeakMap<Logger, ReturnType<typeof destination>>();

/**
 * The log of the commands that write one, to stdout. A server's (`serve`, `work`) is written
 * asynchronously: a synchronous write held the main thread for every request's access line
 * (under `stream` ~8 % of its time in `write`, longer while the disk syncs the database), and
 * every request and subscriber waited behind it. A one-off command's stays synchronous, in order
 * with what it prints.
 */
async function openLog(config: Config, options: { server?: boolean } = {}): Promise<Logger> {
  const { default: pino } = await import('pino');
  if (!options.server) return pino({ level: config.logLevel });
  const destination = pino.destination({ dest: 1, sync: false });
  const log = pino({ level: config.logLevel }, destination);
  asyncLogs.set(log, destination);
  return log;
}

/**
 * Resolves once an asynchronous log has written out every line (or after 2 s). `process.exit`
 * would drop a write still in flight: pino's own flush at exit writes only what is queued behind it.
 */
function logWrittenOut(log: Logger): Promise<void> {
  const destination = asyncLogs.get(log);
  if (!destination) return Promise.resolve();
  asyncLogs.delete(log);
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2_000);
    destination.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    destination.end();
  });
}

/** A count or seed: digits only, so "abc", "1e3", "-5" and "" are refused rather than read as NaN. */
function nonNegativeInteger(command: string, flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(`segql ${command}: --${flag} must be a non-negative integer, got "${value}"`);
  }
  return n;
}

/**
 * Seeds demo data with a progress bar (or lines): through SQLite's synchronous ingest on a
 * Connection, through the pooled ingest a serving node uses on PostgreSQL.
 */
async function seedWithProgress(
  log: Logger,
  conn: Store,
  sandbox: string,
  profiles: number,
  eventsPerProfile: number,
  seed: number,
) {
  const { ensureSandbox } = await import('./domain/sandboxes.js');
  const { seedDemoData, seedDemoDataOn } = await import('./domain/demo-data.js');
  const sandboxId = (await ensureSandbox(conn, sandbox)).id;
  const tty = process.stderr.isTTY;
  const bar = tty
    ? new (await import('cli-progress')).SingleBar({
        format: 'seeding [{bar}] {value}/{total} profiles | {eta_formatted} left',
      })
    : undefined;
  bar?.start(profiles, 0);
  let lastLine = Date.now();
  const options = {
    profiles,
    eventsPerProfile,
    seed,
    onProgress: (done: number, total: number) => {
      bar?.update(done);
      if (!tty && (Date.now() - lastLine > 3000 || done === total)) {
        lastLine = Date.now();
        process.stderr.write(`seeding: ${done}/${total} profiles\n`);
      }
    },
  };
  const result =
    'sqlite' in conn
      ? seedDemoData(conn as Connection, sandboxId, options)
      : await seedDemoDataOn(conn, sandboxId, options);
  bar?.stop();
  log.info(result, `seeded ${result.profiles} profiles and ${result.events} events into "${sandbox}"`);
  return result;
}

/**
 * The store a command writes to: the data directory's SQLite file, or with SEGQL_DATABASE_URL
 * that PostgreSQL, migrated first (under its lock, so nodes starting beside it are safe).
 */
async function openStore(config: Config): Promise<Store & { close(): unknown }> {
  if (!config.databaseUrl) return (await import('./db/index.js')).openDatabase(databaseFile(config.dataDir));
  const { migratePg, openPgDatabase } = await import('./db/pg/index.js');
  const conn = openPgDatabase(config.databaseUrl, { max: 3 });
  try {
    await migratePg(conn);
  } catch (err) {
    await conn.close();
    throw err;
  }
  return conn;
}

async function main(argv: string[]): Promise<void> {
  const helpAsked = argv.includes('--help') || argv.includes('-h');
  const [first, ...rest] = argv;
  if (first === 'help') {
    const topic = rest[0] ?? 'segql';
    if (!(topic in USAGE)) throw new UsageError(`segql help: unknown command "${topic}" (see segql --help)`);
    process.stdout.write(USAGE[topic]!);
    return;
  }
  if (first === undefined || first.startsWith('-')) {
    if (helpAsked) return void process.stdout.write(USAGE.segql!);
    if (first === '--version' || first === '-v') return void process.stdout.write(`${version()}\n`);
    if (first !== undefined) throw new UsageError(`segql: unknown option "${first}" (see segql --help)`);
  }
  const command = first ?? 'serve';
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new UsageError(`segql: unknown command "${command}" (see segql --help)`);
  }
  // Help never reaches the database or the network, whatever else is on the line.
  if (helpAsked) return void process.stdout.write(USAGE[command]!);

  const config = loadConfigOrExplain();
  const file = databaseFile(config.dataDir);
  if (command === 'migrate') {
    const { values } = parse(command, rest, { 'from-sqlite': { type: 'string' } });
    const from = values['from-sqlite'];
    if (from !== undefined && !config.databaseUrl) {
      throw new UsageError('segql migrate: --from-sqlite copies into PostgreSQL; set SEGQL_DATABASE_URL=postgres://…');
    }
    if (from !== undefined && !existsSync(from)) throw new UsageError(`segql migrate: no file "${from}"`);
    const log = await openLog(config);
    if (config.databaseUrl) return migratePostgres(config.databaseUrl, log, from);
    const { openDatabase } = await import('./db/index.js');
    openDatabase(file).close();
    log.info({ file }, 'migrations applied');
    return;
  }
  if (command === 'work') return workCommand(config, rest);
  if (command === 'segment') return segmentCommand(config, rest);
  if (command === 'export') return exportCommand(config, rest);
  if (command === 'cancel') return cancelCommand(config, rest);
  if (command === 'seed') {
    const { DEFAULT_SANDBOX } = await import('./domain/sandboxes.js');
    const { values } = parse(command, rest, {
      profiles: { type: 'string', default: '10000' },
      'events-per-profile': { type: 'string', default: '10' },
      seed: { type: 'string', default: '42' },
      sandbox: { type: 'string', default: DEFAULT_SANDBOX },
    });
    const profiles = nonNegativeInteger(command, 'profiles', values.profiles);
    const eventsPerProfile = nonNegativeInteger(command, 'events-per-profile', values['events-per-profile']);
    const seed = nonNegativeInteger(command, 'seed', values.seed);
    const log = await openLog(config);
    const conn = await openStore(config);
    try {
      await seedWithProgress(log, conn, values.sandbox, profiles, eventsPerProfile, seed);
    } finally {
      await conn.close();
    }
    return;
  }
  if (command === 'keys') {
    await keysCommand(config, rest);
    return;
  }
  if (command === 'import') return importCommand(config, rest);
  parse(command, rest, {});
  return serve(config);
}

async function workCommand(config: Config, args: string[]): Promise<void> {
  const { values } = parse('work', args, {
    node: { type: 'string' },
    'lease-ms': { type: 'string', default: String(config.leaseMs) },
    'range-profiles': { type: 'string', default: String(config.rangeProfiles) },
    'range-slots': { type: 'string', default: String(config.rangeSlots) },
  });
  if (!config.databaseUrl) {
    throw new UsageError('segql work: set SEGQL_DATABASE_URL=postgres://… (a cluster shares one PostgreSQL)');
  }
  const leaseMs = nonNegativeInteger('work', 'lease-ms', values['lease-ms']);
  const rangeProfiles = nonNegativeInteger('work', 'range-profiles', values['range-profiles']);
  const rangeSlots = nonNegativeInteger('work', 'range-slots', values['range-slots']);
  if (leaseMs < 100 || rangeProfiles < 1 || rangeSlots < 1) {
    throw new UsageError(
      'segql work: --lease-ms must be at least 100, and --range-profiles and --range-slots at least 1',
    );
  }
  const log = await openLog(config, { server: true });
  const { openPgDatabase } = await import('./db/pg/index.js');
  const { startClusterNode } = await import('./domain/cluster/cluster-node.js');
  // The ranges, an export, a preview and a dry run or ingestion run may each hold a connection
  // for long (cluster-node.ts, its slots); the rest is for lease renewals, job starts and ends,
  // and schedules, which must not wait on them.
  const conn = openPgDatabase(config.databaseUrl, { max: rangeSlots + 6 });
  const node = await startClusterNode({
    pool: conn.pool,
    url: config.databaseUrl,
    leaseMs,
    rangeProfiles,
    rangeSlots,
    dataDir: config.dataDir,
    // Test-only (test/e2e/cluster-exports.test.ts): slows exports so a node can be killed mid-write.
    testOnlyExportPageDelayMs: Number(process.env.SEGQL_TEST_ONLY_EXPORT_PAGE_DELAY_MS ?? 0) || 0,
    ...(process.env.SEGQL_TEST_ONLY_EXPORT_PAGE_DELAY_MS ? { exportPageRows: 100 } : {}),
    ...(values.node ? { node: values.node } : {}),
    onEvent: (event) => {
      if (event.type === 'error') log.error({ err: event.error }, 'cluster node error');
      else log.info({ ...event }, event.type);
    },
  });
  log.info(
    { node: node.settings.node, leaseMs, rangeProfiles, rangeSlots, dataDir: config.dataDir },
    'cluster node started',
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  // The range or export in hand finishes (or, past 10 s, is left to its lease: another node re-runs it).
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  await node.stop();
  await conn.close();
}

async function segmentCommand(config: Config, args: string[]): Promise<void> {
  const { DEFAULT_SANDBOX } = await import('./domain/sandboxes.js');
  const { values } = parse('segment', args, {
    all: { type: 'boolean', default: false },
    definition: { type: 'string', multiple: true },
    sandbox: { type: 'string', default: DEFAULT_SANDBOX },
    at: { type: 'string' },
    'no-wait': { type: 'boolean', default: false },
  });
  if (!config.databaseUrl) {
    throw new UsageError(
      'segql segment: set SEGQL_DATABASE_URL=postgres://… (on SQLite, use the createSegmentJob mutation)',
    );
  }
  const given = values.definition ?? [];
  if (values.all === given.length > 0) throw new UsageError('segql segment: give either --all or --definition ID');
  const definitionIds = given.map((id) => {
    const n = /^\d+$/.test(id) ? Number(id) : internalId(id, 'SegmentDefinition');
    if (n === undefined || !Number.isSafeInteger(n)) {
      throw new UsageError(`segql segment: "${id}" is not a definition id`);
    }
    return n;
  });
  const at = values.at === undefined ? null : Date.parse(values.at);
  if (at !== null && Number.isNaN(at))
    throw new UsageError(`segql segment: --at must be an ISO instant, got "${values.at}"`);
  const { openPgDatabase } = await import('./db/pg/index.js');
  const { enqueueClusterSegmentJob } = await import('./domain/cluster/cluster-segment-job.js');
  const conn = openPgDatabase(config.databaseUrl, { max: 1 });
  try {
    const sandbox = (
      await conn.pool.query<{ id: number }>('SELECT id FROM sandboxes WHERE name = $1', [values.sandbox])
    ).rows[0];
    if (!sandbox) throw new UsageError(`segql segment: Sandbox "${values.sandbox}" does not exist`);
    const found = (
      await conn.pool.query<{ id: number }>(
        'SELECT id FROM segment_definitions WHERE sandbox_id = $1 AND id = ANY($2::bigint[])',
        [sandbox.id, definitionIds],
      )
    ).rows.map((r) => r.id);
    const missing = definitionIds.filter((id) => !found.includes(id));
    if (missing.length > 0)
      throw new UsageError(`segql segment: no definition ${missing.join(', ')} in "${values.sandbox}"`);
    const jobId = await enqueueClusterSegmentJob(conn.pool, sandbox.id, {
      definitionIds: values.all ? null : definitionIds,
      all: values.all,
      at,
    });
    process.stdout.write(`job ${encodeGlobalId('SegmentJob', jobId)} (${jobId}) queued\n`);
    if (!values['no-wait']) await followJob(conn.pool, jobId);
  } finally {
    await conn.close();
  }
}

/**
 * Prints a cluster job's status and progress as they change until it ends; exit code 1 unless it
 * ends `wanted`. `quiet`: the lines go to stderr and the caller reports the end.
 */
async function followJob(
  pool: import('pg').Pool,
  jobId: number,
  { wanted = 'SUCCEEDED', quiet = false }: { wanted?: string; quiet?: boolean } = {},
): Promise<void> {
  let shown = '';
  for (;;) {
    const job = (
      await pool.query<{ status: string; done: number; total: number | null; error: string | null }>(
        'SELECT status, progress_done AS done, progress_total AS total, error FROM jobs WHERE id = $1',
        [jobId],
      )
    ).rows[0]!;
    const line = `${job.status}${job.total ? ` ${job.done}/${job.total}` : ''}`;
    if (line !== shown) (quiet ? process.stderr : process.stdout).write(`${line}\n`);
    shown = line;
    if (['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(job.status)) {
      if (quiet) return;
      if (job.error) process.stderr.write(`${job.error}\n`);
      if (job.status !== wanted) process.exitCode = 1;
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

const EXPORT_FORMAT_NAMES = ['NDJSON', 'CSV', 'PARQUET'] as const;

async function exportCommand(config: Config, args: string[]): Promise<void> {
  const { DEFAULT_SANDBOX } = await import('./domain/sandboxes.js');
  const { values } = parse('export', args, {
    dataset: { type: 'string' },
    audience: { type: 'string', multiple: true },
    format: { type: 'string' },
    mode: { type: 'string', default: 'FULL' },
    sandbox: { type: 'string', default: DEFAULT_SANDBOX },
    'no-wait': { type: 'boolean', default: false },
  });
  if (!config.databaseUrl) {
    throw new UsageError(
      'segql export: set SEGQL_DATABASE_URL=postgres://… (on SQLite, use the createExportJob mutation)',
    );
  }
  if (!values.dataset) throw new UsageError('segql export: give --dataset NAME');
  const given = values.audience ?? [];
  if (given.length === 0) throw new UsageError('segql export: give at least one --audience ID');
  const audienceIds = given.map((id) => {
    const n = /^\d+$/.test(id) ? Number(id) : internalId(id, 'Audience');
    if (n === undefined || !Number.isSafeInteger(n))
      throw new UsageError(`segql export: "${id}" is not an audience id`);
    return n;
  });
  const format = values.format?.toUpperCase();
  if (format !== undefined && !(EXPORT_FORMAT_NAMES as readonly string[]).includes(format)) {
    throw new UsageError(`segql export: --format must be NDJSON, CSV or PARQUET, got "${values.format}"`);
  }
  const mode = values.mode.toUpperCase();
  if (mode !== 'FULL' && mode !== 'CHANGES') {
    throw new UsageError(`segql export: --mode must be FULL or CHANGES, got "${values.mode}"`);
  }
  const { openPgDatabase } = await import('./db/pg/index.js');
  const { enqueueClusterExportJob } = await import('./domain/cluster/cluster-export-job.js');
  const { DomainError } = await import('./domain/errors.js');
  const conn = openPgDatabase(config.databaseUrl, { max: 1 });
  try {
    const sandbox = (
      await conn.pool.query<{ id: number }>('SELECT id FROM sandboxes WHERE name = $1', [values.sandbox])
    ).rows[0];
    if (!sandbox) throw new UsageError(`segql export: Sandbox "${values.sandbox}" does not exist`);
    const client = await conn.pool.connect();
    let jobId: number;
    try {
      await client.query('BEGIN');
      // Without --format, the dataset's own (an existing dataset keeps one format), else NDJSON.
      const existing = (
        await client.query<{ format: string }>('SELECT format FROM datasets WHERE sandbox_id = $1 AND name = $2', [
          sandbox.id,
          values.dataset.trim(),
        ])
      ).rows[0];
      jobId = await enqueueClusterExportJob(client, sandbox.id, {
        audiences: audienceIds.map((audienceId) => ({ audienceId })),
        mode: mode as 'FULL' | 'CHANGES',
        destination: {
          datasetName: values.dataset,
          format: (format ?? existing?.format ?? 'NDJSON') as (typeof EXPORT_FORMAT_NAMES)[number],
        },
      });
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      // The request's own mistakes (an unknown audience, a format the dataset does not hold) are usage errors.
      if (err instanceof DomainError) throw new UsageError(`segql export: ${err.message}`);
      throw err;
    } finally {
      client.release();
    }
    process.stdout.write(`job ${encodeGlobalId('ExportJob', jobId)} (${jobId}) queued\n`);
    if (!values['no-wait']) await followJob(conn.pool, jobId);
  } finally {
    await conn.close();
  }
}

/** The global id types of the jobs a cluster runs, and their kinds. */
const CLUSTER_JOB_TYPES = {
  SegmentJob: 'SEGMENT',
  ExportJob: 'EXPORT',
  Preview: 'PREVIEW',
  DefinitionChangePreview: 'DEFINITION_CHANGE_PREVIEW',
  IngestionRun: 'INGESTION',
} as const;

async function cancelCommand(config: Config, args: string[]): Promise<void> {
  const { DEFAULT_SANDBOX } = await import('./domain/sandboxes.js');
  const { values, positionals } = parse(
    'cancel',
    args,
    { sandbox: { type: 'string', default: DEFAULT_SANDBOX }, 'no-wait': { type: 'boolean', default: false } },
    true,
  );
  if (!config.databaseUrl) {
    throw new UsageError(
      'segql cancel: set SEGQL_DATABASE_URL=postgres://… (on SQLite, use the cancelSegmentJob or cancelExportJob mutation)',
    );
  }
  if (positionals.length !== 1) throw new UsageError('segql cancel: give one JOB_ID (see segql cancel --help)');
  const given = positionals[0]!;
  // A global id names its kind too: an export's id does not cancel a segment job of the same number.
  const type = decodeGlobalId(given)?.type;
  const kind = /^\d+$/.test(given) ? undefined : CLUSTER_JOB_TYPES[type as keyof typeof CLUSTER_JOB_TYPES];
  const jobId = /^\d+$/.test(given) ? Number(given) : kind && internalId(given, type!);
  if (jobId === undefined || !Number.isSafeInteger(jobId) || jobId < 1) {
    throw new UsageError(`segql cancel: "${given}" is not a segment or export job id`);
  }
  const { openPgDatabase } = await import('./db/pg/index.js');
  const { cancelClusterJob } = await import('./domain/cluster/cluster-cancel.js');
  const conn = openPgDatabase(config.databaseUrl, { max: 2 });
  try {
    const sandbox = (
      await conn.pool.query<{ id: number }>('SELECT id FROM sandboxes WHERE name = $1', [values.sandbox])
    ).rows[0];
    if (!sandbox) throw new UsageError(`segql cancel: Sandbox "${values.sandbox}" does not exist`);
    const outcome = await cancelClusterJob(conn.pool, jobId, { sandboxId: sandbox.id, ...(kind ? { kind } : {}) });
    if (!outcome) throw new UsageError(`segql cancel: no segment or export job ${given} in "${values.sandbox}"`);
    const typeOf = (k: string) => Object.entries(CLUSTER_JOB_TYPES).find(([, v]) => v === k)?.[0] ?? 'SegmentJob';
    const name = `job ${encodeGlobalId(typeOf(outcome.kind), jobId)} (${jobId})`;
    if (outcome.changed.length === 0 && outcome.before !== 'CANCELLING') {
      process.stderr.write(
        `segql cancel: ${name} has already finished (${outcome.before}); there is nothing to cancel\n`,
      );
      process.exitCode = 1;
      return;
    }
    process.stdout.write(`${name} ${outcome.after}\n`);
    // The one queued to run first for it (an export's segment job) is the only other job a cancel changes.
    for (const first of outcome.changed.filter((c) => c.id !== jobId)) {
      process.stdout.write(
        `job ${encodeGlobalId('SegmentJob', first.id)} (${first.id}), queued to run first, ${first.status}\n`,
      );
    }
    if (!values['no-wait']) await followJob(conn.pool, jobId, { wanted: 'CANCELLED' });
  } finally {
    await conn.close();
  }
}

async function migratePostgres(url: string, log: Logger, fromSqlite?: string): Promise<void> {
  // Loaded only here: pg and Drizzle's pg dialect add about a second to every command under load.
  const { migratePg, openPgDatabase } = await import('./db/pg/index.js');
  const conn = openPgDatabase(url, { max: 1 });
  // The URL without its password: a log line must not carry a credential.
  const shown = new URL(url);
  shown.password = '';
  try {
    await migratePg(conn);
    log.info({ database: shown.toString() }, 'migrations applied');
    if (fromSqlite !== undefined) {
      const { copySqliteToPostgres } = await import('./db/pg/copy-from-sqlite.js');
      const { openDatabase } = await import('./db/index.js');
      // Migrated first, so the copy reads the schema the PostgreSQL side mirrors.
      const source = openDatabase(fromSqlite, { integrityCheck: true });
      const client = await conn.pool.connect();
      try {
        const { rows } = await copySqliteToPostgres(source.sqlite, client, (table, n) =>
          log.info({ table, rows: n }, 'table copied'),
        );
        log.info({ from: fromSqlite, database: shown.toString(), tables: Object.keys(rows).length }, 'store copied');
      } finally {
        client.release();
        source.close();
      }
    }
  } finally {
    await conn.close();
  }
}

function loadConfigOrExplain(): Config {
  try {
    return loadConfig();
  } catch (err) {
    // loadConfig names the variable and the bad value; that is the whole message a person needs.
    throw new UsageError(`segql: ${(err as Error).message}`);
  }
}

/**
 * `segql serve`: on the data directory's SQLite file, seeding demo profiles into an empty
 * "prod"; with SEGQL_DATABASE_URL, as one stateless node of a cluster on that PostgreSQL
 * (migrations applied under a lock, so nodes may start together), seeding an empty "prod" of the
 * cluster once, whichever node gets there first.
 */
async function serve(config: Config): Promise<void> {
  const log = await openLog(config, { server: true });
  let conn: Connection | undefined;
  if (!config.databaseUrl) {
    const { openDatabase } = await import('./db/index.js');
    conn = openDatabase(databaseFile(config.dataDir), { integrityCheck: !config.skipIntegrityCheck });
    await seedIfEmpty(log, conn, config.demoProfiles);
  } else if (config.demoProfiles > 0) {
    const { migratePg, openPgDatabase } = await import('./db/pg/index.js');
    const store = openPgDatabase(config.databaseUrl, { max: 3 });
    try {
      await migratePg(store);
      const client = await store.pool.connect();
      try {
        // Nodes starting together: one seeds while the others wait here, then find it seeded.
        await client.query('SELECT pg_advisory_lock($1)', [DEMO_SEED_LOCK]);
        try {
          await seedIfEmpty(log, store, config.demoProfiles);
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [DEMO_SEED_LOCK]);
        }
      } finally {
        client.release();
      }
    } finally {
      await store.close();
    }
  }
  // Loaded only to serve: the schema and yoga are most of a command's start-up, and help, usage
  // errors and keys should answer at once.
  const { startServer } = await import('./server.js');
  const server = await startServer({
    port: config.port,
    host: config.host,
    dataDir: config.dataDir,
    limits: config.limits,
    log,
    conn,
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    redisPrefix: config.redisPrefix,
    node: { leaseMs: config.leaseMs, rangeProfiles: config.rangeProfiles, rangeSlots: config.rangeSlots },
    runJobs: config.runJobs,
  });
  stopOnSignals(log, async () => {
    await server.close();
    conn?.close();
  });
}

/** An arbitrary key for pg_advisory_lock, the same on every node ("SegQLdem" as bytes). */
const DEMO_SEED_LOCK = 0x5365_6751_4c64_656dn.toString();

/** Demo profiles into "prod" when it has none (SEGQL_DEMO_PROFILES; 0 for none). */
async function seedIfEmpty(log: Logger, conn: Store, profiles: number): Promise<void> {
  if (profiles === 0) return;
  const { DEFAULT_SANDBOX, ensureSandbox } = await import('./domain/sandboxes.js');
  const { countProfiles } = await import('./domain/profiles.js');
  const prod = await ensureSandbox(conn, DEFAULT_SANDBOX);
  if ((await countProfiles(conn, prod.id)) === 0) await seedWithProgress(log, conn, DEFAULT_SANDBOX, profiles, 10, 42);
}

/** On SIGTERM or SIGINT: `close`, then exit (1 when it fails or takes over 10 s). */
function stopOnSignals(log: Logger, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    close()
      .then(async () => {
        await logWrittenOut(log);
        process.exit(0);
      })
      .catch(async (err) => {
        log.error({ err }, 'shutdown failed');
        await logWrittenOut(log);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** `segql import`: one ingestion run in this process, with progress on stderr and the counts on stdout. */
async function importCommand(config: Config, args: string[]): Promise<void> {
  const { DEFAULT_SANDBOX, findSandbox } = await import('./domain/sandboxes.js');
  const { values } = parse('import', args, {
    audience: { type: 'string' },
    file: { type: 'string' },
    mode: { type: 'string', default: 'replace' },
    sandbox: { type: 'string', default: DEFAULT_SANDBOX },
  });
  if (!values.audience) throw new UsageError('segql import: --audience is required (see segql import --help)');
  if (!values.file) throw new UsageError('segql import: --file is required (see segql import --help)');
  const mode = values.mode.toUpperCase();
  if (mode !== 'REPLACE' && mode !== 'APPEND') {
    throw new UsageError(`segql import: --mode must be replace or append, got "${values.mode}"`);
  }
  if (!existsSync(values.file)) throw new UsageError(`segql import: no file at ${values.file}`);
  const file = values.file;
  const conn = await openStore(config);
  try {
    const sandbox = await findSandbox(conn, values.sandbox);
    if (!sandbox) throw new UsageError(`segql import: no sandbox named "${values.sandbox}"`);
    const run = config.databaseUrl
      ? await importOnCluster(conn as import('./db/pg/index.js').PgConnection, config.dataDir, {
          sandboxId: sandbox.id,
          audience: values.audience,
          file,
          mode,
        })
      : await importHere(conn as Connection, config.dataDir, {
          sandboxId: sandbox.id,
          audience: values.audience,
          file,
          mode,
        });
    const { listIngestionErrors } = await import('./domain/external-audiences/ingestion-run.js');
    const errors = await listIngestionErrors(conn, run.id, { first: 20 });
    for (const e of errors.items) process.stderr.write(`line ${e.line}: ${e.message}\n`);
    if (run.status !== 'SUCCEEDED') {
      process.stderr.write(`segql import: the run failed: ${run.error}\n`);
      process.exitCode = 1;
      return;
    }
    const r = run.result!;
    process.stdout.write(
      `${r.recordsRead} rows read, ${r.recordsImported} imported, ${r.recordsMatched} matched a profile, ${r.recordsFailed} failed\n`,
    );
  } catch (err) {
    if (err instanceof DomainError) throw new UsageError(`segql import: ${err.message}`);
    throw err;
  } finally {
    await conn.close();
  }
}

type ImportRequest = import('./domain/external-audiences/local-import.js').LocalImport;

/** The run in this process, on the SQLite file, with a progress bar (or lines) on stderr. */
async function importHere(conn: Connection, dataDir: string, request: ImportRequest) {
  const { importList } = await import('./domain/external-audiences/local-import.js');
  const tty = process.stderr.isTTY;
  const bar = tty
    ? new (await import('cli-progress')).SingleBar({
        format: 'importing [{bar}] {percentage}% | {rows} rows, {failed} failed | {eta_formatted} left',
      })
    : undefined;
  let lastLine = 0;
  let started = false;
  const run = await importList(conn, dataDir, {
    ...request,
    onProgress: (p) => {
      const payload = { rows: p.recordsRead, failed: p.recordsFailed };
      if (bar && !started) bar.start(p.total, 0, payload);
      started = true;
      bar?.update(p.done, payload);
      if (!tty && (Date.now() - lastLine > 3000 || p.done === p.total)) {
        lastLine = Date.now();
        process.stderr.write(
          `importing: ${p.done}/${p.total} bytes, ${p.recordsRead} rows, ${p.recordsFailed} failed\n`,
        );
      }
    },
  });
  bar?.stop();
  return run;
}

/**
 * On PostgreSQL: the list staged under the data directory the nodes share and the run queued for
 * them, as startExternalAudienceIngestion does on a serving node; its status and progress are
 * printed until a node has run it.
 */
async function importOnCluster(conn: import('./db/pg/index.js').PgConnection, dataDir: string, request: ImportRequest) {
  const { createReadStream } = await import('node:fs');
  const { basename } = await import('node:path');
  const { findExternalAudience } = await import('./domain/external-audiences/external-audiences.js');
  const { startClusterIngestionRun } = await import('./domain/cluster/cluster-ingestion-run.js');
  const { asKind, jobById } = await import('./domain/jobs/job-store.js');
  const external = await findExternalAudience(conn, request.sandboxId, request.audience);
  if (!external)
    throw new UsageError(`segql import: No external audience has the externalId or name "${request.audience}"`);
  const queued = await startClusterIngestionRun(
    { store: conn, dataDir },
    request.sandboxId,
    external.id,
    { file: { stream: () => createReadStream(request.file), name: basename(request.file) } },
    request.mode,
  );
  process.stderr.write(`run ${encodeGlobalId('IngestionRun', queued.id)} (${queued.id}) queued for the nodes\n`);
  await followJob(conn.pool, queued.id, { quiet: true });
  return asKind((await jobById(conn, queued.id))!, 'INGESTION');
}

/** `segql keys create | list | revoke`: the key's plaintext is printed once, on stdout, by create. */
async function keysCommand(config: Config, args: string[]) {
  const [action, ...rest] = args;
  if (action !== 'create' && action !== 'list' && action !== 'revoke') {
    throw new UsageError(
      action === undefined
        ? 'segql keys: say create, list or revoke (see segql keys --help)'
        : `segql keys: unknown action "${action}" (see segql keys --help)`,
    );
  }
  const command = `keys ${action}`;
  const { DEFAULT_SANDBOX, ensureSandbox } = await import('./domain/sandboxes.js');
  const create =
    action === 'create'
      ? parse(command, rest, {
          name: { type: 'string' },
          sandbox: { type: 'string', multiple: true, default: [DEFAULT_SANDBOX] },
          scope: { type: 'string', multiple: true, default: ['read'] },
        }).values
      : undefined;
  if (action === 'list') parse(command, rest, {});
  const revoke = action === 'revoke' ? parse(command, rest, {}, true).positionals : [];
  if (action === 'revoke' && revoke.length !== 1) {
    throw new UsageError('segql keys revoke: give one key id or prefix (see segql keys --help)');
  }
  if (create && !create.name) throw new UsageError('segql keys create: --name is required (see segql keys --help)');

  const { createApiKey, listApiKeys, revokeApiKey, touchKeyStamp } = await import('./domain/api-keys.js');

  // Keys live in the database: on PostgreSQL every node re-reads them from the table.
  const conn: Store & { close(): unknown } = config.databaseUrl
    ? (await import('./db/pg/index.js')).openPgDatabase(config.databaseUrl, { max: 2 })
    : (await import('./db/index.js')).openDatabase(databaseFile(config.dataDir));
  try {
    if (create) {
      // The server makes "prod" at start; a key made before the first start may still name it.
      await ensureSandbox(conn, DEFAULT_SANDBOX);
      const { key, apiKey } = await createApiKey(conn, {
        name: create.name ?? '',
        sandboxes: create.sandbox,
        scopes: create.scope.flatMap((s) => s.split(',')),
      });
      process.stderr.write(
        `API key ${apiKey.id} "${apiKey.name}" (${apiKey.scopes.join(', ')}) for ${apiKey.sandboxes.join(', ')}. ` +
          'It is shown only now; only its hash is stored:\n',
      );
      process.stdout.write(`${key}\n`);
    } else if (action === 'list') {
      process.stdout.write('ID\tPREFIX\tNAME\tSCOPES\tSANDBOXES\tSTATE\n');
      for (const k of await listApiKeys(conn)) {
        const state = k.revokedAt === null ? 'active' : `revoked ${new Date(k.revokedAt).toISOString()}`;
        process.stdout.write(
          `${k.id}\t${k.prefix}…\t${k.name}\t${k.scopes.join(',')}\t${k.sandboxes.join(',')}\t${state}\n`,
        );
      }
    } else {
      const k = await revokeApiKey(conn, revoke[0]!);
      process.stderr.write(`API key ${k.id} "${k.name}" revoked\n`);
    }
  } catch (err) {
    if (err instanceof DomainError) throw new UsageError(`segql ${command}: ${err.message}`);
    throw err;
  } finally {
    await conn.close();
  }
  // Servers on this data directory re-read their keys when the stamp changes.
  if (action !== 'list' && !config.databaseUrl) touchKeyStamp(config.dataDir);
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof DatabaseDamagedError) {
    process.stderr.write(`segql: ${err.message}\n`);
    process.exitCode = 1;
  } else if (err instanceof UsageError || err instanceof DomainError) {
    process.stderr.write(`${err.message}\n`);
    process.exitCode = 2;
  } else {
    const { default: pino } = await import('pino');
    pino().fatal({ err }, 'segql failed');
    process.exitCode = 1;
  }
}
