// A KV pool with fixed, arithmetic block tables, for running the model without a
// scheduler (Model.generate, benchmarks): sequence s owns the blocks
//   (l * maxSeqs + s) * blocksPerSeq + j,   j = 0 .. blocksPerSeq - 1
// of every layer l, so a token at position p of sequence s sits in slot
//   (l * maxSeqs + s) * blocksPerSeq * blockSize + p.
// The engine builds the same step shape from its own per-layer block tables instead.
import type { Backend, KVPool } from '../backend.js';
import type { DType } from '../backend/dtype.js';
import type { ForwardStep } from '../backend/model.js';
import type { ModelConfig } from './config.js';
import { packSampling, type ResolvedSampling } from './sampling.js';

export interface StepItem {
  /** Sequence index in [0, maxSeqs). */
  seq: number;
  tokens: ArrayLike<number>;
  /** Position of tokens[0]: the tokens already cached for this sequence. */
  start: number;
  /** Which of this item's tokens get logits / a sample: none, the last, or all. */
  logits: 'none' | 'last' | 'all';
  sampling?: ResolvedSampling;
  /** Index of the token the last row samples (the generated-token counter). */
  counter?: number;
}

export class ContiguousKv {
  readonly pool: KVPool;
  readonly blocksPerSeq: number;

  constructor(
    be: Backend,
    readonly config: ModelConfig,
    readonly opts: { maxSeqs: number; maxLen: number; blockSize: number; dtype: DType },
  ) {
    const { maxSeqs, maxLen, blockSize } = opts;
    if (!Number.isSafeInteger(maxSeqs) || maxSeqs < 1) throw new RangeError(`ContiguousKv: maxSeqs = ${maxSeqs} must be a positive integer`);
    if (!Number.isSafeInteger(maxLen) || maxLen < 1) throw new RangeError(`ContiguousKv: maxLen = ${maxLen} must be a positive integer`);
    this.blocksPerSeq = Math.ceil(maxLen / blockSize);
    this.pool = be.createPool({
      tier: 'device',
      numBlocks: config.numLayers * maxSeqs * this.blocksPerSeq,
      numKvHeads: config.numKvHeads,
      headDim: config.headDim,
      blockSize,
      dtype: opts.dtype,
    });
  }

  /** One forward step for these items (each a run of consecutive positions of one sequence). */
  step(items: readonly StepItem[], extra: { returnLogits?: boolean } = {}): ForwardStep {
    const L = this.config.numLayers;
    const { maxSeqs, maxLen, blockSize } = this.opts;
    const stride = this.blocksPerSeq;
    const B = items.length;
    const T = items.reduce((a, it) => a + it.tokens.length, 0);
    const tokens = new Int32Array(T);
    const positions = new Int32Array(T);
    const qStartLoc = new Int32Array(B + 1);
    const contextLens = new Int32Array(B);
    const blockTables = new Int32Array(L * B * stride);
    const slotMapping = new Int32Array(L * T);
    const rows: number[] = [];
    const rowSampling: ResolvedSampling[] = [];
    const counters: number[] = [];
    const greedy: ResolvedSampling = { temperature: 0, topK: 0, topP: 1, seed: 0 };
    let t = 0;
    items.forEach((it, b) => {
      const n = it.tokens.length;
      if (!(it.seq >= 0 && it.seq < maxSeqs)) throw new RangeError(`ContiguousKv: items[${b}].seq = ${it.seq} is out of range [0, ${maxSeqs})`);
      if (it.start + n > maxLen) throw new RangeError(`ContiguousKv: items[${b}] reaches position ${it.start + n}, past maxLen ${maxLen}`);
      qStartLoc[b] = t;
      contextLens[b] = it.start + n;
      for (let l = 0; l < L; l++) {
        const first = (l * maxSeqs + it.seq) * stride;
        for (let j = 0; j < stride; j++) blockTables[(l * B + b) * stride + j] = first + j;
      }
      for (let i = 0; i < n; i++) {
        tokens[t + i] = it.tokens[i];
        positions[t + i] = it.start + i;
        for (let l = 0; l < L; l++) slotMapping[l * T + t + i] = (l * maxSeqs + it.seq) * stride * blockSize + it.start + i;
      }
      const from = it.logits === 'all' ? 0 : it.logits === 'last' ? n - 1 : n;
      for (let i = from; i < n; i++) {
        rows.push(t + i);
        rowSampling.push(it.sampling ?? greedy);
        // Only the last row's sample is a generated token; earlier rows (prompt logits) draw
        // with the same counter, which nothing keeps.
        counters.push(it.counter ?? 0);
      }
      t += n;
    });
    qStartLoc[B] = T;
    return {
      pool: this.pool,
      tokens,
      positions,
      qStartLoc,
      contextLens,
      tableStride: stride,
      blockTables,
      slotMapping,
      logitsRows: Int32Array.from(rows),
      sampling: packSampling(rowSampling, counters),
      returnLogits: extra.returnLogits ?? false,
    };
  }

  release(): void {
    this.pool.release();
  }
}
