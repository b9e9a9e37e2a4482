// Naive fp64 references for the model ops and a whole Llama-family forward pass over
// contiguous arrays. Written from the Hugging Face definitions, sharing nothing with the
// native code: plain loops, no paging, no batching tricks.

export function refGemm(a: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number> | undefined, m: number, n: number, k: number): { out: Float64Array; absSum: Float64Array } {
  const out = new Float64Array(m * n);
  const absSum = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      let t = 0;
      for (let x = 0; x < k; x++) {
        const p = a[i * k + x] * w[j * k + x];
        s += p;
        t += Math.abs(p);
      }
      out[i * n + j] = s + (bias ? bias[j] : 0);
      absSum[i * n + j] = t + (bias ? Math.abs(bias[j]) : 0);
    }
  return { out, absSum };
}

export function refRmsNorm(x: ArrayLike<number>, w: ArrayLike<number>, rows: number, dim: number, eps: number): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i] * inv * w[i];
  }
  return out;
}

export interface RefRopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** HF `_compute_default_rope_parameters` and `_compute_llama3_parameters`. */
export function refInvFreq(headDim: number, theta: number, s?: RefRopeScaling): Float64Array {
  const f = new Float64Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) {
    const base = 1 / theta ** ((2 * i) / headDim);
    if (!s) {
      f[i] = base;
      continue;
    }
    const lowWave = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWave = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    const wave = (2 * Math.PI) / base;
    if (wave < highWave) f[i] = base;
    else if (wave > lowWave) f[i] = base / s.factor;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wave - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      f[i] = (1 - smooth) * (base / s.factor) + smooth * base;
    }
  }
  return f;
}

/** rotate_half RoPE on [tokens][heads][headDim], in place. */
export function refRope(x: Float64Array, positions: ArrayLike<number>, heads: number, headDim: number, invFreq: Float64Array): void {
  const half = headDim / 2;
  for (let t = 0; t < positions.length; t++)
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const ang = positions[t] * invFreq[i];
        const c = Math.cos(ang);
        const s = Math.sin(ang);
        const x0 = x[o + i];
        const x1 = x[o + i + half];
        x[o + i] = x0 * c - x1 * s;
        x[o + i + half] = x1 * c + x0 * s;
      }
    }
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

export interface RefModel {
  hidden: number;
  inter: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  eps: number;
  theta: number;
  scaling?: RefRopeScaling;
  // Weights as fp64 values in HF layouts.
  embed: Float64Array;
  finalNorm: Float64Array;
  lmHead?: Float64Array;
  layer: {
    inputNorm: Float64Array;
    q: Float64Array;
    k: Float64Array;
    v: Float64Array;
    qBias?: Float64Array;
    kBias?: Float64Array;
    vBias?: Float64Array;
    o: Float64Array;
    postNorm: Float64Array;
    gate: Float64Array;
    up: Float64Array;
    down: Float64Array;
  }[];
}

function linear(x: Float64Array, w: Float64Array, bias: Float64Array | undefined, rows: number, out: number, inn: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < out; j++) {
      let s = bias ? bias[j] : 0;
      for (let i = 0; i < inn; i++) s += x[r * inn + i] * w[j * inn + i];
      y[r * out + j] = s;
    }
  return y;
}

/** Logits [T][vocab] of a whole sequence (causal), from scratch. */
export function refForward(m: RefModel, tokens: number[]): Float64Array {
  const T = tokens.length;
  const H = m.hidden;
  const D = m.headDim;
  const G = m.heads / m.kvHeads;
  const inv = refInvFreq(D, m.theta, m.scaling);
  const pos = tokens.map((_, i) => i);
  let x: Float64Array = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) x[t * H + i] = m.embed[tokens[t] * H + i];
  for (const L of m.layer) {
    const h = refRmsNorm(x, L.inputNorm, T, H, m.eps);
    const q = linear(h, L.q, L.qBias, T, m.heads * D, H);
    const k = linear(h, L.k, L.kBias, T, m.kvHeads * D, H);
    const v = linear(h, L.v, L.vBias, T, m.kvHeads * D, H);
    refRope(q, pos, m.heads, D, inv);
    refRope(k, pos, m.kvHeads, D, inv);
    const attn = new Float64Array(T * m.heads * D);
    for (let t = 0; t < T; t++)
      for (let hh = 0; hh < m.heads; hh++) {
        const kv = Math.floor(hh / G);
        const sc = new Float64Array(t + 1);
        let mx = -Infinity;
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[(t * m.heads + hh) * D + i] * k[(s * m.kvHeads + kv) * D + i];
          sc[s] = d / Math.sqrt(D);
          mx = Math.max(mx, sc[s]);
        }
        let z = 0;
        for (let s = 0; s <= t; s++) z += (sc[s] = Math.exp(sc[s] - mx));
        for (let s = 0; s <= t; s++)
          for (let i = 0; i < D; i++) attn[(t * m.heads + hh) * D + i] += (sc[s] / z) * v[(s * m.kvHeads + kv) * D + i];
      }
    const o = linear(attn, L.o, undefined, T, H, m.heads * D);
    for (let i = 0; i < x.length; i++) x[i] += o[i];
    const h2 = refRmsNorm(x, L.postNorm, T, H, m.eps);
    const g = linear(h2, L.gate, undefined, T, m.inter, H);
    const u = linear(h2, L.up, undefined, T, m.inter, H);
    const act = new Float64Array(T * m.inter);
    for (let i = 0; i < act.length; i++) act[i] = silu(g[i]) * u[i];
    const d = linear(act, L.down, undefined, T, H, m.inter);
    for (let i = 0; i < x.length; i++) x[i] += d[i];
  }
  x = refRmsNorm(x, m.finalNorm, T, H, m.eps);
  return linear(x, m.lmHead ?? m.embed, undefined, T, m.vocab, H);
}
