// The native forward against the independent fp64 reference (test/util/ref-model.ts), on
// tiny checkpoints the tests write: every architecture, GQA 1/4/8, odd vocabularies, tied
// and untied embeddings, fp32 / fp16 / bf16 weights, single and sharded files.
//
// Tolerances. Both sides read the same weights (rounded to the checkpoint dtype when the
// file is written) and both round q, k, v and the attention output to the KV pool's dtype,
// because that is what the pool and the attention kernels store. What is left:
//   - fp32 pool: fp32 arithmetic against fp64. Logits must agree within 1e-4 of the row's
//     largest logit (the issue's 1e-4 relative; relative to the row's scale because single
//     logits pass through zero).
//   - fp16 / bf16 pool: the same fp32 differences, plus rounding-boundary flips: a value
//     whose fp32 and fp64 versions fall on either side of a 16-bit rounding midpoint rounds
//     one ulp apart (u = 2^-11 fp16, 2^-8 bf16, relative). A flipped element perturbs the
//     next layer's input by at most u of its size; RMSNorm keeps the residual stream at unit
//     scale and the perturbations of independent elements add in quadrature, so the logit
//     error stays about u. The bound used, 2u of the row's largest logit per layer, leaves
//     room for that growing with depth; a failure prints the measured worst row.
// On CUDA the GEMMs take activations rounded to the weight dtype (cuBLAS has no fp32 x
// bf16 GEMM); the reference mirrors that with gemmInputDtype, and the same bound holds.
import * as assert from 'uvu/assert';
import { parseModelConfig } from '../../lib/model/config.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import type { RefDType } from '../reference.js';
import { forEachBackend } from '../util/backends.js';
import { RefModel, argmax } from '../util/ref-model.js';
import { Rng } from '../util/rng.js';
import { TINY, writeTinyModel, type TinySpec } from '../util/tiny-model.js';

const U: Record<RefDType, number> = { fp32: 0, fp16: 2 ** -11, bf16: 2 ** -8 };

function tolerance(kv: RefDType, layers: number): number {
  return kv === 'fp32' ? 1e-4 : 2 * U[kv] * layers;
}

/** max |got - want| / max |want| over a row. */
function rowError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0;
  let err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    err = Math.max(err, Number.isNaN(d) ? Infinity : d);
  }
  return err / scale;
}

function prompt(vocab: number, n: number, seed: number): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(0, vocab - 1));
}

interface Case {
  spec: TinySpec;
  dtype: RefDType;
  shards?: number;
}

// Every architecture in fp32; the 16-bit paths on two architectures each.
const CASES: Case[] = [
  ...TINY.map((spec) => ({ spec, dtype: 'fp32' as const })),
  { spec: TINY[0], dtype: 'fp16', shards: 2 },
  { spec: TINY[1], dtype: 'bf16' },
  { spec: TINY[2], dtype: 'fp16' },
  { spec: TINY[3], dtype: 'bf16', shards: 3 },
];

