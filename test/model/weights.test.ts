// Tensor names and shapes a config implies, matched against written checkpoints; each
// mismatch word for word; dummy weights deterministic, bounded and at unit scale.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { parseModelConfig } from '../../lib/model/config.js';
import { openCheckpoint } from '../../lib/model/safetensors.js';
import { WeightError, bindCheckpoint, expectedWeights, fillDummy } from '../../lib/model/weights.js';
import { TINY, hfWeightShapes, writeTinyModel } from '../util/tiny-model.js';
import { throwsExactly } from '../util/throws.js';

test('expected weights equal the names and shapes written from the HF modeling code, for every tiny config', () => {
  for (const spec of TINY) {
    const c = parseModelConfig(spec.config);
    const got = expectedWeights(c).map((w) => [w.name, w.shape]);
    assert.equal(new Map(got as [string, number[]][]), new Map(hfWeightShapes(spec.config)), spec.name);
  }
});

test('bindCheckpoint: every tiny model binds, single and sharded', async () => {
  for (const spec of TINY) {
    for (const shards of [1, 2]) {
      const m = writeTinyModel(spec, { dtype: 'bf16', shards });
      try {
        const c = parseModelConfig(m.config);
        const bound = bindCheckpoint(c, await openCheckpoint(m.dir));
        assert.is(bound.length, expectedWeights(c).length);
        for (const b of bound) assert.is(b.tensor.dtype, 'BF16');
      } finally {
        m.cleanup();
      }
    }
  }
});

test('bindCheckpoint refusals: missing, wrong shape, wrong dtype, unexpected; ignorable extras', async () => {
  const m = writeTinyModel(TINY[0]); // llama2: hidden 128, 2 heads of 64, vocab 331, untied
  try {
    const c = parseModelConfig(m.config);
    const ckpt = await openCheckpoint(m.dir);
    const file = path.join(m.dir, 'model.safetensors');
    const edit = (f: (t: typeof ckpt.tensors) => void) => {
      const tensors = new Map(ckpt.tensors);
      f(tensors);
      return { ...ckpt, tensors };
    };
    throwsExactly(
      () => bindCheckpoint(c, edit((t) => t.delete('model.layers.1.mlp.up_proj.weight'))),
      WeightError,
      `${m.dir}: tensor "model.layers.1.mlp.up_proj.weight" is missing (expected [intermediate_size, hidden_size] = [176, 128])`,
    );
    throwsExactly(
      () => bindCheckpoint(c, edit((t) => t.delete('lm_head.weight'))),
      WeightError,
      `${m.dir}: tensor "lm_head.weight" is missing (expected [vocab_size, hidden_size] = [331, 128])`,
    );
    const k = ckpt.tensors.get('model.layers.0.self_attn.k_proj.weight')!;
    throwsExactly(
      () => bindCheckpoint(c, edit((t) => t.set(k.name, { ...k, shape: [64, 128] }))),
      WeightError,
      `${file}: tensor "model.layers.0.self_attn.k_proj.weight" has shape [64, 128], expected [num_key_value_heads * head_dim, hidden_size] = [128, 128] for this config.json`,
    );
    throwsExactly(
      () => bindCheckpoint(c, edit((t) => t.set(k.name, { ...k, shape: [128 * 128] }))),
      WeightError,
      `${file}: tensor "model.layers.0.self_attn.k_proj.weight" has shape [16384], expected [num_key_value_heads * head_dim, hidden_size] = [128, 128] for this config.json`,
    );
    throwsExactly(
      () => bindCheckpoint(c, edit((t) => t.set(k.name, { ...k, dtype: 'I32' }))),
      WeightError,
      `${file}: tensor "model.layers.0.self_attn.k_proj.weight" has dtype I32; weights must be F32, F16 or BF16`,
    );
    const q = ckpt.tensors.get('model.layers.0.self_attn.q_proj.weight')!;
    throwsExactly(
      () => bindCheckpoint(c, edit((t) => t.set('model.layers.0.self_attn.q_proj.bias', { ...q, name: 'model.layers.0.self_attn.q_proj.bias' }))),
      WeightError,
      `${file}: unexpected tensor "model.layers.0.self_attn.q_proj.bias": a LlamaForCausalLM with this config.json has no such weight`,
    );
    throwsExactly(
      () => bindCheckpoint(c, edit((t) => t.set('model.layers.2.input_layernorm.weight', { ...q, name: 'model.layers.2.input_layernorm.weight' }))),
      WeightError,
      `${file}: unexpected tensor "model.layers.2.input_layernorm.weight": a LlamaForCausalLM with this config.json has no such weight`,
    );
    // Old Llama exports store RoPE's inverse frequencies; tied checkpoints may store lm_head.
    bindCheckpoint(c, edit((t) => t.set('model.layers.0.self_attn.rotary_emb.inv_freq', { ...q, name: 'model.layers.0.self_attn.rotary_emb.inv_freq' })));
    const tied = parseModelConfig({ ...m.config, tie_word_embeddings: true });
    assert.is(bindCheckpoint(tied, ckpt).length, expectedWeights(tied).length);
  } finally {
    m.cleanup();
  }
  // A Qwen2 checkpoint without its biases.
  const qw = writeTinyModel(TINY[3]);
  try {
    const c = parseModelConfig(qw.config);
    const ckpt = await openCheckpoint(qw.dir);
    ckpt.tensors.delete('model.layers.0.self_attn.k_proj.bias');
    throwsExactly(
      () => bindCheckpoint(c, ckpt),
      WeightError,
      `${qw.dir}: tensor "model.layers.0.self_attn.k_proj.bias" is missing (expected [num_key_value_heads * head_dim] = [64])`,
    );
  } finally {
    qw.cleanup();
  }
});

