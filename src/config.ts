import { join, resolve } from 'node:path';

/** Everything `npm start` reads from the environment, with its default (documented in the README). */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** Demo profiles seeded into `prod` when the data directory is new; 0 for none. */
  demoProfiles: number;
  logLevel: string;
  /** SEGQL_SKIP_INTEGRITY_CHECK=1: start without `PRAGMA quick_check` (to read what is left of a damaged file). */
  skipIntegrityCheck: boolean;
  /** SEGQL_DATABASE_URL: a postgres:// URL selects PostgreSQL (every node serves from it); unset: SQLite in dataDir. */
  databaseUrl: string | undefined;
  /**
   * SEGQL_LEASE_MS: on PostgreSQL, how long a job's range or a whole job stays a node's without a
   * renewal (a dead node's work is taken back after this); `segql work --lease-ms` sets the same.
   */
  leaseMs: number;
  /**
   * SEGQL_RANGE_PROFILES: on PostgreSQL, the profiles of one segment job range, the unit of work
   * a node claims (and loses if it dies); `segql work --range-profiles` sets the same.
   */
  rangeProfiles: number;
  /**
   * SEGQL_RANGE_SLOTS: on PostgreSQL, how many ranges a node evaluates at once, each on its own
   * connection and so its own database backend; `segql work --range-slots` sets the same.
   */
  rangeSlots: number;
  /** SEGQL_RUN_JOBS=0: on PostgreSQL, this node serves the API and leaves jobs to other nodes (`segql work`). */
  runJobs: boolean;
  /** SEGQL_REDIS_URL: subscriptions' events go through this Redis, so every node sees every node's events. */
  redisUrl: string | undefined;
  /** SEGQL_REDIS_PREFIX: the start of every channel name, so several deployments can share one Redis. */
  redisPrefix: string;
  limits: Limits;
}

/** What one request may ask of the server. */
export interface ServerLimits {
  maxDepth: number;
  maxCost: number;
  maxAliases: number;
  maxBodyBytes: number;
  /** A multipart request (a file upload) in all; its other fields are held to maxBodyBytes. */
  maxUploadBytes: number;
  /** Operations one HTTP request may carry as a JSON array (request batching). */
  maxBatchOperations: number;
  /** Requests per second each API key may make (a burst of as many); 0: no limit. */
  rateLimitPerSecond: number;
  /** How long one ad-hoc evaluation (profilesMatching, evaluateProfile) may run before it is stopped. */
  queryTimeoutMs: number;
  /** How long shutdown waits for in-flight requests and running jobs before it cuts them off. */
  shutdownGraceMs: number;
  /**
   * Events one subscription may have waiting to be sent; a subscriber further behind loses the
   * oldest (and is told how many), so a slow reader never slows ingestion or holds memory.
   */
  subscriptionQueueSize: number;
  /**
   * Answers of read-only queries kept until the database next changes (src/server/response-cache.ts);
   * 0 turns the cache off.
   */
  responseCacheEntries: number;
  /**
   * How long the server must be idle after a burst of connections has closed before it compacts
   * its heap once (src/server/memory-release.ts); 0 never does.
   */
  memoryReleaseQuietMs: number;
}

/** The guardrails of profile and event ingestion. */
export interface IngestLimits {
  /** Records per ingestProfiles / ingestEvents call. */
  maxBatch: number;
  profileRecordBytes: number;
  eventRecordBytes: number;
  identitiesPerProfile: number;
}

/** How jobs and the streaming sweep run. */
interface JobSettings {
  /** Profiles per chunk of a segment job: the unit of progress and cancel checks. */
  segmentChunkSize: number;
  /** How often streaming audiences are swept for members whose time window has passed. */
  streamingSweepMs: number;
  /** Profiles whose streaming windows (recent events) are kept in memory; 0 keeps none. */
  streamingWindowProfiles: number;
}

/** All settings a running server holds; each part is also passed alone to the code that needs only it. */
export type Limits = ServerLimits & IngestLimits & JobSettings;

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxDepth: 12,
  maxCost: 5000,
  maxAliases: 30,
  maxBodyBytes: 1024 * 1024,
  maxUploadBytes: 100 * 1024 * 1024,
  maxBatchOperations: 10,
  rateLimitPerSecond: 0,
  queryTimeoutMs: 5_000,
  shutdownGraceMs: 8_000,
  subscriptionQueueSize: 1_000,
  responseCacheEntries: 1_000,
  memoryReleaseQuietMs: 5_000,
};

export const DEFAULT_INGEST_LIMITS: IngestLimits = {
  maxBatch: 10_000,
  profileRecordBytes: 100 * 1024,
  eventRecordBytes: 10 * 1024,
  identitiesPerProfile: 50,
};

const DEFAULT_JOB_SETTINGS: JobSettings = {
  segmentChunkSize: 20_000,
  streamingSweepMs: 5_000,
  streamingWindowProfiles: 50_000,
};

