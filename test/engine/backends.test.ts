// The engine on each backend (the CPU always, CUDA where a device is usable): under memory
// pressure, baseline and LayerKV generate exactly the tokens of the model run alone on the
// same backend, and everything is freed. Kernels round differently per backend, so each
// backend is held to its own reference; engine.test.ts covers the rest on the CPU.
import * as assert from 'uvu/assert';
import { createEngine } from '../../lib/engine/index.js';
import { loadModel, type Model } from '../../lib/model/model.js';
import { mulberry32 } from '../../lib/workload/rng.js';
import { forEachBackend } from '../util/backends.js';
import { TINY } from '../util/tiny-model.js';

// 3 layers, GQA 4, head dim 64, vocab 509: one KV block of 16 tokens is 2 x 1 x 64 x 16 x 4 B.
const CONFIG = { ...TINY[1].config, torch_dtype: 'float32' };
const SEED = 11;
const BLOCK = 2 * 1 * 64 * 16 * 4;
const LAYERS = 3;

forEachBackend('engine', (test, _be, kind) => {
  let ref: Model | undefined;
  test.after(() => ref?.release());

  for (const policy of ['baseline', 'layerkv'] as const) {
    test(`${policy} under memory pressure gives the tokens of the model run alone`, async () => {
      ref ??= await loadModel({ backend: kind, config: CONFIG, dummySeed: SEED }, { dtype: 'fp32' });
      const rng = mulberry32(policy === 'baseline' ? 1 : 2);
      const reqs = Array.from({ length: 12 }, () => ({
        prompt: Array.from({ length: 5 + Math.floor(rng() * 70) }, () => Math.floor(rng() * 509)),
        maxTokens: 3 + Math.floor(rng() * 40),
      }));
      const engine = await createEngine({ model: { config: CONFIG, dummySeed: SEED }, backend: kind, dtype: 'fp32', policy, deviceKvBytes: 40 * BLOCK * LAYERS, hostKvBytes: 400 * BLOCK, maxBatchedTokens: 48 });
      try {
        const out = await Promise.all(reqs.map((r) => engine.generate(r.prompt, { maxTokens: r.maxTokens, ignoreEos: true }).result));
        for (const [i, r] of out.entries()) {
          const want = await ref.generate(reqs[i].prompt, { maxTokens: reqs[i].maxTokens, kvDtype: 'fp32', stopTokenIds: [] });
          assert.equal(r.tokenIds, want.tokenIds, `${kind} ${policy} request ${i}`);
        }
        const st = engine.stats();
        assert.is(st.kv.device.usedBlocks, 0);
        assert.is(st.kv.host.usedBlocks, 0);
        if (policy === 'baseline') assert.ok(st.totals.preemptions > 0, 'no preemption happened');
        else assert.ok(st.totals.offloadedBytes > 0 && st.totals.loadedBytes > 0, 'no layer went to the host and back');
      } finally {
        await engine.close();
      }
    });
  }
});
