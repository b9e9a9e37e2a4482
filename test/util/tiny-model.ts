// Tiny Llama-family checkpoints written by the tests: a Hugging Face config.json and
// safetensors weights drawn from a seeded RNG, rounded to the checkpoint dtype. The
// weights are returned too (as fp64 values), so the reference forward reads exactly what
// the file holds without going through lib/model's parser.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { roundTo, type RefDType } from '../reference.js';
import { Rng } from './rng.js';
import { ST_DTYPE, writeSafetensors, type StTensor } from './safetensors-writer.js';

export type HfConfig = Record<string, unknown>;

export interface TinySpec {
  name: string;
  config: HfConfig;
}

const base = { hidden_act: 'silu', max_position_embeddings: 2048, rms_norm_eps: 1e-5, initializer_range: 0.02 };

/** The test zoo: every architecture, GQA ratios 1/4/8, odd vocabularies, tied and untied, several head dims. */
export const TINY: TinySpec[] = [
  {
    name: 'llama2 (MHA, untied, vocab 331)',
    config: {
      ...base,
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 128,
      intermediate_size: 176,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      num_key_value_heads: 2,
      vocab_size: 331,
      rope_theta: 10000.0,
      rope_scaling: null,
      tie_word_embeddings: false,
      torch_dtype: 'float16',
      bos_token_id: 1,
      eos_token_id: 2,
    },
  },
  {
    name: 'llama3.2 (GQA 4, llama3 rope_scaling, tied, head_dim 64 explicit, vocab 509)',
    config: {
      ...base,
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 192,
      intermediate_size: 320,
      num_hidden_layers: 3,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 64,
      vocab_size: 509,
      rope_theta: 500000.0,
      // A short original context so positions of a test prompt reach every branch of the
      // scaling (low-, medium- and high-frequency bands).
      rope_scaling: { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64, rope_type: 'llama3' },
      tie_word_embeddings: true,
      torch_dtype: 'bfloat16',
      bos_token_id: 500,
      eos_token_id: [501, 502],
    },
  },
  {
    name: 'mistral (GQA 4, head_dim 80 != hidden/heads, sliding window, vocab 263)',
    config: {
      ...base,
      architectures: ['MistralForCausalLM'],
      model_type: 'mistral',
      hidden_size: 96,
      intermediate_size: 200,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 1,
      head_dim: 80,
      vocab_size: 263,
      rope_theta: 1000000.0,
      sliding_window: 1024,
      tie_word_embeddings: false,
      torch_dtype: 'bfloat16',
      bos_token_id: 1,
      eos_token_id: 2,
    },
  },
  {
    name: 'qwen2 (GQA 8, q/k/v bias, tied, vocab 1001)',
    config: {
      ...base,
      architectures: ['Qwen2ForCausalLM'],
      model_type: 'qwen2',
      hidden_size: 512,
      intermediate_size: 224,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 1,
      vocab_size: 1001,
      rope_theta: 1000000.0,
      rms_norm_eps: 1e-6,
      sliding_window: 4096,
      use_sliding_window: false,
      max_window_layers: 2,
      tie_word_embeddings: true,
      torch_dtype: 'bfloat16',
      bos_token_id: 1000,
      eos_token_id: 999,
    },
  },
];

