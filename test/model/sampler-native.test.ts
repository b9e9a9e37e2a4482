// The native sampler against the reference sampler (test/util/ref-sampler.ts), token for
// token: greedy, temperature, top-k, top-p and their mixes, on random logits rows with
// planted ties; a row's token does not depend on the rows beside it; the draw is the
// documented counter-based one (seed, counter).
import * as assert from 'uvu/assert';
import { ops } from '../../lib/backend/ops.js';
import { packSampling, resolveSampling, type SamplingOptions } from '../../lib/model/sampling.js';
import { forEachBackend } from '../util/backends.js';
import { refSample } from '../util/ref-sampler.js';
import { Rng } from '../util/rng.js';

function logitsRows(rng: Rng, rows: number, vocab: number): Float32Array {
  const x = new Float32Array(rows * vocab);
  for (let i = 0; i < x.length; i++) x[i] = rng.sym(4);
  // Ties at the top and in the middle: the order (logit desc, id asc) must decide them.
  for (let r = 0; r < rows; r += 3) {
    const row = x.subarray(r * vocab, (r + 1) * vocab);
    const top = Math.max(...row);
    row[rng.int(0, vocab - 1)] = top;
    row[rng.int(0, vocab - 1)] = top;
    row[rng.int(0, vocab - 1)] = row[rng.int(0, vocab - 1)];
  }
  return x;
}

forEachBackend('sampler vs reference', (test, be) => {
  test('every mode, token for token', async () => {
    const rng = new Rng(2024);
    const options: SamplingOptions[] = [
      {},
      { temperature: 1, seed: 1 },
      { temperature: 0.5, seed: 2 },
      { temperature: 1.3, topK: 1, seed: 3 },
      { temperature: 1, topK: 5, seed: 4 },
      { temperature: 0.9, topP: 0.9, seed: 5 },
      { temperature: 0.7, topK: 40, topP: 0.8, seed: 6 },
      { temperature: 2, topP: 0.3, seed: 2 ** 52 + 7 },
      { temperature: 1, topK: 100000, seed: 8 },
    ];
    for (const vocab of [1, 7, 263, 5000]) {
      const rows = 90;
      const x = logitsRows(rng, rows, vocab);
      const res = Array.from({ length: rows }, (_, r) => resolveSampling(options[r % options.length]));
      const counters = Array.from({ length: rows }, (_, r) => (r * 37) % 101);
      const got = await ops.sample(be(), { logits: x, rows, vocab, params: packSampling(res, counters) });
      for (let r = 0; r < rows; r++) {
        const want = refSample(x.subarray(r * vocab, (r + 1) * vocab), res[r], counters[r]);
        assert.is(got.tokenIds[r], want, `vocab ${vocab}, row ${r}, ${JSON.stringify(res[r])}, counter ${counters[r]}`);
      }
    }
  });

  test('a row samples the same token alone or in any batch; counters and seeds change draws', async () => {
    const rng = new Rng(7);
    const vocab = 300;
    const x = logitsRows(rng, 16, vocab);
    const s = resolveSampling({ temperature: 1, topP: 0.95, seed: 99 });
    const all = await ops.sample(be(), { logits: x, rows: 16, vocab, params: packSampling(Array(16).fill(s), Array(16).fill(5)) });
    for (const r of [0, 7, 15]) {
      const alone = await ops.sample(be(), { logits: x.slice(r * vocab, (r + 1) * vocab), rows: 1, vocab, params: packSampling([s], [5]) });
      assert.is(alone.tokenIds[0], all.tokenIds[r]);
    }
    // Flat logits: the token is the draw itself, so counters and seeds must spread it.
    const flat = new Float32Array(64 * vocab);
    const byCounter = await ops.sample(be(), { logits: flat, rows: 64, vocab, params: packSampling(Array(64).fill(s), Array.from({ length: 64 }, (_, i) => i)) });
    assert.ok(new Set(byCounter.tokenIds).size > 40);
    const seeds = Array.from({ length: 64 }, (_, i) => resolveSampling({ temperature: 1, seed: i }));
    const bySeed = await ops.sample(be(), { logits: flat, rows: 64, vocab, params: packSampling(seeds, Array(64).fill(0)) });
    assert.ok(new Set(bySeed.tokenIds).size > 40);
  });
});
