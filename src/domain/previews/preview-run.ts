/**
 * What a preview decides, whichever database it reads: how many profiles it samples, how big
 * each random chunk is and when random reading stops, the running and final estimates, the
 * namespace distribution, and the stored results. The job worker on SQLite (preview-sampling.ts)
 * and a cluster node on PostgreSQL (cluster/cluster-preview-job.ts) both drive one
 * `PreviewCounter` with what their reads return, so the same sample, the same verdicts and the
 * same seed give the same answer on both (docs/scale-out.md, "Previews on a cluster").
 */
import { defaultSampleSize, type Estimate, estimateFromSample, type SampleCounts, sampleSizeFor } from './estimate.js';
import { permutation } from './preview-samplers.js';

/** What a preview's progress reports carry: how far, and the running estimate. */
export interface PreviewProgress {
  done: number;
  total: number;
  estimate: Estimate;
}

/** What a preview keeps: the running estimate while it runs, the full-sample one when it has succeeded. */
export interface PreviewResult {
  estimate: Estimate;
  /** Profiles of the sample read. */
  sampleSize: number;
}

/** The part of a preview's plan that decides its answer. */
export interface PreviewSettings {
  /** Requested sample size; null for the default rule. */
  sampleSize: number | null;
  confidenceLevel: number;
  seed: number;
}

/**
 * When a full scan follows (the sample is the whole store), random-order reading stops once the
 * interval's half-width is this share of the population (docs/performance.md's running estimate).
 */
const TIGHT_ENOUGH = 0.02;
/** The first random chunk: a running estimate within moments. */
const FIRST_CHUNK = 1_000;
/** The only random chunk before a cheap exact count (`exactIsCheap`). */
const ROUGH_CHUNK = 250;
const MAX_CHUNK = 50_000;
/** See `exactIsCheap`: about a quarter of a second of index reads and probes. */
const CHEAP_MEMBERS = 1_000_000;
/** Qualifying profiles whose identities a whole-store preview reads for its namespace distribution. */
const NAMESPACE_SAMPLE = 1_000;

/**
 * A statement that starts from stored audiences reads at most their members (a probe each per
 * filter): when that is little, the exact count comes sooner than a ±2 % sample would, so one
 * small random chunk gives a first, rough estimate and the scan follows. `members`: the
 * audiences' current members by their kept sizes.
 */
export function exactIsCheap(startsFromAudiences: { filters: number } | undefined, members: number): boolean {
  return startsFromAudiences !== undefined && members * (1 + startsFromAudiences.filters) <= CHEAP_MEMBERS;
}

/** Rows of the namespace count of a list of profiles: distinct profiles per namespace. */
export interface NamespaceRow {
  namespace: string;
  c: number;
}

/**
 * One preview's counting, fed by its reads. Random chunks first (`nextChunk`, `addChunk`); when
 * the sample is the whole store, one exact scan after them (`scanSample`, `addScan`); then
 * `final`. Every decision that shapes the answer is made here.
 */
export class PreviewCounter {
  /** Profiles the preview samples. */
  readonly n: number;
  /** The sample is the whole store: random reading stops early and an exact scan follows. */
  readonly wholeStore: boolean;
  readonly counts: SampleCounts;
  estimate: Estimate;
  /** Qualifying profiles of a partial sample, in the order they were read (a whole-store preview's come from its scan). */
  private qualifying: number[] = [];
  private chunk: number;
  private exhausted = false;

  constructor(
    private readonly settings: PreviewSettings,
    population: number,
    private readonly cheap: boolean,
  ) {
    this.n = defaultSampleSize(population, settings.sampleSize);
    this.wholeStore = this.n === population;
    this.counts = { read: 0, qualified: 0, population, namespaces: {} };
    this.estimate = estimateFromSample(this.counts, settings.confidenceLevel, false);
    this.chunk = cheap ? ROUGH_CHUNK : FIRST_CHUNK;
  }

  /** The size of the next random chunk to read; 0 once random reading is over. */
  nextChunk(): number {
    const { counts } = this;
    if (this.exhausted || counts.read >= this.n) return 0;
    if (this.wholeStore && this.enough()) return 0;
    return Math.min(this.chunk, this.n - counts.read);
  }

