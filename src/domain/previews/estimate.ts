/**
 * Size estimates from a uniform sample without replacement: a Wilson score interval for the
 * qualifying share, with the finite-population correction (so the interval closes to the
 * exact count as the sample approaches the whole store), scaled to the population.
 */
export interface Estimate {
  estimatedSize: number;
  confidenceLevel: number;
  confidenceInterval: { low: number; high: number };
  standardError: number;
  profilesRead: number;
  totalProfiles: number;
  /** True when the sample was the whole population: the size is a count, not an estimate. */
  exact: boolean;
  estimatedNamespaceDistribution: { namespace: string; count: number }[];
  /** Epoch ms when this estimate was computed. */
  computedAt: number;
}

export interface SampleCounts {
  /** Profiles read so far. */
  read: number;
  /** Of those, how many qualified. */
  qualified: number;
  /** Profiles in the store at the snapshot. */
  population: number;
  /** Qualifying sampled profiles with an identity in each namespace. */
  namespaces: Record<string, number>;
}

/** Inverse of the standard normal CDF (Acklam's rational approximation, relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (p <= 0 || p >= 1) throw new RangeError('p must be in (0, 1)');
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239,
  ];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  }
  if (p > 1 - low) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

/**
 * The estimate for the sample read so far. Only the final estimate of a preview that read the
 * whole store is `exact`; running estimates never are, even when their interval has closed.
 */
export function estimateFromSample(
  counts: SampleCounts,
  confidenceLevel: number,
  final: boolean,
  computedAt = Date.now(),
): Estimate {
  const { read: n, qualified: x, population: N } = counts;
  const exact = final && n >= N;
  const share = n > 0 ? x / n : 0;
  const scale = n > 0 ? N / n : 0;
  const namespaces = Object.entries(counts.namespaces)
    .map(([namespace, count]) => ({ namespace, count: exact ? count : Math.round(count * scale) }))
    .sort((a, b) => b.count - a.count || (a.namespace < b.namespace ? -1 : 1));
  const base = {
    confidenceLevel,
    profilesRead: n,
    totalProfiles: N,
    exact,
    estimatedNamespaceDistribution: namespaces,
    computedAt,
  };
  if (exact) return { ...base, estimatedSize: x, confidenceInterval: { low: x, high: x }, standardError: 0 };
  if (n === 0) return { ...base, estimatedSize: 0, confidenceInterval: { low: 0, high: N }, standardError: 0 };
  const fpc = N > 1 ? Math.max(0, (N - n) / (N - 1)) : 0;
  // With the whole population read the correction is 0: an infinite effective sample, a closed interval.
  const effective = fpc > 0 ? n / fpc : Number.POSITIVE_INFINITY;
  const z = normalQuantile(1 - (1 - confidenceLevel) / 2);
  const z2 = z * z;
  const denominator = 1 + z2 / effective;
  const center = (share + z2 / (2 * effective)) / denominator;
  const half = (z / denominator) * Math.sqrt((share * (1 - share)) / effective + z2 / (4 * effective * effective));
  const clamp = (v: number) => Math.min(N, Math.max(0, v));
  return {
    ...base,
    estimatedSize: Math.round(share * N),
    confidenceInterval: { low: clamp(Math.floor((center - half) * N)), high: clamp(Math.ceil((center + half) * N)) },
    standardError: N * Math.sqrt(((share * (1 - share)) / n) * fpc),
  };
}

/**
 * About how many profiles a sample needs for its interval to have the given half-width (a
 * share of the population) when the qualifying share is near `share`: the normal approximation,
 * ignoring the finite-population correction (which only narrows the interval).
 */
export function sampleSizeFor(share: number, halfWidth: number, confidenceLevel: number): number {
  const z = normalQuantile(1 - (1 - confidenceLevel) / 2);
  return Math.ceil((z * z * share * (1 - share)) / (halfWidth * halfWidth));
}

/**
 * How many profiles a preview samples (docs/domain.md): the whole store up to 1 M profiles, 1 M
 * from there to 20 M, 5 % above; a requested size is capped at the store.
 */
export function defaultSampleSize(population: number, requested?: number | null): number {
  if (requested != null) return Math.min(requested, population);
  if (population <= 20_000_000) return Math.min(population, 1_000_000);
  return Math.ceil(population * 0.05);
}
