// Calibration of the cost model against the public figures in the design notes, and its
// arithmetic and error paths.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RooflineCost } from '../../lib/cost/roofline.js';
import { deployment, GPUS, MODELS } from '../../lib/cost/presets.js';
import { kvBytesPerToken } from '../../lib/cost/specs.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function within(actual: number, expected: number, frac: number, what: string) {
  const err = Math.abs(actual - expected) / expected;
  assert.ok(err <= frac, `${what}: ${actual.toFixed(4)} vs ${expected.toFixed(4)} (${(err * 100).toFixed(1)}% off, limit ${frac * 100}%)`);
}

// Cake Fig. 4: LongAlpaca-7B, 512-token chunks of a 32K prompt, linear in the chunk index.
const fig4 = { 'A100-80G': [0.0388, 0.112], 'H100-SXM': [0.0274, 0.0935] } as const;
for (const [gpu, [first, last]] of Object.entries(fig4) as [keyof typeof fig4, readonly [number, number]][]) {
  test(`Cake Fig. 4 chunk prefill times on ${gpu} within 10% at chunks 0, 31, 63`, () => {
    const { cost } = deployment('LongAlpaca-7B', gpu);
    for (const i of [0, 31, 63]) {
      const expected = first + ((last - first) * i) / 63;
      within(cost.prefillChunkTime(512, 512 * i), expected, 0.1, `${gpu} chunk ${i}`);
    }
  });

  test(`chunk prefill time on ${gpu} is linear in the chunk index`, () => {
    const { cost } = deployment('LongAlpaca-7B', gpu);
    const t = (i: number) => cost.prefillChunkTime(512, 512 * i);
    const slope = (t(63) - t(0)) / 63;
    for (const i of [1, 10, 40, 62]) within(t(i) - t(i - 1), slope, 1e-9, `step ${i}`);
  });
}

test('KV bytes per token match the published sizes exactly', () => {
  assert.is(kvBytesPerToken(MODELS['Llama-2-7B']), 512 * KiB);
  assert.is(kvBytesPerToken(MODELS['LongAlpaca-7B']), 512 * KiB);
  assert.is(kvBytesPerToken(MODELS['Llama-2-13B']), 800 * KiB);
  assert.is(kvBytesPerToken(MODELS['LongAlpaca-13B']), 800 * KiB);
  assert.is(kvBytesPerToken(MODELS['Llama-3.1-8B']), 128 * KiB);
  assert.is(kvBytesPerToken(MODELS['Llama-3.1-70B']), 320 * KiB);
});

test('KV of one 512-token chunk of a 7B model is 256 MiB; per layer 8 MiB', () => {
  const { cost } = deployment('LongAlpaca-7B', 'A100-80G');
  assert.is(cost.kvBytes(512), 256 * MiB);
  assert.is(cost.kvBytes(512, 1), 8 * MiB);
  assert.is(cost.kvBytes(0), 0);
});

test('Vidur: Llama-2-7B linear layers for 4096 tokens on A100 within 25% of 263 ms', () => {
  const { cost, model } = deployment('Llama-2-7B', 'A100-80G');
  const linear = (2 * model.params * 4096) / (cost.mfuLinear * cost.gpu.flops);
  // The fit to Cake reads ~290 ms: 10% above Vidur's isolated-GEMM figure.
  within(linear, 0.263, 0.25, 'linear 4096 tokens');
  assert.ok(linear > 0.263, 'Cake-fitted linear efficiency is below Vidur\'s');
});

test('decode is memory-bound for small batches, and weights dominate a batch of one', () => {
  for (const gpu of Object.keys(GPUS) as (keyof typeof GPUS)[]) {
    const { cost } = deployment('Llama-2-7B', gpu);
    for (const batch of [1, 8, 32]) {
      const items = Array.from({ length: batch }, () => ({ phase: 'decode' as const, tokens: 1, cachedBefore: 1024 }));
      const b = cost.breakdown(items);
      assert.ok(b.memory > 3 * b.compute, `${gpu} batch ${batch}: memory ${b.memory} vs compute ${b.compute}`);
    }
    const one = cost.decodeTime([1024]);
    const weightsOnly = cost.t0 + cost.totalWeightBytes / (cost.eta * cost.gpu.hbmBandwidth);
    within(one, weightsOnly, 0.1, `${gpu} batch 1`);
  }
});

test('a long prefill chunk is compute-bound', () => {
  const { cost } = deployment('Llama-2-7B', 'A100-80G');
  const b = cost.breakdown([{ phase: 'prefill', tokens: 2048, cachedBefore: 0 }]);
  assert.ok(b.compute > 5 * b.memory);
});

test('LayerKV sanity: Llama-2-7B on one L20 decodes at TPOT ~30-70 ms at moderate batch', () => {
  const { cost } = deployment('Llama-2-7B', 'L20-48G');
  for (const [batch, ctx] of [[16, 1024], [16, 2048], [32, 1024], [24, 2048]]) {
    const t = cost.decodeTime(new Array(batch).fill(ctx));
    assert.ok(t >= 0.03 && t <= 0.07, `batch ${batch} x ${ctx}: ${(t * 1e3).toFixed(1)} ms`);
  }
});