  /**
   * A random chunk read: `read` profiles, of which `hits` qualified, and the namespace count of
   * the hits (none asked for when there were none). Returns the progress to report.
   */
  addChunk(read: number, hits: readonly number[], namespaces: readonly NamespaceRow[]): PreviewProgress {
    const { counts } = this;
    if (read === 0) {
      this.exhausted = true;
      return { done: counts.read, total: this.n, estimate: this.estimate };
    }
    if (!this.wholeStore) for (const id of hits) this.qualifying.push(id);
    for (const row of namespaces) counts.namespaces[row.namespace] = (counts.namespaces[row.namespace] ?? 0) + row.c;
    counts.read += read;
    counts.qualified += hits.length;
    this.estimate = estimateFromSample(counts, this.settings.confidenceLevel, false);
    if (this.wholeStore) {
      // Only as much more as the share seen so far says the interval needs (a tenth over,
      // the share nudged towards 1/2 so a first chunk without hits does not stop it short).
      const share = (counts.qualified + 2) / (counts.read + 4);
      const needed = sampleSizeFor(share, TIGHT_ENOUGH, this.settings.confidenceLevel) * 1.1;
      this.chunk = Math.min(MAX_CHUNK, Math.max(FIRST_CHUNK / 2, Math.ceil(needed - counts.read)));
    } else {
      // Larger chunks amortise the per-chunk work.
      this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
    }
    return { done: counts.read, total: this.n, estimate: this.estimate };
  }

  /**
   * The whole store's qualifying profiles, from the exact scan (any order): kept in id order,
   * and the seeded uniform sample of them whose identities give the namespace distribution is
   * returned, in id order, for the caller to count. The distribution stays an estimate (as its
   * name says): counting every hit costs an index seek per hit, as much as the scan itself.
   */
  scanSample(qualifying: readonly number[]): number[] {
    this.qualifying = [...qualifying].sort((a, b) => a - b);
    return sampleOf(this.qualifying, NAMESPACE_SAMPLE, this.settings.seed);
  }

  /** The scan's namespace counts of `scanSample`'s ids, scaled to all the qualifying profiles. */
  addScan(sampled: number, namespaces: readonly NamespaceRow[]): void {
    const { counts } = this;
    const scale = sampled > 0 ? this.qualifying.length / sampled : 0;
    counts.namespaces = {};
    for (const row of namespaces) counts.namespaces[row.namespace] = Math.round(row.c * scale);
    counts.read = counts.population;
    counts.qualified = this.qualifying.length;
  }

  /** The full-sample estimate, as the last progress report. */
  final(): PreviewProgress {
    this.estimate = estimateFromSample(this.counts, this.settings.confidenceLevel, true);
    return { done: this.n, total: this.n, estimate: this.estimate };
  }

  /** The job's result and its units of work. */
  result(): { result: PreviewResult; units: number } {
    return {
      result: { estimate: this.estimate, sampleSize: this.estimate.profilesRead },
      units: this.estimate.profilesRead,
    };
  }

  /** The qualifying profiles as stored (`preview_results.profile_ids`): sorted doubles, packed. */
  packedResults(): { bytes: Buffer; count: number } {
    const sorted = Float64Array.from(this.qualifying);
    // The scan's ids are kept in order; random chunks' are not.
    if (!ascending(sorted)) sorted.sort();
    return { bytes: Buffer.from(sorted.buffer, sorted.byteOffset, sorted.byteLength), count: sorted.length };
  }

  private enough(): boolean {
    if (this.counts.read === 0) return false;
    if (this.cheap) return true;
    const { low, high } = this.estimate.confidenceInterval;
    return high - low <= 2 * TIGHT_ENOUGH * this.counts.population;
  }
}

/** Up to `size` of the ids, a seeded uniform sample without replacement (all of them when there are fewer). */
function sampleOf(ids: readonly number[], size: number, seed: number): number[] {
  if (ids.length <= size) return [...ids];
  const position = permutation(ids.length, seed);
  // In id order: the identity index is then read front to back.
  return Array.from({ length: size }, (_, i) => ids[position(i)]!).sort((a, b) => a - b);
}

function ascending(ids: Float64Array): boolean {
  for (let i = 1; i < ids.length; i++) if (ids[i]! < ids[i - 1]!) return false;
  return true;
}
