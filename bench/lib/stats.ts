/**
 * Small statistics for the benchmarks: latency samples with microsecond resolution and medians of repeated
 * rounds. Pure: no I/O, no clock.
 */

/**
 * A bounded buffer of latency samples in milliseconds (float). Bounded so a long or fast run cannot grow memory
 * without limit in the load generator's process: past `capacity` samples, reservoir sampling keeps a uniform
 * sample of everything seen (deterministic LCG, so reruns are comparable).
 */
export class LatencySamples {
  readonly #values: Float64Array;
  #count = 0;
  #seen = 0;
  #seed = 12345;

  constructor(capacity = 1_000_000) {
    this.#values = new Float64Array(capacity);
  }

  add(ms: number): void {
    this.#seen++;
    if (this.#count < this.#values.length) {
      this.#values[this.#count++] = ms;
      return;
    }
    this.#seed = (this.#seed * 1103515245 + 12345) % 2147483648;
    const slot = this.#seed % this.#seen;
    if (slot < this.#values.length) this.#values[slot] = ms;
  }

  get count(): number {
    return this.#seen;
  }

  /** Percentiles (0..100) in milliseconds; NaN when there are no samples. */
  percentiles(ps: readonly number[]): number[] {
    if (this.#count === 0) return ps.map(() => Number.NaN);
    const sorted = this.#values.slice(0, this.#count).sort();
    return ps.map((p) => percentileOfSorted(sorted, p));
  }
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  const index = Math.min(sorted.length - 1, Math.max(0, rank - 1));
  return sorted[index] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 === 1 ? (finite[mid] ?? Number.NaN) : ((finite[mid - 1] ?? 0) + (finite[mid] ?? 0)) / 2;
}

export function ratio(value: number, reference: number): number {
  return reference > 0 && Number.isFinite(value) && Number.isFinite(reference) ? value / reference : Number.NaN;
}
