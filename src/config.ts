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
  limits: Limits;
}

export interface Limits {
  maxDepth: number;
  maxCost: number;
  maxAliases: number;
  maxBodyBytes: number;
  maxPageSize: number;
  maxBatch: number;
  /** Operations one HTTP request may carry as a JSON array (request batching). */
  maxBatchOperations: number;
  profileRecordBytes: number;
  eventRecordBytes: number;
  identitiesPerProfile: number;
  /** Profiles per chunk of a segment job: the unit of progress and cancel checks. */
  segmentChunkSize: number;
  /** How often streaming audiences are swept for members whose time window has passed. */
  streamingSweepMs: number;
  /** Requests per second each API key may make (a burst of as many); 0: no limit. */
  rateLimitPerSecond: number;
  /** How long one ad-hoc evaluation (profilesMatching, evaluateProfile) may run before it is stopped. */
  queryTimeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxDepth: 12,
  maxCost: 5000,
  maxAliases: 30,
  maxBodyBytes: 1024 * 1024,
  maxPageSize: 500,
  maxBatch: 10_000,
  maxBatchOperations: 10,
  profileRecordBytes: 100 * 1024,
  eventRecordBytes: 10 * 1024,
  identitiesPerProfile: 50,
  segmentChunkSize: 20_000,
  streamingSweepMs: 5_000,
  rateLimitPerSecond: 0,
  queryTimeoutMs: 5_000,
};

function intFrom(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${value}"`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    port: intFrom(env.PORT, 4000, 'PORT'),
    host: env.HOST || '127.0.0.1',
    dataDir: resolve(env.SEGQL_DATA_DIR || './data'),
    demoProfiles: intFrom(env.SEGQL_DEMO_PROFILES, 10_000, 'SEGQL_DEMO_PROFILES'),
    logLevel: env.SEGQL_LOG_LEVEL || 'info',
    skipIntegrityCheck: env.SEGQL_SKIP_INTEGRITY_CHECK === '1' || env.SEGQL_SKIP_INTEGRITY_CHECK === 'true',
    limits: {
      ...DEFAULT_LIMITS,
      maxDepth: intFrom(env.SEGQL_MAX_DEPTH, DEFAULT_LIMITS.maxDepth, 'SEGQL_MAX_DEPTH'),
      maxCost: intFrom(env.SEGQL_MAX_COST, DEFAULT_LIMITS.maxCost, 'SEGQL_MAX_COST'),
      maxAliases: intFrom(env.SEGQL_MAX_ALIASES, DEFAULT_LIMITS.maxAliases, 'SEGQL_MAX_ALIASES'),
      maxBatchOperations: Math.max(
        1,
        intFrom(env.SEGQL_MAX_BATCH_OPERATIONS, DEFAULT_LIMITS.maxBatchOperations, 'SEGQL_MAX_BATCH_OPERATIONS'),
      ),
      maxBodyBytes: intFrom(env.SEGQL_MAX_BODY_BYTES, DEFAULT_LIMITS.maxBodyBytes, 'SEGQL_MAX_BODY_BYTES'),
      segmentChunkSize: Math.max(
        1,
        intFrom(env.SEGQL_SEGMENT_CHUNK_SIZE, DEFAULT_LIMITS.segmentChunkSize, 'SEGQL_SEGMENT_CHUNK_SIZE'),
      ),
      streamingSweepMs: Math.max(
        50,
        intFrom(env.SEGQL_STREAMING_SWEEP_MS, DEFAULT_LIMITS.streamingSweepMs, 'SEGQL_STREAMING_SWEEP_MS'),
      ),
      rateLimitPerSecond: intFrom(env.SEGQL_RATE_LIMIT, DEFAULT_LIMITS.rateLimitPerSecond, 'SEGQL_RATE_LIMIT'),
      queryTimeoutMs: Math.max(
        1,
        intFrom(env.SEGQL_QUERY_TIMEOUT_MS, DEFAULT_LIMITS.queryTimeoutMs, 'SEGQL_QUERY_TIMEOUT_MS'),
      ),
    },
  };
}

export const databaseFile = (dataDir: string) => join(dataDir, 'segql.db');
