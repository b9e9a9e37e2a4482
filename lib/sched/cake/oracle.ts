// The best a single split can do for one request's stored prefix: chunks [0, k) computed
// from the front while chunks [k, n) load from the back, the two running fully in parallel,
// then the uncached suffix. It is the yardstick Cake's TTFT is measured against, not a
// schedule: it assumes compute and the storage channel are each busy without a gap.

export interface OracleResult {
  /** Chunks [0, split) computed, [split, n) loaded. */
  split: number;
  /** max(compute of [0, split), load of [split, n)) + suffixTime, seconds. */
  time: number;
}

function finiteNonNeg(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`cakeOracle: ${name} must be a finite number >= 0, got ${String(v)}`);
  }
  return v;
}

/**
 * min over k in [0, n] of max(sum_{i<k} computeChunk(i), sum_{i>=k} loadChunk(i)) + suffixTime.
 * O(n): one pass for the total load, one pass moving k up. Per-chunk times may be any
 * non-negative values (in practice compute rises with position and loads are flat); the
 * answer is exact either way. Ties go to the smaller split (fewer chunks computed), since
 * compute is what other requests contend for.
 */
export function cakeOracle(
  computeChunk: (i: number) => number,
  loadChunk: (i: number) => number,
  n: number,
  suffixTime: number,
): OracleResult {
  if (typeof computeChunk !== 'function') throw new TypeError('cakeOracle: computeChunk must be a function');
  if (typeof loadChunk !== 'function') throw new TypeError('cakeOracle: loadChunk must be a function');
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw new RangeError(`cakeOracle: n must be an integer >= 0, got ${String(n)}`);
  }
  finiteNonNeg('suffixTime', suffixTime);
  const load = new Float64Array(n);
  let loadRest = 0;
  for (let i = 0; i < n; i++) {
    load[i] = finiteNonNeg(`loadChunk(${i})`, loadChunk(i));
    loadRest += load[i];
  }
  let computeSum = 0;
  let split = 0;
  let best = loadRest;
  for (let k = 1; k <= n; k++) {
    computeSum += finiteNonNeg(`computeChunk(${k - 1})`, computeChunk(k - 1));
    loadRest -= load[k - 1];
    // Running sums of many terms can leave a tiny negative remainder at k = n.
    const cost = Math.max(computeSum, k === n ? 0 : loadRest);
    if (cost < best) {
      best = cost;
      split = k;
    }
  }
  return { split, time: best + suffixTime };
}
