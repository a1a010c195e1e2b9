import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';

describe('loadConfig: PostgreSQL and Redis', () => {
  it('leaves both unset by default (SQLite, events in the process)', () => {
    const config = loadConfig({});
    expect(config.databaseUrl).toBeUndefined();
    expect(config.redisUrl).toBeUndefined();
    expect(config.redisPrefix).toBe('segql:');
  });

  it('takes postgres and redis URLs as given', () => {
    const config = loadConfig({
      SEGQL_DATABASE_URL: 'postgresql://app:secret@db:5432/segql',
      SEGQL_REDIS_URL: 'rediss://cache:6380/2',
      SEGQL_REDIS_PREFIX: 'blue:',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgresql://app:secret@db:5432/segql',
      redisUrl: 'rediss://cache:6380/2',
      redisPrefix: 'blue:',
    });
  });

  it('refuses another scheme or a non-URL, naming the variable', () => {
    expect(() => loadConfig({ SEGQL_DATABASE_URL: 'mysql://db/segql' })).toThrow(
      'SEGQL_DATABASE_URL must start with postgres:// or postgresql://, got "mysql://"',
    );
    expect(() => loadConfig({ SEGQL_REDIS_URL: 'localhost:6379' })).toThrow(
      /^SEGQL_REDIS_URL must start with redis:\/\//,
    );
    expect(() => loadConfig({ SEGQL_REDIS_URL: 'not a url' })).toThrow(
      'SEGQL_REDIS_URL must be a URL (redis://… or rediss://…), got "not a url"',
    );
  });
});

describe('loadConfig: a cluster node', () => {
  it('takes the lease, the range size and the range slots, 15 s, 100,000 profiles and 2 by default', () => {
    expect(loadConfig({})).toMatchObject({ leaseMs: 15_000, rangeProfiles: 100_000, rangeSlots: 2 });
    expect(loadConfig({ SEGQL_LEASE_MS: '2000', SEGQL_RANGE_PROFILES: '500', SEGQL_RANGE_SLOTS: '1' })).toMatchObject({
      leaseMs: 2_000,
      rangeProfiles: 500,
      rangeSlots: 1,
    });
    expect(() => loadConfig({ SEGQL_RANGE_SLOTS: '0' })).toThrow(
      'SEGQL_RANGE_SLOTS must be an integer of at least 1, got "0"',
    );
  });

  it('refuses a range of no profiles, naming the variable', () => {
    expect(() => loadConfig({ SEGQL_RANGE_PROFILES: '0' })).toThrow(
      'SEGQL_RANGE_PROFILES must be an integer of at least 1, got "0"',
    );
  });
});

describe('loadConfig: memory release', () => {
  it('waits 5 s of quiet by default, takes another wait, and 0 to turn it off', () => {
    expect(loadConfig({}).limits.memoryReleaseQuietMs).toBe(5_000);
    expect(loadConfig({ SEGQL_MEMORY_RELEASE_QUIET_MS: '30000' }).limits.memoryReleaseQuietMs).toBe(30_000);
    expect(loadConfig({ SEGQL_MEMORY_RELEASE_QUIET_MS: '0' }).limits.memoryReleaseQuietMs).toBe(0);
    expect(() => loadConfig({ SEGQL_MEMORY_RELEASE_QUIET_MS: '-1' })).toThrow(
      'SEGQL_MEMORY_RELEASE_QUIET_MS must be an integer of at least 0, got "-1"',
    );
  });
});
