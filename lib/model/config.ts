// A Hugging Face config.json read into the one model description the loader, the native
// runner and the cost model share. Llama 2, Llama 3 / 3.1 / 3.2, Mistral and Qwen2 are the
// same decoder (RMSNorm, rotate-half RoPE, GQA attention, SwiGLU MLP); what differs is read
// from the config and every option the kernels cannot honour is refused by name, so a model
// never runs with a silently different architecture.
import type { ModelSpec } from '../cost/specs.js';
import type { DType } from '../backend/dtype.js';

export type ModelFamily = 'llama' | 'mistral' | 'qwen2';

/** Llama 3.1's frequency-dependent RoPE scaling (rope_type 'llama3'). */
export interface Llama3RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  family: ModelFamily;
  /** The HF class named in `architectures`. */
  architecture: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  maxPositionEmbeddings: number;
  /**
   * Longest sequence (prompt + output) this model may run. max_position_embeddings, or the
   * sliding window when one is in effect: the attention kernels are full causal, which is
   * exactly sliding-window attention for sequences no longer than the window (vLLM's
   * disable_sliding_window does the same).
   */
  maxContextLen: number;
  /** The sliding window that caps maxContextLen, or null. */
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  /** q_proj, k_proj and v_proj carry a bias (Qwen2). */
  qkvBias: boolean;
  /** Checkpoint dtype (torch_dtype), the default compute weight dtype. */
  torchDtype: DType;
  bosTokenId: number | null;
  /** End-of-sequence ids; generation stops on any of them. */
  eosTokenIds: number[];
}

export class ModelConfigError extends Error {
  override name = 'ModelConfigError';
}

const FAMILIES: Record<string, ModelFamily> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

const MODEL_TYPES: Record<ModelFamily, string> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' };

const TORCH_DTYPES: Record<string, DType> = { float32: 'fp32', float16: 'fp16', bfloat16: 'bf16' };

type Json = Record<string, unknown>;

/**
 * Reads a parsed config.json. `source` names the file in error messages. Unknown keys are
 * ignored (configs carry many that do not change the math); keys that change the math and
 * are not supported are errors that name them.
 */
