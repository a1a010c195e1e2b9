/**
 * `segql serve | migrate | seed`: the command line. `npm start` runs `serve`, which migrates,
 * seeds demo data into an empty `prod` sandbox (SEGQL_DEMO_PROFILES) and serves on PORT.
 */
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import pino from 'pino';
import { databaseFile, loadConfig } from './config.js';
import { openDatabase } from './db/index.js';
import { seedDemoData } from './domain/demo-data.js';
import { countProfiles } from './domain/profiles.js';
import { DEFAULT_SANDBOX, ensureSandbox } from './domain/sandboxes.js';
import { startServer } from './server.js';

const config = loadConfig();
const log = pino({ level: config.logLevel });

function seedWithProgress(
  conn: ReturnType<typeof openDatabase>,
  sandbox: string,
  profiles: number,
  eventsPerProfile: number,
  seed: number,
) {
  const sandboxId = ensureSandbox(conn, sandbox).id;
  const tty = process.stderr.isTTY;
  const bar = tty
    ? new SingleBar({ format: 'seeding [{bar}] {value}/{total} profiles | {eta_formatted} left' })
    : undefined;
  bar?.start(profiles, 0);
  let lastLine = Date.now();
  const result = seedDemoData(conn, sandboxId, {
    profiles,
    eventsPerProfile,
    seed,
    onProgress: (done, total) => {
      bar?.update(done);
      if (!tty && (Date.now() - lastLine > 3000 || done === total)) {
        lastLine = Date.now();
        process.stderr.write(`seeding: ${done}/${total} profiles\n`);
      }
    },
  });
  bar?.stop();
  log.info(result, `seeded ${result.profiles} profiles and ${result.events} events into "${sandbox}"`);
  return result;
}

async function main() {
  const [command = 'serve', ...rest] = process.argv.slice(2);
  const file = databaseFile(config.dataDir);
  if (command === 'migrate') {
    openDatabase(file).close();
    log.info({ file }, 'migrations applied');
    return;
  }
  if (command === 'seed') {
    const { values } = parseArgs({
      args: rest,
      options: {
        profiles: { type: 'string', default: '10000' },
        'events-per-profile': { type: 'string', default: '10' },
        seed: { type: 'string', default: '42' },
        sandbox: { type: 'string', default: DEFAULT_SANDBOX },
      },
    });
    const conn = openDatabase(file);
    seedWithProgress(
      conn,
      values.sandbox,
      Number(values.profiles),
      Number(values['events-per-profile']),
      Number(values.seed),
    );
    conn.close();
    return;
  }
  if (command !== 'serve') {
    process.stderr.write(
      'usage: segql serve | migrate | seed [--profiles N] [--events-per-profile M] [--seed S] [--sandbox NAME]\n',
    );
    process.exitCode = 2;
    return;
  }
  const conn = openDatabase(file);
  const prod = ensureSandbox(conn, DEFAULT_SANDBOX);
  if (config.demoProfiles > 0 && countProfiles(conn, prod.id) === 0) {
    seedWithProgress(conn, DEFAULT_SANDBOX, config.demoProfiles, 10, 42);
  }
  const server = await startServer({
    port: config.port,
    host: config.host,
    dataDir: config.dataDir,
    limits: config.limits,
    log,
    conn,
  });
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
    server
      .close()
      .then(() => {
        conn.close();
        process.exit(0);
      })
      .catch((err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  log.fatal({ err }, 'segql failed');
  process.exit(1);
});