test('dummy weights: deterministic per (seed, name, index), chunk-independent, at unit scale', () => {
  const c = parseModelConfig(TINY[1].config);
  const specs = expectedWeights(c);
  const q = specs.find((s) => s.role === 'q')!;
  const n = q.shape[0] * q.shape[1];
  const whole = new Float32Array(n);
  fillDummy(whole, q, c, 123);
  const again = new Float32Array(n);
  for (let at = 0; at < n; at += 1000) {
    const part = new Float32Array(Math.min(1000, n - at));
    fillDummy(part, q, c, 123, at);
    again.set(part, at);
  }
  assert.equal(again, whole);
  const other = new Float32Array(n);
  fillDummy(other, q, c, 124);
  assert.not.equal(other, whole);
  const k = specs.find((s) => s.role === 'k' && s.layer === 0)!;
  const kv = new Float32Array(k.shape[0] * k.shape[1]);
  fillDummy(kv, k, c, 123);
  assert.not.equal(Array.from(kv.subarray(0, 64)), Array.from(whole.subarray(0, 64)));
  // Uniform with std 1/sqrt(fan_in): mean ~0, variance ~1/hidden.
  let sum = 0;
  let sq = 0;
  for (const v of whole) {
    sum += v;
    sq += v * v;
  }
  const mean = sum / n;
  const variance = sq / n - mean * mean;
  assert.ok(Math.abs(mean) < 0.01, String(mean));
  assert.ok(Math.abs(variance * c.hiddenSize - 1) < 0.05, String(variance * c.hiddenSize));
  const norm = new Float32Array(c.hiddenSize);
  fillDummy(norm, specs.find((s) => s.role === 'inputNorm')!, c, 5);
  for (const v of norm) assert.ok(v >= 0.9 && v <= 1.1);
  throwsExactly(() => fillDummy(new Float32Array(2), q, c, 1, n - 1), RangeError, `dummy weights: range [${n - 1}, ${n + 1}) is outside model.layers.0.self_attn.q_proj.weight (${n} elements)`);
  throwsExactly(() => fillDummy(new Float32Array(2), q, c, 1.5), RangeError, 'dummy weights: seed must be an integer, got 1.5');
});

test.run();
