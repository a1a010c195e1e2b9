import { describe, expect, it } from 'vitest';
import { defaultSampleSize, estimateFromSample, normalQuantile } from '../../src/domain/previews/estimate.js';
import { permutation } from '../../src/domain/previews/preview-samplers.js';

describe('estimates', () => {
  it('has the textbook normal quantiles', () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.995)).toBeCloseTo(2.575829, 5);
    expect(normalQuantile(0.5)).toBeCloseTo(0, 9);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.326348, 5);
  });

  it('gives the Wilson interval for a sample of an effectively infinite population', () => {
    // x = 30 of n = 100 at 95 %: Wilson interval (0.2189, 0.3958).
    const e = estimateFromSample({ read: 100, qualified: 30, population: 1e12, namespaces: {} }, 0.95, false);
    expect(e.confidenceInterval.low / 1e12).toBeCloseTo(0.2189, 3);
    expect(e.confidenceInterval.high / 1e12).toBeCloseTo(0.3958, 3);
    expect(e.estimatedSize).toBe(0.3e12);
    expect(e.standardError / 1e12).toBeCloseTo(Math.sqrt((0.3 * 0.7) / 100), 4);
  });

  it('narrows with the finite-population correction and closes when the whole store was read', () => {
    const half = estimateFromSample({ read: 500, qualified: 150, population: 1000, namespaces: {} }, 0.95, false);
    const infinite = estimateFromSample({ read: 500, qualified: 150, population: 1e9, namespaces: {} }, 0.95, false);
    expect((half.confidenceInterval.high - half.confidenceInterval.low) / 1000).toBeLessThan(
      (infinite.confidenceInterval.high - infinite.confidenceInterval.low) / 1e9,
    );
    const whole = estimateFromSample(
      { read: 1000, qualified: 300, population: 1000, namespaces: { email: 300 } },
      0.95,
      true,
    );
    expect(whole).toMatchObject({
      exact: true,
      estimatedSize: 300,
      confidenceInterval: { low: 300, high: 300 },
      standardError: 0,
    });
    const running = estimateFromSample({ read: 1000, qualified: 300, population: 1000, namespaces: {} }, 0.95, false);
    expect(running).toMatchObject({ exact: false, estimatedSize: 300, confidenceInterval: { low: 300, high: 300 } });
  });

  it('clamps the interval to [0, population]', () => {
    const none = estimateFromSample({ read: 50, qualified: 0, population: 1000, namespaces: {} }, 0.99, false);
    expect(none.confidenceInterval.low).toBe(0);
    const all = estimateFromSample({ read: 50, qualified: 50, population: 1000, namespaces: {} }, 0.99, false);
    expect(all.confidenceInterval.high).toBe(1000);
  });

  it('samples the whole store up to 1 M, 1 M up to 20 M and 5 % above', () => {
    expect(defaultSampleSize(800_000)).toBe(800_000);
    expect(defaultSampleSize(5_000_000)).toBe(1_000_000);
    expect(defaultSampleSize(40_000_000)).toBe(2_000_000);
    expect(defaultSampleSize(1000, 5000)).toBe(1000);
    expect(defaultSampleSize(1000, 10)).toBe(10);
  });

  it('walks a seeded permutation: every position once, different per seed', () => {
    for (const size of [1, 2, 3, 1000, 4097]) {
      const p = permutation(size, 42);
      const seen = new Set(Array.from({ length: size }, (_, i) => p(i)));
      expect(seen.size).toBe(size);
      expect(Math.max(...seen)).toBe(size - 1);
    }
    const a = Array.from({ length: 20 }, (_, i) => permutation(1000, 1)(i));
    const b = Array.from({ length: 20 }, (_, i) => permutation(1000, 2)(i));
    expect(a).not.toEqual(b);
  });
});