test('LayerKV sanity: a 128-token prompt on one L20 prefills in a few tens of ms (TTFT ~0.05 s unqueued)', () => {
  const { cost } = deployment('Llama-2-7B', 'L20-48G');
  const t = cost.prefillChunkTime(128, 0);
  assert.ok(t >= 0.015 && t <= 0.06, `${(t * 1e3).toFixed(1)} ms`);
});

test('mixed batch: FLOPs and bytes add, t0 is paid once', () => {
  const { cost } = deployment('Llama-2-7B', 'A100-80G');
  const prefill = { phase: 'prefill' as const, tokens: 512, cachedBefore: 4096 };
  const decodes = Array.from({ length: 16 }, () => ({ phase: 'decode' as const, tokens: 1, cachedBefore: 2000 }));
  const mixed = cost.stepTime([prefill, ...decodes]);
  const bp = cost.breakdown([prefill]);
  const bd = cost.breakdown(decodes);
  // One pass reads the weights once, so bytes add minus one copy of the weights.
  const weights = cost.totalWeightBytes / (cost.eta * cost.gpu.hbmBandwidth);
  const expected = cost.t0 + Math.max(bp.compute + bd.compute, bp.memory + bd.memory - weights);
  within(mixed, expected, 1e-12, 'mixed step');
  assert.ok(mixed < cost.stepTime([prefill]) + cost.stepTime(decodes), 'batching is cheaper than two steps');
  assert.ok(mixed >= cost.stepTime([prefill]));
  assert.is(cost.stepTime([]), 0);
});

test('computeShare scales compute, not memory', () => {
  const full = deployment('LongAlpaca-7B', 'A100-80G').cost;
  const cell = deployment('LongAlpaca-7B', 'A100-80G', { computeShare: 0.125 }).cost;
  const item = [{ phase: 'prefill' as const, tokens: 512, cachedBefore: 8192 }];
  within(cell.breakdown(item).compute, 8 * full.breakdown(item).compute, 1e-12, 'compute');
  within(cell.breakdown(item).memory, full.breakdown(item).memory, 1e-12, 'memory');
});

test('options override the calibration', () => {
  const { model, gpu } = deployment('Llama-2-7B', 'A100-80G');
  const c = new RooflineCost(model, gpu, { mfuLinear: 0.5, mfuAttention: 0.5, eta: 1, t0: 0 });
  const expected = (2 * model.params * 100 + 4 * 32 * 4096 * 100 * 50) / (0.5 * gpu.flops);
  within(c.prefillChunkTime(100, 0), Math.max(expected, (c.totalWeightBytes + 100 * c.kvBytesPerToken) / gpu.hbmBandwidth), 1e-12, 'prefill');
});

test('transfer time is bytes / bandwidth + latency of the channel', () => {
  const { cost, gpu } = deployment('Llama-2-7B', 'A100-80G');
  within(cost.transferTime(256 * MiB, 'h2d'), (256 * MiB) / 25e9 + gpu.transferLatency, 1e-12, 'h2d');
  assert.is(cost.transferTime(0, 'd2h'), gpu.transferLatency);
  // The store's default read path: 10 GB/s, 100 us a read.
  within(cost.transferTime(1e9, 'storage'), 0.1 + 100e-6, 1e-12, 'storage');
  const slow = deployment('Llama-2-7B', 'A100-80G', { storage: { bandwidth: 1e9, latency: 0.5 } }).cost;
  within(slow.transferTime(1e9, 'storage'), 1.5, 1e-12, 'storage option');
  assert.equal(slow.channel('h2d'), cost.channel('h2d'));
});

test('bad arguments throw errors naming the argument and the limit', () => {
  const { model, gpu, cost } = deployment('Llama-2-7B', 'A100-80G');
  assert.throws(() => new RooflineCost(model, gpu, { mfuLinear: 0 }), /mfuLinear must be in \(0, 1\], got 0/);
  assert.throws(() => new RooflineCost(model, gpu, { computeShare: 1.5 }), /computeShare must be in \(0, 1\], got 1.5/);
  assert.throws(() => new RooflineCost(model, gpu, { t0: -1 }), /t0 must be >= 0, got -1/);
  assert.throws(() => new RooflineCost(model, { ...gpu, flops: 0 }), /gpu.flops must be > 0/);
  assert.throws(() => cost.prefillChunkTime(0, 0), /c must be an integer > 0, got 0/);
  assert.throws(() => cost.prefillChunkTime(10, -1), /k must be an integer >= 0, got -1/);
  assert.throws(() => cost.stepTime([{ phase: 'decode', tokens: 0, cachedBefore: 3 }]), /tokens must be > 0/);
  assert.throws(() => cost.transferTime(10, 'pcie' as never), /channel must be 'h2d', 'd2h' or 'storage', got pcie/);
  assert.throws(() => cost.transferTime(-1, 'h2d'), /bytes must be >= 0, got -1/);
  assert.throws(() => new RooflineCost(model, gpu, { storage: { bandwidth: 0 } }), /storage.bandwidth must be a positive finite bytes\/s, got 0/);
  assert.throws(() => new RooflineCost(model, { ...gpu, h2dBandwidth: NaN }), /gpu.h2dBandwidth must be a positive finite bytes\/s, got NaN/);
  assert.throws(() => cost.kvBytes(10, 33), /layers must be an integer in \[0, 32\], got 33/);
  assert.throws(() => cost.kvBytes(1.5), /tokens must be an integer >= 0, got 1.5/);
});

test.run();