export const DEFAULT_LIMITS: Limits = { ...DEFAULT_SERVER_LIMITS, ...DEFAULT_INGEST_LIMITS, ...DEFAULT_JOB_SETTINGS };

/** An integer variable within [min, max], or its default; anything else names the variable and stops the start. */
function intFrom(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
    throw new Error(`${name} must be ${range}, got "${value}"`);
  }
  return n;
}

function loadServerLimits(env: NodeJS.ProcessEnv): ServerLimits {
  const d = DEFAULT_SERVER_LIMITS;
  return {
    maxDepth: intFrom(env, 'SEGQL_MAX_DEPTH', d.maxDepth, 1),
    maxCost: intFrom(env, 'SEGQL_MAX_COST', d.maxCost, 1),
    maxAliases: intFrom(env, 'SEGQL_MAX_ALIASES', d.maxAliases, 0),
    maxBodyBytes: intFrom(env, 'SEGQL_MAX_BODY_BYTES', d.maxBodyBytes, 1024),
    maxUploadBytes: intFrom(env, 'SEGQL_MAX_UPLOAD_BYTES', d.maxUploadBytes, 1024),
    maxBatchOperations: intFrom(env, 'SEGQL_MAX_BATCH_OPERATIONS', d.maxBatchOperations, 1),
    rateLimitPerSecond: intFrom(env, 'SEGQL_RATE_LIMIT', d.rateLimitPerSecond, 0),
    queryTimeoutMs: intFrom(env, 'SEGQL_QUERY_TIMEOUT_MS', d.queryTimeoutMs, 1),
    shutdownGraceMs: intFrom(env, 'SEGQL_SHUTDOWN_GRACE_MS', d.shutdownGraceMs, 0, 600_000),
    subscriptionQueueSize: intFrom(env, 'SEGQL_SUBSCRIPTION_QUEUE_SIZE', d.subscriptionQueueSize, 1),
    responseCacheEntries: intFrom(env, 'SEGQL_RESPONSE_CACHE_ENTRIES', d.responseCacheEntries, 0),
    memoryReleaseQuietMs: intFrom(env, 'SEGQL_MEMORY_RELEASE_QUIET_MS', d.memoryReleaseQuietMs, 0),
  };
}

function loadJobSettings(env: NodeJS.ProcessEnv): JobSettings {
  const d = DEFAULT_JOB_SETTINGS;
  return {
    segmentChunkSize: intFrom(env, 'SEGQL_SEGMENT_CHUNK_SIZE', d.segmentChunkSize, 1),
    streamingSweepMs: intFrom(env, 'SEGQL_STREAMING_SWEEP_MS', d.streamingSweepMs, 50),
    streamingWindowProfiles: intFrom(env, 'SEGQL_STREAMING_WINDOW_PROFILES', d.streamingWindowProfiles, 0),
  };
}

/** A URL variable whose scheme is one of `schemes`, or undefined when unset. */
function urlFrom(env: NodeJS.ProcessEnv, name: string, schemes: readonly string[]): string | undefined {
  const value = env[name];
  if (value === undefined || value === '') return undefined;
  let scheme: string;
  try {
    scheme = new URL(value).protocol.replace(/:$/, '');
  } catch {
    throw new Error(`${name} must be a URL (${schemes.map((s) => `${s}://…`).join(' or ')}), got "${value}"`);
  }
  if (!schemes.includes(scheme))
    throw new Error(`${name} must start with ${schemes.map((s) => `${s}://`).join(' or ')}, got "${scheme}://"`);
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: intFrom(env, 'PORT', 4000, 0, 65_535),
    host: env.HOST || '127.0.0.1',
    dataDir: resolve(env.SEGQL_DATA_DIR || './data'),
    demoProfiles: intFrom(env, 'SEGQL_DEMO_PROFILES', 10_000, 0),
    logLevel: env.SEGQL_LOG_LEVEL || 'info',
    skipIntegrityCheck: env.SEGQL_SKIP_INTEGRITY_CHECK === '1' || env.SEGQL_SKIP_INTEGRITY_CHECK === 'true',
    databaseUrl: urlFrom(env, 'SEGQL_DATABASE_URL', ['postgres', 'postgresql']),
    redisUrl: urlFrom(env, 'SEGQL_REDIS_URL', ['redis', 'rediss']),
    redisPrefix: env.SEGQL_REDIS_PREFIX ?? 'segql:',
    leaseMs: intFrom(env, 'SEGQL_LEASE_MS', 15_000, 100),
    rangeProfiles: intFrom(env, 'SEGQL_RANGE_PROFILES', 100_000, 1),
    rangeSlots: intFrom(env, 'SEGQL_RANGE_SLOTS', 2, 1),
    runJobs: !(env.SEGQL_RUN_JOBS === '0' || env.SEGQL_RUN_JOBS === 'false'),
    limits: { ...loadServerLimits(env), ...DEFAULT_INGEST_LIMITS, ...loadJobSettings(env) },
  };
}

export const databaseFile = (dataDir: string) => join(dataDir, 'segql.db');
