// Fits a cost model to this machine by running the model: the measured preset the simulator
// uses to predict what the engine will do, and the cost the engine's scheduler plans with.
// Where each constant comes from:
//   t0, perItem, perToken, perPair, perKvToken
//         least squares (non-negative) over decode steps at several batch sizes and context
//         lengths and prefill chunks of several sizes after several cached lengths, on the
//         features LinearCost defines (lib/cost/linear.ts);
//   h2d, d2h
//         copyBlocks of many blocks between the device and host pools, each way: bandwidth
//         from the bytes over the time, latency from a one-block copy;
//   storage
//         the default store read path (DEFAULT_STORAGE) until a store measures its own.
// Each timing is the median of several repetitions after a warm-up, so one spike of a shared
// machine does not move the fit; the report keeps measured and fitted seconds per point.
import type { Backend, KVPool } from '../backend.js';
import { DEFAULT_STORAGE, type CostItem } from '../cost/cost-model.js';
import { LinearCost, type LinearCoefficients } from '../cost/linear.js';
import { ContiguousKv, type StepItem } from '../model/contiguous-kv.js';
import type { Model } from '../model/model.js';

export interface Calibration {
  cost: LinearCost;
  coef: LinearCoefficients;
  channels: { h2dBandwidth: number; d2hBandwidth: number; transferLatency: number };
  /** Measured vs fitted seconds of every calibration step. */
  points: { kind: 'decode' | 'prefill' | 'mixed'; batch: number; tokens: number; cached: number; measured: number; fitted: number }[];
  seconds: number;
}