export function parseModelConfig(json: unknown, source = 'config.json'): ModelConfig {
  const fail = (msg: string): never => {
    throw new ModelConfigError(`${source}: ${msg}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('must be a JSON object');
  const c = json as Json;

  const archs = c.architectures;
  if (!Array.isArray(archs) || archs.length === 0 || archs.some((a) => typeof a !== 'string'))
    fail(`architectures must be a non-empty array of class names (supported: ${Object.keys(FAMILIES).join(', ')})`);
  const names = archs as string[];
  if (names.length > 1) fail(`architectures lists ${names.length} classes (${names.join(', ')}); exactly one is supported`);
  const architecture = names[0];
  const family = FAMILIES[architecture];
  if (!family) fail(`architecture ${architecture} is not supported (supported: ${Object.keys(FAMILIES).join(', ')})`);
  if (c.model_type !== undefined && c.model_type !== MODEL_TYPES[family])
    fail(`model_type ${JSON.stringify(c.model_type)} does not match architecture ${architecture} (expected "${MODEL_TYPES[family]}")`);

  const int = (key: string, opts: { min?: number; def?: number } = {}): number => {
    const v = c[key] ?? opts.def;
    if (v === undefined || v === null) return fail(`${key} is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) return fail(`${key} must be an integer, got ${JSON.stringify(v)}`);
    const min = opts.min ?? 1;
    if (v < min) return fail(`${key} = ${v} must be >= ${min}`);
    return v;
  };
  const positive = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return fail(`${key} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (key: string, def: boolean): boolean => {
    const v = c[key] ?? def;
    if (typeof v !== 'boolean') return fail(`${key} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };

  const hiddenSize = int('hidden_size');
  const intermediateSize = int('intermediate_size');
  const numLayers = int('num_hidden_layers');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', { def: numHeads });
  if (numKvHeads > numHeads || numHeads % numKvHeads !== 0)
    fail(`num_attention_heads = ${numHeads} must be a multiple of num_key_value_heads = ${numKvHeads}`);
  let headDim: number;
  if (c.head_dim === undefined || c.head_dim === null) {
    if (hiddenSize % numHeads !== 0)
      fail(`hidden_size = ${hiddenSize} is not a multiple of num_attention_heads = ${numHeads} and head_dim is not given`);
    headDim = hiddenSize / numHeads;
  } else {
    headDim = int('head_dim');
  }
  if (headDim % 2 !== 0) fail(`head_dim = ${headDim} must be even (RoPE rotates pairs)`);
  const vocabSize = int('vocab_size');
  const maxPositionEmbeddings = int('max_position_embeddings');
  const rmsNormEps = positive('rms_norm_eps', c.rms_norm_eps ?? 1e-6);

  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') fail(`hidden_act ${JSON.stringify(act)} is not supported (only "silu": SwiGLU)`);
  if (c.mlp_bias === true) fail('mlp_bias true is not supported (gate/up/down projections without bias only)');
  if (c.quantization_config !== undefined && c.quantization_config !== null)
    fail('quantization_config is not supported (weights must be fp32, fp16 or bf16)');

  // Biases: Qwen2 always has q/k/v bias and no o_proj bias. Llama's attention_bias would
  // put a bias on o_proj too, which the runner has no slot for; no Llama release sets it.
  const qkvBias = family === 'qwen2';
  if (family !== 'qwen2' && bool('attention_bias', false))
    fail(`attention_bias true is not supported for ${architecture} (q/k/v bias is supported for Qwen2ForCausalLM only)`);

  // RoPE: rope_theta + rope_scaling (transformers <= 4.x), or rope_parameters (5.x).
  const params = c.rope_parameters;
  let ropeTheta: number;
  let scaling: unknown;
  if (params !== undefined && params !== null) {
    if (typeof params !== 'object' || Array.isArray(params)) fail('rope_parameters must be an object');
    const p = params as Json;
    ropeTheta = positive('rope_parameters.rope_theta', p.rope_theta ?? c.rope_theta ?? 10000);
    const t = p.rope_type ?? p.type ?? 'default';
    scaling = t === 'default' ? null : p;
  } else {
    ropeTheta = positive('rope_theta', c.rope_theta ?? 10000);
    scaling = c.rope_scaling ?? null;
  }
  const ropeScaling = parseRopeScaling(scaling, params !== undefined && params !== null ? 'rope_parameters' : 'rope_scaling', fail);

  // Sliding window: Mistral v0.1 sets 4096 (v0.2+ null); Qwen2 sets a window but only uses
  // it with use_sliding_window true.
  let slidingWindow: number | null = null;
  const sw = c.sliding_window;
  const swUsed = family === 'qwen2' ? c.use_sliding_window === true : true;
  if (swUsed && sw !== undefined && sw !== null) {
    slidingWindow = int('sliding_window');
  }
  const maxContextLen = slidingWindow !== null ? Math.min(maxPositionEmbeddings, slidingWindow) : maxPositionEmbeddings;

  const dtypeName = c.torch_dtype ?? c.dtype ?? 'bfloat16';
  const torchDtype = typeof dtypeName === 'string' ? TORCH_DTYPES[dtypeName] : undefined;
  if (!torchDtype) fail(`torch_dtype ${JSON.stringify(dtypeName)} is not supported (float32, float16, bfloat16)`);

  const tokenId = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v >= vocabSize)
      return fail(`${key} = ${JSON.stringify(v)} must be a token id in [0, ${vocabSize})`);
    return v;
  };
  const bosTokenId = c.bos_token_id === undefined || c.bos_token_id === null ? null : tokenId('bos_token_id', c.bos_token_id);
  const eosTokenIds = parseEosTokenIds(c.eos_token_id, vocabSize, source);

  return {
    family,
    architecture,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim: headDim!,
    vocabSize,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    maxContextLen,
    slidingWindow,
    tieWordEmbeddings: bool('tie_word_embeddings', false),
    qkvBias,
    torchDtype: torchDtype!,
    bosTokenId,
    eosTokenIds,
  };
}

