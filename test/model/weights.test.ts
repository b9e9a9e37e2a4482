// Tensor names and shapes a config implies, matched against written checkpoints; each
// mismatch word for word; dummy weights deterministic, bounded and at unit scale.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { parseModelConfig } from '../../lib/model/config.js';
import { openCheckpoint } from '../../lib/model/safetensors.js';
import { WeightError, bindCheckpoint, dummyRange, expectedWeights } from '../../lib/model/weights.js';
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

test('dummy ranges: uniform with std 1/sqrt(fan_in) for projections, norms near 1, small biases', () => {
  const c = parseModelConfig(TINY[3].config); // qwen2: hidden 512, 8 heads of 64, intermediate 224
  const std = (r: { half: number }) => r.half / Math.sqrt(3);
  const by = (role: string) => dummyRange(expectedWeights(c).find((s) => s.role === role)!, c);
  for (const role of ['q', 'k', 'v', 'gate', 'up', 'embed']) assert.ok(Math.abs(std(by(role)) * Math.sqrt(512) - 1) < 1e-12, role);
  assert.ok(Math.abs(std(by('o')) * Math.sqrt(8 * 64) - 1) < 1e-12);
  assert.ok(Math.abs(std(by('down')) * Math.sqrt(224) - 1) < 1e-12);
  assert.equal(by('inputNorm'), { centre: 1, half: 0.1 });
  assert.equal(by('qBias'), { centre: 0, half: 0.1 });
});

test.run();
