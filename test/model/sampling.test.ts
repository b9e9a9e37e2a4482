// Sampling options are checked by name and limit, and packed per row for the native sampler.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packSampling, resolveSampling } from '../../lib/model/sampling.js';
import { refSample, uniform01 } from '../util/ref-sampler.js';
import { throwsExactly } from '../util/throws.js';

test('resolveSampling: defaults and refusals', () => {
  assert.equal(resolveSampling(undefined), { temperature: 0, topK: 0, topP: 1, seed: 0 });
  assert.equal(resolveSampling({ temperature: 0.7, topK: 40, topP: 0.9, seed: 2 ** 40 }), { temperature: 0.7, topK: 40, topP: 0.9, seed: 2 ** 40 });
  const n = 'generate: sampling';
  throwsExactly(() => resolveSampling({ temperature: -1 }, n), RangeError, 'generate: sampling.temperature = -1 must be a finite number >= 0');
  throwsExactly(() => resolveSampling({ temperature: Infinity }, n), RangeError, 'generate: sampling.temperature = Infinity must be a finite number >= 0');
  throwsExactly(() => resolveSampling({ topK: 1.5 }, n), RangeError, 'generate: sampling.topK = 1.5 must be an integer in [0, 2^31)');
  throwsExactly(() => resolveSampling({ topK: -1 }, n), RangeError, 'generate: sampling.topK = -1 must be an integer in [0, 2^31)');
  throwsExactly(() => resolveSampling({ topP: 0 }, n), RangeError, 'generate: sampling.topP = 0 must be in (0, 1]');
  throwsExactly(() => resolveSampling({ topP: 1.01 }, n), RangeError, 'generate: sampling.topP = 1.01 must be in (0, 1]');
  throwsExactly(() => resolveSampling({ topP: NaN }, n), RangeError, 'generate: sampling.topP = NaN must be in (0, 1]');
  throwsExactly(() => resolveSampling({ seed: -3 }, n), RangeError, 'generate: sampling.seed = -3 must be an integer in [0, 2^53)');
  throwsExactly(() => resolveSampling({ seed: 2 ** 53 }, n), RangeError, 'generate: sampling.seed = 9007199254740992 must be an integer in [0, 2^53)');
  throwsExactly(() => resolveSampling(null as never, n), TypeError, 'generate: sampling must be an object');
});

test('packSampling: one entry per row', () => {
  const rows = [resolveSampling({ temperature: 1, topK: 5, seed: 9 }), resolveSampling(undefined)];
  const p = packSampling(rows, [3, 0]);
  assert.equal(Array.from(p.temperature), [1, 0]);
  assert.equal(Array.from(p.topK), [5, 0]);
  assert.equal(Array.from(p.topP), [1, 1]);
  assert.equal(Array.from(p.seed), [9, 0]);
  assert.equal(Array.from(p.counter), [3, 0]);
});

test('reference sampler: greedy ties, filters, and draws that follow the distribution', () => {
  assert.is(refSample([1, 3, 3, 2], {}, 0), 1);
  // top-k 1 and a tiny top-p are greedy whatever the draw.
  for (let c = 0; c < 20; c++) {
    assert.is(refSample([0.1, 2, 0.3, 1.9], { temperature: 1, topK: 1, seed: c }, c), 1);
    assert.is(refSample([0.1, 2, 0.3, 1.9], { temperature: 1, topP: 0.01, seed: 1 }, c), 1);
  }
  // Frequencies over counters match softmax(logits / T) within sampling error.
  const logits = [0, 1, 2, 0.5];
  const T = 0.8;
  const z = logits.reduce((a, l) => a + Math.exp(l / T), 0);
  const counts = [0, 0, 0, 0];
  const N = 20000;
  for (let c = 0; c < N; c++) counts[refSample(logits, { temperature: T, seed: 42 }, c)]++;
  logits.forEach((l, i) => {
    const p = Math.exp(l / T) / z;
    assert.ok(Math.abs(counts[i] / N - p) < 4 * Math.sqrt((p * (1 - p)) / N), `token ${i}: ${counts[i] / N} vs ${p}`);
  });
  // The generator is uniform on [0, 1) and differs across seeds and counters.
  const u = Array.from({ length: 1000 }, (_, i) => uniform01(7, i));
  assert.ok(u.every((x) => x >= 0 && x < 1));
  assert.ok(Math.abs(u.reduce((a, b) => a + b, 0) / u.length - 0.5) < 0.05);
  assert.not.equal(uniform01(1, 0), uniform01(2, 0));
});

test.run();
