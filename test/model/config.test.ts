// config.json of real releases (the fields that matter, as published) read into
// ModelConfig, the cost model's spec derived from them, and every refusal word for word.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ModelConfigError, modelSpec, parseModelConfig, totalParams } from '../../lib/model/config.js';
import { GPUS, MODELS } from '../../lib/cost/presets.js';
import { RooflineCost } from '../../lib/cost/roofline.js';
import { throwsExactly } from '../util/throws.js';

const LLAMA2_7B = {
  architectures: ['LlamaForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 11008,
  max_position_embeddings: 4096,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 32,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  tie_word_embeddings: false,
  torch_dtype: 'float16',
  transformers_version: '4.31.0.dev0',
  use_cache: true,
  vocab_size: 32000,
};

const LLAMA31_8B = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 128256,
};

const LLAMA32_1B = {
  ...LLAMA31_8B,
  eos_token_id: 128001,
  head_dim: 64,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  rope_scaling: { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  tie_word_embeddings: true,
};

const MISTRAL_7B_V01 = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: 32000,
};

const QWEN2_05B = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: 'silu',
  hidden_size: 896,
  intermediate_size: 4864,
  max_position_embeddings: 131072,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_sliding_window: false,
  vocab_size: 151936,
};

test('Llama 2 7B', () => {
  const c = parseModelConfig(LLAMA2_7B);
  assert.equal(c, {
    family: 'llama',
    architecture: 'LlamaForCausalLM',
    hiddenSize: 4096,
    intermediateSize: 11008,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 32,
    headDim: 128,
    vocabSize: 32000,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 4096,
    maxContextLen: 4096,
    slidingWindow: null,
    tieWordEmbeddings: false,
    qkvBias: false,
    torchDtype: 'fp16',
    bosTokenId: 1,
    eosTokenIds: [2],
  });
});