export interface CalibrateOptions {
  /** Device KV bytes of the deployment (the cost model reports it to the scheduler). */
  deviceKvBytes: number;
  /** Repetitions per point (5). */
  reps?: number;
  /** Largest prefill chunk and context measured (256, 512). */
  maxChunk?: number;
  maxContext?: number;
  blockSize?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Non-negative least squares y ~ X beta by solving the normal equations on the active
 *  set, dropping a column whose coefficient comes out negative until none does. */
export function nnls(X: number[][], y: number[]): number[] {
  const p = X[0].length;
  const active = new Set(Array.from({ length: p }, (_, j) => j));
  for (;;) {
    const cols = [...active];
    const A = cols.map((i) => cols.map((j) => X.reduce((s, row) => s + row[i] * row[j], 0)));
    const rhs = cols.map((i) => X.reduce((s, row, r) => s + row[i] * y[r], 0));
    const sol = solve(A, rhs);
    const beta = new Array<number>(p).fill(0);
    cols.forEach((j, k) => (beta[j] = sol[k]));
    const neg = cols.filter((j) => !(beta[j] >= 0));
    if (neg.length === 0) return beta;
    for (const j of neg) active.delete(j);
    if (active.size === 0) return new Array<number>(p).fill(0);
  }
}

/** Gaussian elimination with partial pivoting; columns are scaled first (the features span
 *  ten orders of magnitude). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const scale = A.map((_, j) => Math.sqrt(Math.abs(A[j][j])) || 1);
  const M = A.map((row, i) => [...row.map((v, j) => v / (scale[i] * scale[j])), b[i] / scale[i]]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[piv][c])) piv = r;
    [M[c], M[piv]] = [M[piv], M[c]];
    if (Math.abs(M[c][c]) < 1e-300) continue;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  return M.map((row, i) => (Math.abs(row[i]) < 1e-300 ? 0 : row[n] / row[i] / scale[i]));
}

export async function calibrateEngineCost(model: Model, o: CalibrateOptions): Promise<Calibration> {
  const started = performance.now();
  const c = model.config;
  const be: Backend = model.backend;
  const reps = o.reps ?? 5;
  const maxChunk = o.maxChunk ?? 256;
  const maxContext = o.maxContext ?? 512;
  const blockSize = o.blockSize ?? 16;
  const maxSeqs = 16;
  const kv = new ContiguousKv(be, c, { maxSeqs, maxLen: maxContext + maxChunk + 1, blockSize, dtype: model.dtype });
  const time = async (items: StepItem[]): Promise<number> => {
    const ts: number[] = [];
    for (let r = 0; r < reps + 1; r++) {
      const t0 = performance.now();
      await model.forward(kv.step(items)).work;
      if (r > 0) ts.push((performance.now() - t0) / 1000);
    }
    return median(ts);
  };
  const tok = (n: number) => Array.from({ length: n }, (_, i) => (i * 7 + 3) % c.vocabSize);
  try {
    // Fill every sequence's cache up to maxContext once (the contents do not matter).
    for (let s = 0; s < maxSeqs; s++) {
      for (let at = 0; at < maxContext; at += maxChunk) await model.forward(kv.step([{ seq: s, tokens: tok(Math.min(maxChunk, maxContext - at)), start: at, logits: 'none' }])).work;
    }
    const runs: { kind: 'decode' | 'prefill' | 'mixed'; batch: number; tokens: number; cached: number; items: CostItem[]; t: number }[] = [];
    for (const batch of [1, 2, 4, 8, maxSeqs]) {
      for (const ctx of [maxContext / 8, maxContext / 2, maxContext]) {
        const items: StepItem[] = Array.from({ length: batch }, (_, s) => ({ seq: s, tokens: [5], start: ctx, logits: 'last' }));
        runs.push({ kind: 'decode', batch, tokens: batch, cached: ctx, items: items.map(() => ({ phase: 'decode', tokens: 1, cachedBefore: ctx })), t: await time(items) });
      }
    }
    for (const chunk of [maxChunk / 16, maxChunk / 4, maxChunk / 2, maxChunk]) {
      for (const k of [0, maxContext / 2]) {
        // Rewrites positions [k, k + chunk) of sequence 0: the cost is the same.
        runs.push({ kind: 'prefill', batch: 1, tokens: chunk, cached: k, items: [{ phase: 'prefill', tokens: chunk, cachedBefore: k }], t: await time([{ seq: 0, tokens: tok(chunk), start: k, logits: 'last' }]) });
      }
    }
    // Mixed steps, as continuous batching runs them: a prefill chunk beside decodes (on a
    // CPU their costs add up, but the GEMMs over more rows run at a different efficiency).
    for (const chunk of [maxChunk / 4, maxChunk]) {
      for (const batch of [4, 8]) {
        const ctx = maxContext / 2;
        const items: StepItem[] = [{ seq: 0, tokens: tok(chunk), start: 0, logits: 'last' }, ...Array.from({ length: batch }, (_, i) => ({ seq: i + 1, tokens: [5], start: ctx, logits: 'last' as const }))];
        const costItems: CostItem[] = [{ phase: 'prefill', tokens: chunk, cachedBefore: 0 }, ...Array.from({ length: batch }, () => ({ phase: 'decode' as const, tokens: 1, cachedBefore: ctx }))];
        runs.push({ kind: 'mixed', batch: batch + 1, tokens: chunk + batch, cached: ctx, items: costItems, t: await time(items) });
      }
    }
    // Relative errors matter, not absolute ones: weight each point by 1 / its time.
    const X = runs.map((r) => [1, ...LinearCost.features(r.items)].map((v) => v / r.t));
    const beta = nnls(X, runs.map(() => 1));
    const coef: LinearCoefficients = { t0: beta[0], perItem: beta[1], perToken: beta[2], perPair: beta[3], perKvToken: beta[4] };
    const copy = await measureCopies(be, kv.pool, c.numKvHeads, c.headDim, blockSize, model.dtype, reps);
    const cost = new LinearCost({
      numLayers: c.numLayers,
      kvBytesPerTokenLayer: kv.pool.blockBytes / blockSize,
      deviceKvBytes: o.deviceKvBytes,
      coef,
      channels: { h2d: { bandwidth: copy.h2d, latency: copy.latency }, d2h: { bandwidth: copy.d2h, latency: copy.latency }, storage: { ...DEFAULT_STORAGE } },
      // The CPU backend's copies are memcpy on the thread pool that runs the forward pass.
      copiesShareCompute: be.name === 'cpu',
    });
    return {
      cost,
      coef,
      channels: { h2dBandwidth: copy.h2d, d2hBandwidth: copy.d2h, transferLatency: copy.latency },
      points: runs.map((r) => ({ kind: r.kind, batch: r.batch, tokens: r.tokens, cached: r.cached, measured: r.t, fitted: cost.stepTime(r.items) })),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    kv.release();
  }
}

async function measureCopies(be: Backend, device: KVPool, numKvHeads: number, headDim: number, blockSize: number, dtype: KVPool['layout']['dtype'], reps: number) {
  const n = Math.min(device.numBlocks, 256);
  const host = be.createPool({ tier: 'host', numBlocks: n, numKvHeads, headDim, blockSize, dtype });
  try {
    const pairs = new Int32Array(2 * n);
    for (let i = 0; i < n; i++) {
      pairs[2 * i] = i;
      pairs[2 * i + 1] = i;
    }
    const one = Int32Array.from([0, 0]);
    const run = async (src: KVPool, dst: KVPool, p: Int32Array) => {
      const ts: number[] = [];
      for (let r = 0; r < reps + 1; r++) {
        const t0 = performance.now();
        await be.copyBlocks(src, dst, p);
        if (r > 0) ts.push((performance.now() - t0) / 1000);
      }
      return median(ts);
    };
    const latency = Math.min(await run(device, host, one), await run(host, device, one));
    const bytes = n * device.blockBytes;
    const d2h = bytes / Math.max(1e-9, (await run(device, host, pairs)) - latency);
    const h2d = bytes / Math.max(1e-9, (await run(host, device, pairs)) - latency);
    return { d2h, h2d, latency };
  } finally {
    host.release();
  }
}
