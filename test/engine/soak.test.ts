// A soak: thousands of short requests through one engine, a third of them aborted at random
// points, on a tiny model. Nothing may leak: every block comes back, the native pools' live
// bytes stay where they were, and the process's resident memory stays flat once warm.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createEngine } from '../../lib/engine/index.js';
import { mulberry32 } from '../../lib/workload/rng.js';

const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 1,
  num_key_value_heads: 1,
  head_dim: 64,
  vocab_size: 300,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  torch_dtype: 'float32',
};

test('soak: 3000 short requests with random aborts leave no blocks, no live bytes and flat RSS', async () => {
  const block = 2 * 64 * 16 * 4;
  const engine = await createEngine({ model: { config: CONFIG, dummySeed: 5 }, backend: 'cpu', dtype: 'fp32', policy: 'layerkv', preemption: 'swap', deviceKvBytes: 60 * block * 2, hostKvBytes: 400 * block, maxBatchedTokens: 128 });
  const rng = mulberry32(2024);
  const live = () => (engine as unknown as { liveBytes(): { device: number; host: number } }).liveBytes();
  const base = live();
  let rssWarm = 0;
  let aborted = 0;
  const total = 3000;
  const waves = 30;
  for (let w = 0; w < waves; w++) {
    const gens = Array.from({ length: total / waves }, () => {
      const ac = new AbortController();
      const g = engine.generate(
        Array.from({ length: 4 + Math.floor(rng() * 40) }, () => Math.floor(rng() * 300)),
        { maxTokens: 1 + Math.floor(rng() * 12), ignoreEos: true, signal: ac.signal, temperature: rng() < 0.5 ? 0 : 0.8, seed: w },
      );
      if (rng() < 0.33) setTimeout(() => ac.abort(), Math.floor(rng() * 20));
      return g;
    });
    const rs = await Promise.all(gens.map((g) => g.result));
    aborted += rs.filter((r) => r.stats.finishReason === 'abort').length;
    const st = engine.stats();
    assert.is(st.kv.device.usedBlocks + st.kv.host.usedBlocks, 0, `wave ${w}: blocks in use after every request ended`);
    assert.is(st.waiting + st.running, 0);
    // Pools and weights, plus the runner's step workspace, which grows to the largest step
    // seen and is then reused (bounded by maxBatchedTokens).
    const now = live();
    assert.is(now.host, base.host, `wave ${w}: host live bytes changed`);
    assert.ok(now.device - base.device <= 4 * 2 ** 20, `wave ${w}: device live bytes grew by ${now.device - base.device}`);
    if (w === 4) {
      global.gc?.();
      rssWarm = process.memoryUsage().rss;
    }
  }
  global.gc?.();
  const grown = process.memoryUsage().rss - rssWarm;
  assert.ok(aborted > 100, `only ${aborted} aborts took effect`);
  assert.ok(grown < 48 * 2 ** 20, `RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB from wave 5 to the end`);
  assert.is(engine.stats().totals.requests, total);
  await engine.close();
  assert.equal(live(), { device: 0, host: 0 });
});

test.run();
