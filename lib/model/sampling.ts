// Per-request sampling options, checked once when a request arrives, and packed per step
// into the arrays the native sampler reads (one entry per logits row).

export interface SamplingOptions {
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 (default) = off. */
  topK?: number;
  /** Keep the smallest most-likely set whose probability reaches p; 1 (default) = off. */
  topP?: number;
  /** Integer in [0, 2^53); the same seed and logits give the same tokens on every run and batch. */
  seed?: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/** Checks options; `name` prefixes error messages (e.g. "generate: sampling"). */
export function resolveSampling(o: SamplingOptions | undefined, name = 'sampling'): ResolvedSampling {
  if (o === undefined) return { temperature: 0, topK: 0, topP: 1, seed: 0 };
  if (typeof o !== 'object' || o === null) throw new TypeError(`${name} must be an object`);
  const t = o.temperature ?? 0;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new RangeError(`${name}.temperature = ${t} must be a finite number >= 0`);
  const k = o.topK ?? 0;
  if (!Number.isSafeInteger(k) || k < 0 || k > 2 ** 31 - 1) throw new RangeError(`${name}.topK = ${k} must be an integer in [0, 2^31)`);
  const p = o.topP ?? 1;
  if (typeof p !== 'number' || !(p > 0 && p <= 1)) throw new RangeError(`${name}.topP = ${p} must be in (0, 1]`);
  const s = o.seed ?? 0;
  if (!Number.isSafeInteger(s) || s < 0) throw new RangeError(`${name}.seed = ${s} must be an integer in [0, 2^53)`);
  return { temperature: t, topK: k, topP: p, seed: s };
}

/** The native sampler's per-row arrays (see docs/model-native-api.md, Sampling). */
export interface SamplingArrays {
  temperature: Float32Array;
  topK: Int32Array;
  topP: Float32Array;
  seed: Float64Array;
  counter: Int32Array;
}

/** Packs one row per entry; `counters[r]` is the index of the token row r generates. */
export function packSampling(rows: readonly ResolvedSampling[], counters: ArrayLike<number>): SamplingArrays {
  const n = rows.length;
  const out: SamplingArrays = {
    temperature: new Float32Array(n),
    topK: new Int32Array(n),
    topP: new Float32Array(n),
    seed: new Float64Array(n),
    counter: new Int32Array(n),
  };
  for (let r = 0; r < n; r++) {
    out.temperature[r] = rows[r].temperature;
    out.topK[r] = rows[r].topK;
    out.topP[r] = rows[r].topP;
    out.seed[r] = rows[r].seed;
    out.counter[r] = counters[r];
  }
  return out;
}