/** HF names and shapes of a config's weights, written out here from the HF modeling code. */
export function hfWeightShapes(c: HfConfig): [string, number[]][] {
  const h = c.hidden_size as number;
  const heads = c.num_attention_heads as number;
  const kv = (c.num_key_value_heads as number) ?? heads;
  const hd = (c.head_dim as number) ?? h / heads;
  const inter = c.intermediate_size as number;
  const vocab = c.vocab_size as number;
  const bias = c.model_type === 'qwen2';
  const out: [string, number[]][] = [['model.embed_tokens.weight', [vocab, h]]];
  for (let l = 0; l < (c.num_hidden_layers as number); l++) {
    const p = `model.layers.${l}.`;
    out.push([`${p}input_layernorm.weight`, [h]]);
    out.push([`${p}self_attn.q_proj.weight`, [heads * hd, h]]);
    out.push([`${p}self_attn.k_proj.weight`, [kv * hd, h]]);
    out.push([`${p}self_attn.v_proj.weight`, [kv * hd, h]]);
    if (bias) {
      out.push([`${p}self_attn.q_proj.bias`, [heads * hd]]);
      out.push([`${p}self_attn.k_proj.bias`, [kv * hd]]);
      out.push([`${p}self_attn.v_proj.bias`, [kv * hd]]);
    }
    out.push([`${p}self_attn.o_proj.weight`, [h, heads * hd]]);
    out.push([`${p}post_attention_layernorm.weight`, [h]]);
    out.push([`${p}mlp.gate_proj.weight`, [inter, h]]);
    out.push([`${p}mlp.up_proj.weight`, [inter, h]]);
    out.push([`${p}mlp.down_proj.weight`, [h, inter]]);
  }
  out.push(['model.norm.weight', [h]]);
  if (!c.tie_word_embeddings) out.push(['lm_head.weight', [vocab, h]]);
  return out;
}

export type Weights = Map<string, Float64Array>;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// Any rounding to a representable value will do here (the file and the reference read the
// same values); bf16 by truncating an fp32 value's low half is fast.
function round(dtype: RefDType, x: number): number {
  if (dtype === 'fp32') return Math.fround(x);
  if (dtype === 'fp16') return roundTo('fp16', x);
  f32[0] = x;
  u32[0] &= 0xffff0000;
  return f32[0];
}

/**
 * Seeded weights at scales a trained model has in spirit: projections ~ 1/sqrt(fan_in)
 * (so activations neither vanish nor blow up), norms around 1, and biases and embeddings
 * large enough that attention is peaked and logits are far from ties.
 */
export function randomWeights(c: HfConfig, seed: number, dtype: RefDType): Weights {
  const rng = new Rng(seed);
  const w: Weights = new Map();
  for (const [name, shape] of hfWeightShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const v = new Float64Array(n);
    let centre = 0;
    let half: number;
    if (name.endsWith('layernorm.weight') || name === 'model.norm.weight') {
      centre = 1;
      half = 0.25;
    } else if (name.endsWith('.bias')) half = 0.5;
    else if (name === 'model.embed_tokens.weight' || name === 'lm_head.weight') half = 1;
    else half = Math.sqrt(3 / shape[1]) * 1.5;
    for (let i = 0; i < n; i++) v[i] = round(dtype, centre + rng.sym(half));
    w.set(name, v);
  }
  return w;
}

export interface TinyModel {
  dir: string;
  config: HfConfig;
  weights: Weights;
  dtype: RefDType;
  cleanup(): void;
}

/**
 * Writes config.json and the weights into a fresh temporary directory: one
 * model.safetensors, or `shards` files with model.safetensors.index.json.
 */
export function writeTinyModel(spec: TinySpec, opts: { seed?: number; dtype?: RefDType; shards?: number; configOverride?: HfConfig } = {}): TinyModel {
  const dtypeName = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' } as const;
  const dtype = opts.dtype ?? 'fp32';
  const config = { ...spec.config, torch_dtype: dtypeName[dtype], ...opts.configOverride };
  const weights = randomWeights(config, opts.seed ?? 1, dtype);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvcake-tiny-'));
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const tensors: StTensor[] = [...weights].map(([name, values]) => ({
    name,
    dtype: ST_DTYPE[dtype],
    shape: hfWeightShapes(config).find(([n]) => n === name)![1],
    values,
  }));
  const shards = opts.shards ?? 1;
  if (shards <= 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } else {
    const per = Math.ceil(tensors.length / shards);
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) weightMap[t.name] = file;
      writeSafetensors(path.join(dir, file), part, { format: 'pt' });
    }
    writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  }
  return { dir, config, weights, dtype, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvcake-test-'));
  mkdirSync(dir, { recursive: true });
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