/** eos_token_id of config.json or generation_config.json: an id, a list of ids, or absent. */
export function parseEosTokenIds(v: unknown, vocabSize: number, source: string): number[] {
  const id = (key: string, x: unknown): number => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0 || x >= vocabSize)
      throw new ModelConfigError(`${source}: ${key} = ${JSON.stringify(x)} must be a token id in [0, ${vocabSize})`);
    return x;
  };
  if (Array.isArray(v)) return v.map((x, i) => id(`eos_token_id[${i}]`, x));
  if (v === undefined || v === null) return [];
  return [id('eos_token_id', v)];
}

function parseRopeScaling(v: unknown, key: string, fail: (msg: string) => never): Llama3RopeScaling | null {
  if (v === null || v === undefined) return null;
  if (typeof v !== 'object' || Array.isArray(v)) return fail(`${key} must be an object or null`);
  const s = v as Json;
  // Older configs spell it "type".
  const type = s.rope_type ?? s.type;
  if (type === 'default') return null;
  if (type !== 'llama3') return fail(`${key}.rope_type ${JSON.stringify(type)} is not supported (supported: "llama3", or no scaling)`);
  const num = (k: string): number => {
    const x = s[k];
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) return fail(`${key}.${k} must be a positive number, got ${JSON.stringify(x)}`);
    return x;
  };
  const factor = num('factor');
  const lowFreqFactor = num('low_freq_factor');
  const highFreqFactor = num('high_freq_factor');
  const original = num('original_max_position_embeddings');
  if (!(highFreqFactor > lowFreqFactor))
    fail(`${key}.high_freq_factor = ${highFreqFactor} must be greater than low_freq_factor = ${lowFreqFactor}`);
  if (!Number.isSafeInteger(original)) fail(`${key}.original_max_position_embeddings must be an integer, got ${original}`);
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: original };
}

/** Parameters of the linear layers a token passes through (projections, MLP, LM head). */
export function linearParams(c: ModelConfig): number {
  const q = c.hiddenSize * c.numHeads * c.headDim;
  const kv = 2 * c.hiddenSize * c.numKvHeads * c.headDim;
  const o = c.numHeads * c.headDim * c.hiddenSize;
  const mlp = 3 * c.hiddenSize * c.intermediateSize;
  return c.numLayers * (q + kv + o + mlp) + c.vocabSize * c.hiddenSize;
}

/** Every weight element of the checkpoint: linear layers, biases, norms, the embedding (once when tied). */
export function totalParams(c: ModelConfig): number {
  const biases = c.numLayers * (c.qkvBias ? (c.numHeads + 2 * c.numKvHeads) * c.headDim : 0);
  const norms = (2 * c.numLayers + 1) * c.hiddenSize;
  const embed = c.tieWordEmbeddings ? 0 : c.vocabSize * c.hiddenSize;
  return linearParams(c) + biases + norms + embed;
}

/**
 * The cost model's view of a model (lib/sim/specs.ts), so a real checkpoint can drive the
 * simulator. `weightDtype` defaults to the checkpoint's torch_dtype, `kvDtype` to fp16.
 */
export function modelSpec(c: ModelConfig, opts: { name?: string; weightDtype?: DType; kvDtype?: DType; tensorParallel?: number } = {}): ModelSpec {
  const bytes = (d: DType) => (d === 'fp32' ? 4 : 2);
  const tp = opts.tensorParallel ?? 1;
  return {
    name: opts.name ?? `${c.architecture} ${c.numLayers}x${c.hiddenSize}`,
    params: linearParams(c),
    numLayers: c.numLayers,
    hiddenSize: c.hiddenSize,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    kvDtypeBytes: bytes(opts.kvDtype ?? 'fp16'),
    weightBytes: (totalParams(c) * bytes(opts.weightDtype ?? c.torchDtype)) / tp,
    tensorParallel: tp,
  };
}
