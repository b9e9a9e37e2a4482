// Summary statistics the way vLLM's benchmark_serving reports them (numpy's defaults).

export interface Percentiles {
  mean: number;
  median: number;
  p90: number;
  p99: number;
}

/** The q-th percentile (0..100) of ascending `sorted`, by linear interpolation between the
 *  two nearest ranks (numpy's default 'linear' method): rank = q/100 * (n - 1).
 *  NaN for an empty array: no data must not read as zero latency. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (!(q >= 0 && q <= 100)) throw new Error(`percentile: q must be in [0, 100], got ${q}`);
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = (q / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** Mean, median, p90, p99 of `values` (any order; not modified). All NaN when empty. */
export function percentiles(values: ArrayLike<number>): Percentiles {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i];
  return {
    mean: sorted.length === 0 ? NaN : sum / sorted.length,
    median: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
  };
}
