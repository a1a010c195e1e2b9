/**
 * The rule of src/server/memory-release.ts: a compacting collection only after a burst of
 * connections has closed (many, and a large share of the most open at once) and only while the
 * server is idle.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_RELEASE_RULE, type ReleaseRule, shouldRelease } from '../../src/server/memory-release.js';

const rule: ReleaseRule = { ...DEFAULT_RELEASE_RULE, quietMs: 5_000 };
const idle = { inFlight: 0, quietForMs: 5_000 };

describe('shouldRelease', () => {
  it('runs once at least 100 connections and half the peak have closed and the server is idle', () => {
    expect(shouldRelease({ peak: 2_000, open: 0, ...idle }, rule)).toBe(true);
    expect(shouldRelease({ peak: 2_000, open: 1_000, ...idle }, rule)).toBe(true);
    expect(shouldRelease({ peak: 200, open: 100, ...idle }, rule)).toBe(true);
  });

  it('waits for fewer than half the peak to be left open', () => {
    expect(shouldRelease({ peak: 2_000, open: 1_001, ...idle }, rule)).toBe(false);
    expect(shouldRelease({ peak: 10_000, open: 9_000, ...idle }, rule)).toBe(false);
  });

  it('waits for at least 100 closed, whatever the share', () => {
    expect(shouldRelease({ peak: 99, open: 0, ...idle }, rule)).toBe(false);
    expect(shouldRelease({ peak: 150, open: 51, ...idle }, rule)).toBe(false);
    expect(shouldRelease({ peak: 150, open: 50, ...idle }, rule)).toBe(true);
  });

  it('never runs with a request in flight or before the quiet period has passed', () => {
    expect(shouldRelease({ peak: 2_000, open: 0, inFlight: 1, quietForMs: 60_000 }, rule)).toBe(false);
    expect(shouldRelease({ peak: 2_000, open: 0, inFlight: 0, quietForMs: 4_999 }, rule)).toBe(false);
  });

  it('follows a rule given to it', () => {
    const strict: ReleaseRule = { minClosed: 1_000, minShare: 0.9, quietMs: 100 };
    expect(shouldRelease({ peak: 2_000, open: 0, inFlight: 0, quietForMs: 100 }, strict)).toBe(true);
    expect(shouldRelease({ peak: 2_000, open: 300, inFlight: 0, quietForMs: 100 }, strict)).toBe(false);
    expect(shouldRelease({ peak: 900, open: 0, inFlight: 0, quietForMs: 100 }, strict)).toBe(false);
  });
});
