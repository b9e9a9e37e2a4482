// An independent, naive forward pass of a Llama-family decoder, in double precision, over
// contiguous per-sequence arrays. It reads the raw Hugging Face config.json fields and the
// weights as plain arrays, and follows the HF modeling code (LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM) step by step; nothing here is shared with lib/ or
// csrc/, so a mistake on either side shows up as a mismatch.
//
// Rounding mirrors only what the native path defines as storage: K and V are rounded to
// the KV pool's dtype when cached, and so are the attention inputs q and outputs (the
// attention kernels take and return the pool's dtype). Optionally the inputs of every
// matrix product are rounded too (`gemmInputDtype`, for backends whose GEMM takes
// 16-bit activations). Everything else is exact fp64.
import { roundTo, type RefDType } from '../reference.js';
import type { HfConfig, Weights } from './tiny-model.js';

export interface RefOptions {
  kvDtype?: RefDType;
  gemmInputDtype?: RefDType;
}

export class RefModel {
  readonly hidden: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly inter: number;
  readonly vocab: number;
  readonly layers: number;
  readonly eps: number;
  readonly invFreq: Float64Array;
  private readonly kvDtype: RefDType | null;
  private readonly gemmDtype: RefDType | null;

  constructor(
    readonly config: HfConfig,
    readonly w: Weights,
    opts: RefOptions = {},
  ) {
    this.hidden = config.hidden_size as number;
    this.heads = config.num_attention_heads as number;
    this.kvHeads = (config.num_key_value_heads as number) ?? this.heads;
    this.headDim = (config.head_dim as number) ?? this.hidden / this.heads;
    this.inter = config.intermediate_size as number;
    this.vocab = config.vocab_size as number;
    this.layers = config.num_hidden_layers as number;
    this.eps = (config.rms_norm_eps as number) ?? 1e-6;
    this.invFreq = ropeInvFreq(config, this.headDim);
    this.kvDtype = opts.kvDtype ?? null;
    this.gemmDtype = opts.gemmInputDtype ?? null;
  }

  newSequence(): RefSequence {
    return { len: 0, k: Array.from({ length: this.layers }, () => []), v: Array.from({ length: this.layers }, () => []) };
  }

  private weight(name: string): Float64Array {
    const x = this.w.get(name);
    if (!x) throw new Error(`reference: no weight ${name}`);
    return x;
  }

  // y[n] = sum_k x[k] W[n][k] (+ b[n]); W is [out][in], as nn.Linear stores it.
  private linear(x: Float64Array, name: string, out: number, bias?: string): Float64Array {
    const W = this.weight(name);
    const inDim = x.length;
    const xin = this.gemmDtype ? x.map((v) => roundTo(this.gemmDtype!, v)) : x;
    const y = new Float64Array(out);
    for (let n = 0; n < out; n++) {
      let s = 0;
      const row = n * inDim;
      for (let k = 0; k < inDim; k++) s += xin[k] * W[row + k];
      y[n] = s;
    }
    if (bias) {
      const b = this.weight(bias);
      for (let n = 0; n < out; n++) y[n] += b[n];
    }
    return y;
  }

  private rmsnorm(x: Float64Array, name: string): Float64Array {
    const g = this.weight(name);
    let ss = 0;
    for (const v of x) ss += v * v;
    const r = 1 / Math.sqrt(ss / x.length + this.eps);
    return x.map((v, i) => v * r * g[i]);
  }

