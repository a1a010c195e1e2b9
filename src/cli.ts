/**
 * `segql serve | migrate | seed | keys`: the command line. `npm start` runs `serve`, which migrates,
 * seeds demo data into an empty `prod` sandbox (SEGQL_DEMO_PROFILES) and serves on PORT.
 */
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import pino from 'pino';
import { databaseFile, loadConfig } from './config.js';
import { openDatabase } from './db/index.js';
import { DatabaseDamagedError } from './db/integrity.js';
import { createApiKey, listApiKeys, revokeApiKey, touchKeyStamp } from './domain/api-keys.js';
import { seedDemoData } from './domain/demo-data.js';
import { DomainError } from './domain/errors.js';
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
  if (command === 'keys') {
    const conn = openDatabase(file);
    try {
      keysCommand(conn, rest);
    } finally {
      conn.close();
    }
    // Servers on this data directory re-read their keys when the stamp changes.
    if (rest[0] === 'create' || rest[0] === 'revoke') touchKeyStamp(config.dataDir);
    return;
  }
  if (command !== 'serve') {
    process.stderr.write(
      'usage: segql serve | migrate | seed [--profiles N] [--events-per-profile M] [--seed S] [--sandbox NAME]\n' +
        '       segql keys create --name NAME --sandbox NAME [--sandbox …] --scope read|write|admin [--scope …]\n' +
        '       segql keys list | segql keys revoke ID|PREFIX\n',
    );
    process.exitCode = 2;
    return;
  }
  const conn = openDatabase(file, { integrityCheck: !config.skipIntegrityCheck });
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

/** `segql keys create | list | revoke`: the key's plaintext is printed once, on stdout, by create. */
function keysCommand(conn: ReturnType<typeof openDatabase>, args: string[]) {
  const [action, ...rest] = args;
  try {
    if (action === 'create') {
      const { values } = parseArgs({
        args: rest,
        options: {
          name: { type: 'string' },
          sandbox: { type: 'string', multiple: true, default: [DEFAULT_SANDBOX] },
          scope: { type: 'string', multiple: true, default: ['read'] },
        },
      });
      const { key, apiKey } = createApiKey(conn, {
        name: values.name ?? '',
        sandboxes: values.sandbox,
        scopes: values.scope.flatMap((s) => s.split(',')),
      });
      process.stderr.write(
        `API key ${apiKey.id} "${apiKey.name}" (${apiKey.scopes.join(', ')}) for ${apiKey.sandboxes.join(', ')}. ` +
          'It is shown only now; only its hash is stored:\n',
      );
      process.stdout.write(`${key}\n`);
      return;
    }
    if (action === 'list') {
      for (const k of listApiKeys(conn)) {
        const state = k.revokedAt === null ? 'active' : `revoked ${new Date(k.revokedAt).toISOString()}`;
        process.stdout.write(
          `${k.id}\t${k.prefix}…\t${k.name}\t${k.scopes.join(',')}\t${k.sandboxes.join(',')}\t${state}\n`,
        );
      }
      return;
    }
    if (action === 'revoke' && rest[0]) {
      const k = revokeApiKey(conn, rest[0]);
      process.stderr.write(`API key ${k.id} "${k.name}" revoked\n`);
      return;
    }
  } catch (err) {
    if (err instanceof DomainError) {
      process.stderr.write(`segql keys: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  process.stderr.write(
    'usage: segql keys create --name NAME [--sandbox NAME …] [--scope SCOPE …] | list | revoke ID|PREFIX\n',
  );
  process.exitCode = 2;
}

main().catch((err) => {
  if (err instanceof DatabaseDamagedError) {
    process.stderr.write(`segql: ${err.message}\n`);
    process.exit(1);
  }
  log.fatal({ err }, 'segql failed');
  process.exit(1);
});
