// Builds paged KV test cases: random per-sequence K/V (rounded to the dtype), placed in a
// pool image through shuffled block tables, with the layout math written out here
// independently of lib/ and csrc/: block [2][numKvHeads][blockSize][headDim].
import { roundTo, toStorage, type RefDType, type RefSeq } from '../reference.js';
import type { Rng } from './rng.js';

export interface PagedCase {
  dtype: RefDType;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  numBlocks: number;
  seqs: RefSeq[];
  blockTables: Int32Array;
  tableStride: number;
  contextLens: Int32Array;
  /** The whole pool, in storage form (Float32Array or fp16/bf16 bit patterns). */
  image: Float32Array | Uint16Array;
}

export interface PagedSpec {
  dtype: RefDType;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  lens: number[];
  /** Unused blocks mixed in among the used ones. */
  spareBlocks?: number;
  /** Extra table columns past what the longest sequence needs. */
  extraColumns?: number;
  /** Magnitude of K values (larger = peakier softmax). */
  kScale?: number;
}

/** Value stored in slots no sequence owns: large enough to change any output that reads it. */
export const GARBAGE = 1000;

export function elementOffset(c: { numKvHeads: number; headDim: number; blockSize: number }, block: number, kv: number, head: number, token: number): number {
  const headStride = c.blockSize * c.headDim;
  const kvStride = c.numKvHeads * headStride;
  return block * 2 * kvStride + kv * kvStride + head * headStride + token * c.headDim;
}

export function randomValues(rng: Rng, n: number, dtype: RefDType, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = roundTo(dtype, rng.sym(scale));
  return out;
}

export function buildPaged(rng: Rng, spec: PagedSpec): PagedCase {
  const { dtype, numKvHeads, headDim, blockSize, lens } = spec;
  const row = numKvHeads * headDim;
  const seqs: RefSeq[] = lens.map((len) => ({
    len,
    k: randomValues(rng, len * row, dtype, spec.kScale ?? 1),
    v: randomValues(rng, len * row, dtype),
  }));
  const needed = lens.map((l) => Math.ceil(l / blockSize));
  const used = needed.reduce((a, b) => a + b, 0);
  const numBlocks = Math.max(1, used + (spec.spareBlocks ?? 2));
  const tableStride = Math.max(1, ...needed) + (spec.extraColumns ?? 1);
  const ids = rng.shuffle(Array.from({ length: numBlocks }, (_, i) => i));
  const blockTables = new Int32Array(lens.length * tableStride);
  const values = new Float64Array(numBlocks * 2 * row * blockSize).fill(GARBAGE);
  let next = 0;
  lens.forEach((len, b) => {
    for (let j = 0; j < tableStride; j++) {
      // Columns past the sequence's blocks hold anything; in-range ids here would hide a
      // kernel that reads too far only if it ignored contextLens, so use a wild value.
      blockTables[b * tableStride + j] = j < needed[b] ? ids[next++] : -7777;
    }
    for (let t = 0; t < len; t++) {
      const block = blockTables[b * tableStride + Math.floor(t / blockSize)];
      for (let h = 0; h < numKvHeads; h++)
        for (let d = 0; d < headDim; d++) {
          const src = (t * numKvHeads + h) * headDim + d;
          values[elementOffset(spec, block, 0, h, t % blockSize) + d] = seqs[b].k[src];
          values[elementOffset(spec, block, 1, h, t % blockSize) + d] = seqs[b].v[src];
        }
    }
  });
  return {
    dtype,
    numKvHeads,
    headDim,
    blockSize,
    numBlocks,
    seqs,
    blockTables,
    tableStride,
    contextLens: Int32Array.from(lens),
    image: toStorage(dtype, values),
  };
}

/** Unit roundoff of the storage type: half an ulp, relative. */
export function unitRoundoff(dtype: RefDType): number {
  return dtype === 'fp32' ? 2 ** -24 : dtype === 'fp16' ? 2 ** -11 : 2 ** -8;
}

/**
 * Largest |got - want| / allowed over all elements (<= 1 passes), with the index of the
 * worst one. Allowed error per element:
 *   fp32: 1e-5 * (|want| + vmax). Relative to the output's scale rather than to |want|
 *         alone, because outputs are averages of V that can cancel to near zero.
 *   fp16/bf16: u * |want| + 2u * vmax + 1e-6, u = 2^-11 (fp16) or 2^-8 (bf16). Inputs are
 *         rounded to the dtype on both sides, so the differences left are (a) rounding the
 *         output to the dtype, at most u * |want|, and (b) accumulation order and any
 *         reduced-precision softmax weights inside a kernel (a GPU kernel may round P to
 *         the dtype before P.V), at most about u * sum(p_i |v_i|) <= u * vmax; the factor
 *         2 leaves room for both exp and rescaling steps of an online softmax.
 */
export function compare(got: ArrayLike<number>, want: ArrayLike<number>, dtype: RefDType, vmax = 1): { ratio: number; at: number; got: number; want: number } {
  const u = unitRoundoff(dtype);
  let worst = { ratio: 0, at: -1, got: 0, want: 0 };
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const g = got[i];
    const allowed = dtype === 'fp32' ? 1e-5 * (Math.abs(w) + vmax) : u * Math.abs(w) + 2 * u * vmax + 1e-6;
    const r = Number.isNaN(g) ? Infinity : Math.abs(g - w) / allowed;
    if (r > worst.ratio || (worst.at < 0 && r === Infinity)) worst = { ratio: r, at: i, got: g, want: w };
  }
  return worst;
}