  // HF rotate_half: the pairs are (i, i + headDim/2).
  private rope(x: Float64Array, numHeads: number, pos: number): void {
    const d = this.headDim;
    const half = d / 2;
    for (let h = 0; h < numHeads; h++) {
      const o = h * d;
      for (let i = 0; i < half; i++) {
        const a = pos * this.invFreq[i];
        const c = Math.cos(a);
        const s = Math.sin(a);
        const x1 = x[o + i];
        const x2 = x[o + i + half];
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
    }
  }

  private round(x: Float64Array): Float64Array {
    return this.kvDtype ? x.map((v) => roundTo(this.kvDtype!, v)) : x;
  }

  /**
   * Runs `tokens` as the next tokens of `seq` (prefill or decode, the same code) and
   * returns the logits of every one of them, [tokens.length][vocab].
   */
  forward(seq: RefSequence, tokens: number[]): Float64Array[] {
    const H = this.hidden;
    const hd = this.headDim;
    const bias = this.config.model_type === 'qwen2';
    const embed = this.weight('model.embed_tokens.weight');
    const xs: Float64Array[] = tokens.map((t) => {
      if (!(t >= 0 && t < this.vocab)) throw new Error(`reference: token ${t} out of range`);
      return embed.slice(t * H, (t + 1) * H);
    });
    const start = seq.len;
    for (let l = 0; l < this.layers; l++) {
      const p = `model.layers.${l}.`;
      const qs: Float64Array[] = [];
      for (let i = 0; i < xs.length; i++) {
        const hn = this.rmsnorm(xs[i], `${p}input_layernorm.weight`);
        const q = this.linear(hn, `${p}self_attn.q_proj.weight`, this.heads * hd, bias ? `${p}self_attn.q_proj.bias` : undefined);
        const k = this.linear(hn, `${p}self_attn.k_proj.weight`, this.kvHeads * hd, bias ? `${p}self_attn.k_proj.bias` : undefined);
        const v = this.linear(hn, `${p}self_attn.v_proj.weight`, this.kvHeads * hd, bias ? `${p}self_attn.v_proj.bias` : undefined);
        this.rope(q, this.heads, start + i);
        this.rope(k, this.kvHeads, start + i);
        qs.push(this.round(q));
        seq.k[l].push(this.round(k));
        seq.v[l].push(this.round(v));
      }
      const group = this.heads / this.kvHeads;
      const scale = 1 / Math.sqrt(hd);
      for (let i = 0; i < xs.length; i++) {
        const upto = start + i + 1; // causal: positions 0 .. start + i
        const attn = new Float64Array(this.heads * hd);
        for (let h = 0; h < this.heads; h++) {
          const kvh = Math.floor(h / group);
          const s = new Float64Array(upto);
          let max = -Infinity;
          for (let t = 0; t < upto; t++) {
            const kt = seq.k[l][t];
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += qs[i][h * hd + d] * kt[kvh * hd + d];
            s[t] = dot * scale;
            if (s[t] > max) max = s[t];
          }
          let sum = 0;
          for (let t = 0; t < upto; t++) sum += s[t] = Math.exp(s[t] - max);
          for (let t = 0; t < upto; t++) {
            const pt = s[t] / sum;
            const vt = seq.v[l][t];
            for (let d = 0; d < hd; d++) attn[h * hd + d] += pt * vt[kvh * hd + d];
          }
        }
        const o = this.linear(this.round(attn), `${p}self_attn.o_proj.weight`, H);
        const x1 = xs[i].map((v, j) => v + o[j]);
        const hn = this.rmsnorm(x1, `${p}post_attention_layernorm.weight`);
        const g = this.linear(hn, `${p}mlp.gate_proj.weight`, this.inter);
        const u = this.linear(hn, `${p}mlp.up_proj.weight`, this.inter);
        const act = g.map((gv, j) => (gv / (1 + Math.exp(-gv))) * u[j]);
        const dn = this.linear(act, `${p}mlp.down_proj.weight`, H);
        xs[i] = x1.map((v, j) => v + dn[j]);
      }
    }
    seq.len += tokens.length;
    const head = this.config.tie_word_embeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
    return xs.map((x) => this.linear(this.rmsnorm(x, 'model.norm.weight'), head, this.vocab));
  }

  /** Greedy generation: the prompt, then `n` tokens each fed back (argmax, lowest id on ties). */
  greedy(prompt: number[], n: number): number[] {
    const seq = this.newSequence();
    let logits = this.forward(seq, prompt).at(-1)!;
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = argmax(logits);
      out.push(t);
      if (i + 1 < n) logits = this.forward(seq, [t])[0];
    }
    return out;
  }
}

export interface RefSequence {
  len: number;
  /** [layer][position] -> [numKvHeads * headDim] */
  k: Float64Array[][];
  v: Float64Array[][];
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** RoPE inverse frequencies, with Llama 3's band-wise scaling when the config asks for it
 *  (transformers' _compute_llama3_parameters, written out). */
export function ropeInvFreq(c: HfConfig, headDim: number): Float64Array {
  const theta = (c.rope_theta as number) ?? 10000;
  const inv = new Float64Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
  const s = c.rope_scaling as Record<string, number | string> | null | undefined;
  if (!s || (s.rope_type ?? s.type) !== 'llama3') return inv;
  const factor = s.factor as number;
  const low = s.low_freq_factor as number;
  const high = s.high_freq_factor as number;
  const old = s.original_max_position_embeddings as number;
  const lowWavelen = old / low;
  const highWavelen = old / high;
  for (let i = 0; i < inv.length; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen < highWavelen) continue; // high frequency: unchanged
    if (wavelen > lowWavelen) {
      inv[i] /= factor; // low frequency: scaled
      continue;
    }
    const smooth = (old / wavelen - low) / (high - low);
    inv[i] = (1 - smooth) * (inv[i] / factor) + smooth * inv[i];
  }
  return inv;
}