forEachBackend('model forward vs fp64 reference', (test, be, kind) => {
  for (const c of CASES) {
    test(`${c.spec.name}, ${c.dtype} weights${c.shards ? `, ${c.shards} shards` : ''}: logits and 32 greedy tokens`, async () => {
      const tiny = writeTinyModel(c.spec, { dtype: c.dtype, shards: c.shards, seed: 11 });
      let model: Model | undefined;
      try {
        model = await loadModel({ backend: be(), dir: tiny.dir });
        const kv = c.dtype;
        const cfg = model.config;
        const ids = prompt(cfg.vocabSize, 21, 5);
        const out = await model.generate(ids, { maxTokens: 32, stopTokenIds: [], returnLogits: true, kvDtype: kv });
        assert.is(out.tokenIds.length, 32);
        const ref = new RefModel(tiny.config, tiny.weights, { kvDtype: kv, gemmInputDtype: kind === 'cuda' && c.dtype !== 'fp32' ? c.dtype : undefined });
        // Teacher-forced with the native tokens, so every row compares the same inputs.
        const seq = ref.newSequence();
        const want = [...ref.forward(seq, ids), ...ref.forward(seq, out.tokenIds.slice(0, -1))];
        const got = [...out.promptLogits!, ...out.stepLogits!];
        assert.is(got.length, want.length);
        const tol = tolerance(kv, cfg.numLayers);
        let worst = 0;
        let at = -1;
        got.forEach((g, i) => {
          const e = rowError(g, want[i]);
          if (e > worst) [worst, at] = [e, i];
        });
        assert.ok(worst <= tol, `worst logits error ${worst.toExponential(2)} at row ${at} > ${tol.toExponential(2)}`);
        // Greedy: each native token is the reference argmax after the same prefix.
        const greedy = want.slice(ids.length - 1).map(argmax);
        assert.equal(out.tokenIds, greedy);
        // And free-running reference greedy gives the same 32 tokens.
        assert.equal(ref.greedy(ids, 32), out.tokenIds);
      } finally {
        model?.release();
        tiny.cleanup();
      }
    });
  }

  test('chunked prefill: chunks of 1, block-unaligned 7 and the whole prompt give the same logits', async () => {
    for (const spec of [TINY[1], TINY[3]]) {
      const tiny = writeTinyModel(spec, { seed: 3 });
      try {
        await using model = await loadModel({ backend: be(), dir: tiny.dir });
        const ids = prompt(model.config.vocabSize, 37, 9);
        const runs = [];
        for (const prefillChunk of [37, 1, 7, 16]) {
          runs.push(await model.generate(ids, { maxTokens: 4, prefillChunk, returnLogits: true, blockSize: 16, stopTokenIds: [] }));
        }
        const [whole, ...others] = runs;
        for (const [k, r] of others.entries()) {
          assert.equal(r.tokenIds, whole.tokenIds);
          r.promptLogits!.forEach((row, i) => {
            const e = rowError(row, whole.promptLogits![i]);
            assert.ok(e <= 1e-5, `${spec.name}: chunking #${k + 1}, prompt token ${i}: ${e.toExponential(2)}`);
          });
        }
      } finally {
        tiny.cleanup();
      }
    }
  });

  test('dummy weights: deterministic per seed, finite, any config', async () => {
    const cfg = parseModelConfig({ ...TINY[1].config, num_hidden_layers: 4, vocab_size: 4099 });
    const gen = async (seed: number) => {
      await using m = await loadModel({ backend: be(), config: cfg, dummySeed: seed }, { dtype: 'bf16' });
      return await m.generate([1, 2, 3, 4, 5], { maxTokens: 8, returnLogits: true, stopTokenIds: [] });
    };
    const a = await gen(7);
    const b = await gen(7);
    const d = await gen(8);
    assert.equal(a.tokenIds, b.tokenIds);
    assert.equal(a.promptLogits, b.promptLogits);
    assert.not.equal(a.promptLogits, d.promptLogits);
    for (const row of [...a.promptLogits!, ...a.stepLogits!]) {
      for (const v of row) assert.ok(Number.isFinite(v));
      // Unit-scale weights give O(1) logits, not a flat row.
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of row) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      assert.ok(hi - lo > 0.5 && hi - lo < 100, `logit range ${hi - lo}`);
    }
  });

  test('release frees the weights; await using releases too', async () => {
    const b = be();
    const before = b.liveBytes('device');
    const tiny = writeTinyModel(TINY[0], { seed: 1 });
    try {
      {
        await using m = await loadModel({ backend: b, dir: tiny.dir });
        assert.ok(b.liveBytes('device') >= before + m.weightBytes);
        await m.generate([1, 2, 3], { maxTokens: 2 });
      }
      assert.is(b.liveBytes('device'), before);
      const m = await loadModel({ backend: b, dir: tiny.dir });
      m.release();
      m.release();
      assert.is(b.liveBytes('device'), before);
      assert.throws(() => m.forward({} as never), /forward: the model was released/);
    } finally {
      tiny.cleanup();
    }
  });
});