test('Llama 3.1 8B: GQA, llama3 rope_scaling, eos list', () => {
  const c = parseModelConfig(LLAMA31_8B);
  assert.is(c.numKvHeads, 8);
  assert.is(c.headDim, 128);
  assert.is(c.ropeTheta, 500000);
  assert.equal(c.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.equal(c.eosTokenIds, [128001, 128008, 128009]);
  assert.is(c.torchDtype, 'bf16');
});

test('Llama 3.2 1B: explicit head_dim, tied embeddings', () => {
  const c = parseModelConfig(LLAMA32_1B);
  assert.is(c.headDim, 64);
  assert.is(c.tieWordEmbeddings, true);
  assert.equal(c.eosTokenIds, [128001]);
  assert.is(c.ropeScaling?.factor, 32);
  // 1.24B parameters as published (embedding counted once).
  assert.ok(Math.abs(totalParams(c) - 1.2358e9) / 1.2358e9 < 0.001, String(totalParams(c)));
});

test('head_dim explicit and different from hidden_size / num_attention_heads (Mistral Nemo style)', () => {
  const c = parseModelConfig({ ...MISTRAL_7B_V01, hidden_size: 5120, head_dim: 128, sliding_window: null });
  assert.is(c.headDim, 128);
  assert.is(c.hiddenSize, 5120);
});

test('Mistral 7B v0.1: the sliding window caps the context; v0.2+ (null) does not', () => {
  const c = parseModelConfig(MISTRAL_7B_V01);
  assert.is(c.family, 'mistral');
  assert.is(c.slidingWindow, 4096);
  assert.is(c.maxContextLen, 4096);
  assert.is(c.maxPositionEmbeddings, 32768);
  const v3 = parseModelConfig({ ...MISTRAL_7B_V01, sliding_window: null, rope_theta: 1e6, vocab_size: 32768 });
  assert.is(v3.slidingWindow, null);
  assert.is(v3.maxContextLen, 32768);
});

test('Qwen2: q/k/v bias, tied, sliding window ignored unless use_sliding_window', () => {
  const c = parseModelConfig(QWEN2_05B);
  assert.is(c.family, 'qwen2');
  assert.is(c.qkvBias, true);
  assert.is(c.headDim, 64);
  assert.is(c.rmsNormEps, 1e-6);
  assert.is(c.slidingWindow, null);
  assert.is(c.maxContextLen, 131072);
  const sw = parseModelConfig({ ...QWEN2_05B, use_sliding_window: true, sliding_window: 32768 });
  assert.is(sw.maxContextLen, 32768);
  // 0.49B parameters as published.
  assert.ok(Math.abs(totalParams(c) - 0.494e9) / 0.494e9 < 0.005, String(totalParams(c)));
});

test('defaults: rope_theta 10000, num_key_value_heads = heads, no bos/eos, old "type" spelling of rope_scaling', () => {
  const { rope_theta: _t, num_key_value_heads: _k, bos_token_id: _b, eos_token_id: _e, ...rest } = LLAMA31_8B;
  const c = parseModelConfig({ ...rest, rope_scaling: { ...LLAMA31_8B.rope_scaling, rope_type: undefined, type: 'llama3' } });
  assert.is(c.ropeTheta, 10000);
  assert.is(c.numKvHeads, 32);
  assert.is(c.bosTokenId, null);
  assert.equal(c.eosTokenIds, []);
  assert.is(c.ropeScaling?.type, 'llama3');
  assert.is(parseModelConfig({ ...LLAMA2_7B, rope_scaling: { rope_type: 'default' } }).ropeScaling, null);
});

test('transformers 5 rope_parameters', () => {
  const { rope_theta: _t, rope_scaling: _s, ...rest } = LLAMA31_8B;
  const c = parseModelConfig({ ...rest, rope_parameters: { ...LLAMA31_8B.rope_scaling, rope_theta: 500000.0 } });
  assert.is(c.ropeTheta, 500000);
  assert.is(c.ropeScaling?.factor, 8);
  const d = parseModelConfig({ ...rest, rope_parameters: { rope_type: 'default', rope_theta: 1234.0 } });
  assert.is(d.ropeTheta, 1234);
  assert.is(d.ropeScaling, null);
});

test('modelSpec matches the simulator presets built from the same architectures', () => {
  for (const [cfg, preset] of [
    [LLAMA2_7B, MODELS['Llama-2-7B']],
    [LLAMA31_8B, MODELS['Llama-3.1-8B']],
  ] as const) {
    const s = modelSpec(parseModelConfig(cfg), { name: preset.name, weightDtype: 'bf16' });
    assert.is(s.params, preset.params);
    assert.is(s.numLayers, preset.numLayers);
    assert.is(s.numKvHeads, preset.numKvHeads);
    assert.is(s.headDim, preset.headDim);
    assert.is(s.kvDtypeBytes, 2);
    // The preset leaves out norms (a few hundred thousand parameters).
    assert.ok(Math.abs(s.weightBytes - preset.weightBytes) / preset.weightBytes < 1e-4);
  }
  const s = modelSpec(parseModelConfig(LLAMA32_1B), { kvDtype: 'fp32', weightDtype: 'fp32' });
  assert.is(s.kvDtypeBytes, 4);
  assert.is(s.weightBytes, totalParams(parseModelConfig(LLAMA32_1B)) * 4);
  assert.is(s.name, 'LlamaForCausalLM 16x2048');
});

test('a real config drives the simulator: the cost model of Llama-3.1-8B from its config.json equals the preset\'s', () => {
  const mine = new RooflineCost(modelSpec(parseModelConfig(LLAMA31_8B), { name: 'Llama-3.1-8B' }), GPUS['H100-SXM']);
  const preset = new RooflineCost(MODELS['Llama-3.1-8B'], GPUS['H100-SXM']);
  const items = [{ phase: 'prefill' as const, tokens: 2048, cachedBefore: 0 }, { phase: 'decode' as const, tokens: 1, cachedBefore: 4000 }];
  const a = mine.stepTime(items);
  const b = preset.stepTime(items);
  assert.ok(a > 0 && Math.abs(a - b) / b < 1e-3, `${a} vs ${b}`);
});

const E = (msg: string) => `config.json: ${msg}`;
const bad = (over: Record<string, unknown>, msg: string) => throwsExactly(() => parseModelConfig({ ...LLAMA31_8B, ...over }), ModelConfigError, E(msg));

test('refusals name the field and the limit', () => {
  throwsExactly(() => parseModelConfig(null), ModelConfigError, E('must be a JSON object'));
  throwsExactly(() => parseModelConfig([]), ModelConfigError, E('must be a JSON object'));
  bad({ architectures: undefined }, 'architectures must be a non-empty array of class names (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)');
  bad({ architectures: ['GemmaForCausalLM'] }, 'architecture GemmaForCausalLM is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)');
  bad({ architectures: ['LlamaForCausalLM', 'MistralForCausalLM'] }, 'architectures lists 2 classes (LlamaForCausalLM, MistralForCausalLM); exactly one is supported');
  bad({ model_type: 'mistral' }, 'model_type "mistral" does not match architecture LlamaForCausalLM (expected "llama")');
  bad({ hidden_size: undefined }, 'hidden_size is missing');
  bad({ hidden_size: 4096.5 }, 'hidden_size must be an integer, got 4096.5');
  bad({ hidden_size: '4096' }, 'hidden_size must be an integer, got "4096"');
  bad({ num_hidden_layers: 0 }, 'num_hidden_layers = 0 must be >= 1');
  bad({ num_key_value_heads: 5 }, 'num_attention_heads = 32 must be a multiple of num_key_value_heads = 5');
  bad({ num_key_value_heads: 64 }, 'num_attention_heads = 32 must be a multiple of num_key_value_heads = 64');
  bad({ hidden_size: 4001 }, 'hidden_size = 4001 is not a multiple of num_attention_heads = 32 and head_dim is not given');
  bad({ head_dim: 63 }, 'head_dim = 63 must be even (RoPE rotates pairs)');
  bad({ rms_norm_eps: 0 }, 'rms_norm_eps must be a positive number, got 0');
  bad({ rope_theta: -1 }, 'rope_theta must be a positive number, got -1');
  bad({ hidden_act: 'gelu' }, 'hidden_act "gelu" is not supported (only "silu": SwiGLU)');
  bad({ mlp_bias: true }, 'mlp_bias true is not supported (gate/up/down projections without bias only)');
  bad({ attention_bias: true }, 'attention_bias true is not supported for LlamaForCausalLM (q/k/v bias is supported for Qwen2ForCausalLM only)');
  bad({ quantization_config: { quant_method: 'awq' } }, 'quantization_config is not supported (weights must be fp32, fp16 or bf16)');
  bad({ torch_dtype: 'float8_e4m3fn' }, 'torch_dtype "float8_e4m3fn" is not supported (float32, float16, bfloat16)');
  bad({ rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'rope_scaling.rope_type "yarn" is not supported (supported: "llama3", or no scaling)');
  bad({ rope_scaling: { type: 'linear', factor: 2 } }, 'rope_scaling.rope_type "linear" is not supported (supported: "llama3", or no scaling)');
  bad({ rope_scaling: { type: 'dynamic', factor: 2 } }, 'rope_scaling.rope_type "dynamic" is not supported (supported: "llama3", or no scaling)');
  bad({ rope_scaling: 'llama3' }, 'rope_scaling must be an object or null');
  bad({ rope_scaling: { ...LLAMA31_8B.rope_scaling, factor: 0 } }, 'rope_scaling.factor must be a positive number, got 0');
  bad({ rope_scaling: { ...LLAMA31_8B.rope_scaling, low_freq_factor: undefined } }, 'rope_scaling.low_freq_factor must be a positive number, got undefined');
  bad({ rope_scaling: { ...LLAMA31_8B.rope_scaling, high_freq_factor: 1 } }, 'rope_scaling.high_freq_factor = 1 must be greater than low_freq_factor = 1');
  bad({ rope_scaling: { ...LLAMA31_8B.rope_scaling, original_max_position_embeddings: 8192.5 } }, 'rope_scaling.original_max_position_embeddings must be an integer, got 8192.5');
  bad({ rope_parameters: { rope_type: 'longrope' }, rope_scaling: undefined }, 'rope_parameters.rope_type "longrope" is not supported (supported: "llama3", or no scaling)');
  bad({ tie_word_embeddings: 'yes' }, 'tie_word_embeddings must be true or false, got "yes"');
  bad({ bos_token_id: 128256 }, 'bos_token_id = 128256 must be a token id in [0, 128256)');
  bad({ eos_token_id: [128001, -1] }, 'eos_token_id[1] = -1 must be a token id in [0, 128256)');
  bad({ sliding_window: 0, architectures: ['MistralForCausalLM'], model_type: 'mistral' }, 'sliding_window = 0 must be >= 1');
  bad({ architectures: ['MistralForCausalLM'], model_type: 'mistral', attention_bias: true }, 'attention_bias true is not supported for MistralForCausalLM (q/k/v bias is supported for Qwen2ForCausalLM only)');
  throwsExactly(() => parseModelConfig({}, '/models/x/config.json'), ModelConfigError, '/models/x/config.json: architectures must be a non-empty array of class names (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)');
});

test.run();
