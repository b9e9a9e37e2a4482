// loadModel on written directories: dtype conversion while loading (checked against the
// reference on the converted weights), generation_config.json stop ids, the tokenizer
// that comes with a directory, aborts that free what was allocated, and every refusal of
// loadModel and generate word for word.
import * as assert from 'uvu/assert';
import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ModelConfigError } from '../../lib/model/config.js';
import { loadModel } from '../../lib/model/model.js';
import { SafetensorsError } from '../../lib/model/safetensors.js';
import { WeightError } from '../../lib/model/weights.js';
import { roundTo } from '../reference.js';
import { forEachBackend } from '../util/backends.js';
import { RefModel, argmax } from '../util/ref-model.js';
import { TINY, writeTinyModel, type Weights } from '../util/tiny-model.js';
import { llama3TokenizerConfig, llama3TokenizerJson } from '../util/tiny-tokenizer.js';
import { rejectsExactly } from '../util/throws.js';

const MATRICES = /(embed_tokens|proj|lm_head)\.weight$/;

function rowError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    err = Math.max(err, Math.abs(got[i] - want[i]));
  }
  return err / scale;
}

forEachBackend('loadModel', (test, be, kind) => {
  test('dtype conversion while loading: fp32 file as bf16 weights, bf16 file as fp32 weights', async () => {
    // fp32 file, bf16 GEMM weights: the matrices are rounded to bf16 while read; norms stay fp32.
    const f32 = writeTinyModel(TINY[3], { dtype: 'fp32', seed: 4 });
    const b16 = writeTinyModel(TINY[1], { dtype: 'bf16', seed: 4 });
    try {
      const ids = [5, 17, 300, 2, 499, 41, 7];
      {
        await using m = await loadModel({ backend: be(), dir: f32.dir }, { dtype: 'bf16' });
        assert.is(m.dtype, 'bf16');
        const out = await m.generate(ids, { maxTokens: 4, returnLogits: true, kvDtype: 'fp32', stopTokenIds: [] });
        const rounded: Weights = new Map([...f32.weights].map(([n, v]) => [n, MATRICES.test(n) ? v.map((x) => roundTo('bf16', x)) : v]));
        const ref = new RefModel(f32.config, rounded, { kvDtype: 'fp32', gemmInputDtype: kind === 'cuda' ? 'bf16' : undefined });
        const want = ref.forward(ref.newSequence(), ids);
        // fp32 pool and fp32 activations: the fp32 bound applies (on CUDA the bf16 GEMM inputs are mirrored).
        const tol = kind === 'cuda' ? 2 * 2 ** -8 * 2 : 1e-4;
        want.forEach((w, i) => assert.ok(rowError(out.promptLogits![i], w) <= tol, `row ${i}: ${rowError(out.promptLogits![i], w)}`));
        assert.is(out.tokenIds[0], argmax(want.at(-1)!));
      }
      {
        await using m = await loadModel({ backend: be(), dir: b16.dir }, { dtype: 'fp32' });
        const out = await m.generate(ids, { maxTokens: 2, returnLogits: true, kvDtype: 'fp32', stopTokenIds: [] });
        const ref = new RefModel(b16.config, b16.weights, { kvDtype: 'fp32' });
        const want = ref.forward(ref.newSequence(), ids);
        want.forEach((w, i) => assert.ok(rowError(out.promptLogits![i], w) <= 1e-4, `row ${i}: ${rowError(out.promptLogits![i], w)}`));
      }
    } finally {
      f32.cleanup();
      b16.cleanup();
    }
  });

  test('a directory brings its tokenizer and generation_config.json stop ids', async () => {
    const tiny = writeTinyModel(TINY[1], { seed: 2, configOverride: { vocab_size: 509 } });
    try {
      writeFileSync(path.join(tiny.dir, 'tokenizer.json'), JSON.stringify(llama3TokenizerJson()));
      writeFileSync(path.join(tiny.dir, 'tokenizer_config.json'), JSON.stringify(llama3TokenizerConfig()));
      writeFileSync(path.join(tiny.dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [501, 267] }));
      await using m = await loadModel({ backend: be(), dir: tiny.dir });
      assert.equal(m.config.eosTokenIds, [501, 502, 267]);
      assert.ok(m.tokenizer);
      assert.equal(m.tokenizer!.encode('hello the'), [263, 259, 261]);
      // Stop on a token the model is about to emit: generation ends there, reason 'stop'.
      const free = await m.generate([263, 259, 261], { maxTokens: 6, stopTokenIds: [] });
      const stopAt = free.tokenIds[2];
      const stopped = await m.generate([263, 259, 261], { maxTokens: 6, stopTokenIds: [stopAt] });
      assert.equal(stopped.tokenIds, free.tokenIds.slice(0, free.tokenIds.indexOf(stopAt) + 1));
      assert.is(stopped.finishReason, 'stop');
      assert.is(free.finishReason, 'length');
      writeFileSync(path.join(tiny.dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 509 }));
      await rejectsExactly(loadModel({ backend: be(), dir: tiny.dir }), ModelConfigError, `${path.join(tiny.dir, 'generation_config.json')}: eos_token_id = 509 must be a token id in [0, 509)`);
    } finally {
      tiny.cleanup();
    }
  });

  test('abort while loading frees what was allocated', async () => {
    const b = be();
    const before = b.liveBytes('device');
    const tiny = writeTinyModel(TINY[0], { seed: 1 });
    try {
      const ac = new AbortController();
      const p = loadModel({ backend: b, dir: tiny.dir }, { signal: ac.signal });
      ac.abort(new Error('cancelled'));
      await rejectsExactly(p, Error, 'cancelled');
      assert.is(b.liveBytes('device'), before);
    } finally {
      tiny.cleanup();
    }
  });

  test('refusals: source, options, files, generate arguments', async () => {
    const tiny = writeTinyModel(TINY[0], { seed: 1 });
    const cfg = path.join(tiny.dir, 'config.json');
    try {
      await rejectsExactly(loadModel(null as never), TypeError, 'loadModel: source must be { backend, dir } or { backend, config, dummySeed }');
      await rejectsExactly(loadModel({ backend: 'cpu' } as never), TypeError, 'loadModel: source must be { backend, dir } or { backend, config, dummySeed }');
      await rejectsExactly(loadModel({ backend: 'tpu' as 'cpu', dir: tiny.dir }), RangeError, "createBackend: backend must be 'cpu', 'cuda' or 'auto', got \"tpu\"");
      await rejectsExactly(loadModel({ backend: {} as never, dir: tiny.dir }), TypeError, "loadModel: backend must be a Backend, 'cpu' or 'cuda'");
      await rejectsExactly(loadModel({ backend: be(), dir: tiny.dir }, { dtype: 'fp8' as 'fp16' }), RangeError, 'loadModel: dtype must be \'fp32\', \'fp16\' or \'bf16\', got "fp8"');
      await rejectsExactly(loadModel({ backend: be(), config: TINY[0].config, dummySeed: -1 }), RangeError, 'loadModel: dummySeed = -1 must be an integer in [0, 2^53)');
      await rejectsExactly(
        loadModel({ backend: be(), config: { ...TINY[0].config, architectures: ['GPT2LMHeadModel'] }, dummySeed: 1 }),
        ModelConfigError,
        'config.json: architecture GPT2LMHeadModel is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)',
      );
      await rejectsExactly(loadModel({ backend: be(), dir: path.join(tiny.dir, 'nope') }), ModelConfigError, `${path.join(tiny.dir, 'nope', 'config.json')}: cannot read (ENOENT)`);
      // A config that disagrees with the weights.
      writeFileSync(cfg, JSON.stringify({ ...tiny.config, intermediate_size: 200 }));
      await rejectsExactly(
        loadModel({ backend: be(), dir: tiny.dir }),
        WeightError,
        `${path.join(tiny.dir, 'model.safetensors')}: tensor "model.layers.0.mlp.gate_proj.weight" has shape [176, 128], expected [intermediate_size, hidden_size] = [200, 128] for this config.json`,
      );
      writeFileSync(cfg, '{"architectures": ');
      await rejectsExactly(
        loadModel({ backend: be(), dir: tiny.dir }),
        ModelConfigError,
        `${cfg}: is not valid JSON (${(() => {
          try {
            JSON.parse('{"architectures": ');
          } catch (e) {
            return (e as Error).message;
          }
        })()})`,
      );
      writeFileSync(cfg, JSON.stringify(tiny.config));
      // A checkpoint cut short.
      const st = path.join(tiny.dir, 'model.safetensors');
      const dataStart = 8 + Number(new DataView(readFileSync(st).buffer).getBigUint64(0, true));
      truncateSync(st, 4096);
      await rejectsExactly(
        loadModel({ backend: be(), dir: tiny.dir }),
        SafetensorsError,
        `${st}: tensor "model.embed_tokens.weight": data_offsets [0, ${331 * 128 * 4}] run past the end of the data section (${4096 - dataStart} bytes after the ${dataStart}-byte header): truncated file?`,
      );

      await using m = await loadModel({ backend: be(), config: TINY[0].config, dummySeed: 3 }, { dtype: 'fp32' });
      await rejectsExactly(m.generate([], { maxTokens: 1 }), RangeError, 'generate: promptIds is empty');
      await rejectsExactly(m.generate([1], { maxTokens: 0 }), RangeError, 'generate: maxTokens = 0 must be a positive integer');
      await rejectsExactly(m.generate([1], { maxTokens: 2048 }), RangeError, "generate: prompt (1) + maxTokens (2048) = 2049 exceeds the model's context of 2048 tokens");
      await rejectsExactly(m.generate([1], { maxTokens: 1, prefillChunk: 0 }), RangeError, 'generate: prefillChunk = 0 must be a positive integer');
      await rejectsExactly(m.generate([1], { maxTokens: 1, sampling: { topP: 2 } }), RangeError, 'generate: sampling.topP = 2 must be in (0, 1]');
      await rejectsExactly(m.generate([331], { maxTokens: 1 }), RangeError, 'forward: tokens[0] = 331 is out of range [0, 331)');
      const ac = new AbortController();
      ac.abort(new Error('stop now'));
      await rejectsExactly(m.generate([1, 2], { maxTokens: 3, signal: ac.signal }), Error, 'stop now');
    } finally {
      tiny.cleanup();
    }
  });
});
