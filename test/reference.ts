// An independent, naive reference for the native ops, over contiguous per-sequence arrays:
// no paging, no blocking, plain loops in double precision. It shares no code with lib/ or
// csrc/ (its fp16/bf16 conversions included), so a layout or rounding bug on either side
// shows up as a mismatch instead of cancelling out.

export type RefDType = 'fp32' | 'fp16' | 'bf16';

function roundHalfEven(y: number): number {
  const f = Math.floor(y);
  const d = y - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

// Binary exponent of a > 0, exact (log2 alone can be off by one near powers of two).
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return e;
}

// Mantissa bits and smallest normal exponent of each 16-bit format.
const FORMAT = { fp16: { mant: 10, emin: -14, emax: 15 }, bf16: { mant: 7, emin: -126, emax: 127 } } as const;

/** Rounds x to the nearest value of `dtype` (ties to even), as a JS number. */
export function roundTo(dtype: RefDType, x: number): number {
  if (dtype === 'fp32') return Math.fround(x);
  if (x === 0 || !Number.isFinite(x)) return x;
  const f = FORMAT[dtype];
  const a = Math.abs(x);
  const e = Math.max(exponentOf(a), f.emin);
  const ulp = 2 ** (e - f.mant);
  const r = roundHalfEven(a / ulp) * ulp;
  const max = (2 - 2 ** -f.mant) * 2 ** f.emax;
  return Math.sign(x) * (r > max ? Infinity : r);
}

/** Bit pattern of a value already representable in `dtype` (fp16 or bf16). */
export function toBits(dtype: 'fp16' | 'bf16', x: number): number {
  const f = FORMAT[dtype];
  const expBits = dtype === 'fp16' ? 5 : 8;
  const bias = 2 ** (expBits - 1) - 1;
  const sign = x < 0 || Object.is(x, -0) ? 1 << (f.mant + expBits) : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  if (a === Infinity) return sign | (((1 << expBits) - 1) << f.mant);
  const e = exponentOf(a);
  if (e < f.emin) return sign | Math.round(a / 2 ** (f.emin - f.mant)); // subnormal
  const m = Math.round((a / 2 ** e - 1) * 2 ** f.mant);
  return sign | ((e + bias) << f.mant) | m;
}

export function fromBits(dtype: 'fp16' | 'bf16', h: number): number {
  const f = FORMAT[dtype];
  const expBits = dtype === 'fp16' ? 5 : 8;
  const bias = 2 ** (expBits - 1) - 1;
  const sign = h >> (f.mant + expBits) ? -1 : 1;
  const e = (h >> f.mant) & ((1 << expBits) - 1);
  const m = h & ((1 << f.mant) - 1);
  if (e === 0) return sign * m * 2 ** (f.emin - f.mant);
  if (e === (1 << expBits) - 1) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 2 ** f.mant) * 2 ** (e - bias);
}

/** Storage array for values (already rounded to dtype): Float32Array or bit patterns. */
export function toStorage(dtype: RefDType, values: ArrayLike<number>): Float32Array | Uint16Array {
  if (dtype === 'fp32') return Float32Array.from(values);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toBits(dtype, values[i]);
  return out;
}

export function fromStorage(dtype: RefDType, data: Float32Array | Uint16Array): Float64Array {
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = dtype === 'fp32' ? data[i] : fromBits(dtype, data[i]);
  return out;
}

/** One sequence's cached K and V: [len][numKvHeads][headDim] each. */
export interface RefSeq {
  len: number;
  k: Float64Array;
  v: Float64Array;
}

export interface RefShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** softmax scale; default 1/sqrt(headDim) */
  scale?: number;
}

// Attention of one query row (head h) over positions [0, upto) of seq. Writes headDim
// values into out at outOff.
function attendRow(seq: RefSeq, upto: number, q: ArrayLike<number>, qOff: number, h: number, s: RefShape, out: Float64Array, outOff: number) {
  const { numHeads, numKvHeads, headDim } = s;
  const scale = s.scale && s.scale > 0 ? s.scale : 1 / Math.sqrt(headDim);
  const kvh = Math.floor(h / (numHeads / numKvHeads));
  if (upto === 0) {
    for (let d = 0; d < headDim; d++) out[outOff + d] = 0;
    return;
  }
  const logits = new Float64Array(upto);
  let max = -Infinity;
  for (let t = 0; t < upto; t++) {
    const kOff = (t * numKvHeads + kvh) * headDim;
    let dot = 0;
    for (let d = 0; d < headDim; d++) dot += q[qOff + d] * seq.k[kOff + d];
    logits[t] = dot * scale;
    if (logits[t] > max) max = logits[t];
  }
  let sum = 0;
  for (let t = 0; t < upto; t++) {
    logits[t] = Math.exp(logits[t] - max);
    sum += logits[t];
  }
  for (let d = 0; d < headDim; d++) out[outOff + d] = 0;
  for (let t = 0; t < upto; t++) {
    const p = logits[t] / sum;
    const vOff = (t * numKvHeads + kvh) * headDim;
    for (let d = 0; d < headDim; d++) out[outOff + d] += p * seq.v[vOff + d];
  }
}

/** Decode: q [batch][numHeads][headDim] -> out [batch][numHeads][headDim]. */
export function refDecode(seqs: RefSeq[], q: ArrayLike<number>, s: RefShape): Float64Array {
  const out = new Float64Array(seqs.length * s.numHeads * s.headDim);
  seqs.forEach((seq, b) => {
    for (let h = 0; h < s.numHeads; h++) {
      const off = (b * s.numHeads + h) * s.headDim;
      attendRow(seq, seq.len, q, off, h, s, out, off);
    }
  });
  return out;
}

/**
 * Causal prefill: sequence b has qLens[b] new tokens, the last qLens[b] of its seq.len
 * cached tokens; query i attends to positions [0, seq.len - qLen + i]. q and out are
 * [sum(qLens)][numHeads][headDim].
 */
export function refPrefill(seqs: RefSeq[], qLens: number[], q: ArrayLike<number>, s: RefShape): Float64Array {
  const total = qLens.reduce((a, b) => a + b, 0);
  const out = new Float64Array(total * s.numHeads * s.headDim);
  let row = 0;
  seqs.forEach((seq, b) => {
    const start = seq.len - qLens[b];
    for (let i = 0; i < qLens[b]; i++, row++) {
      for (let h = 0; h < s.numHeads; h++) {
        const off = (row * s.numHeads + h) * s.headDim;
        attendRow(seq, start + i + 1, q, off, h, s, out, off);
      }
    }
  });
  return out;
}
