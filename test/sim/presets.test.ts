import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ACTIVATION_RESERVE, deployment, GPU_MEMORY_UTILIZATION, GPUS, MODELS, TP_EFFICIENCY, type GpuName, type ModelName } from '../../lib/cost/presets.js';

const GiB = 1024 ** 3;

test('GPU presets carry the public peak figures', () => {
  assert.is(GPUS['A100-80G'].flops, 312e12);
  assert.ok(Math.abs(GPUS['A100-80G'].hbmBandwidth - 2.04e12) / 2.04e12 < 0.01);
  assert.is(GPUS['A100-80G'].h2dBandwidth, 25e9);
  assert.is(GPUS['H100-SXM'].flops, 989e12);
  assert.is(GPUS['H100-SXM'].hbmBandwidth, 3.35e12);
  assert.is(GPUS['H100-SXM'].h2dBandwidth, 55e9);
  assert.is(GPUS['L20-48G'].flops, 119.5e12);
  assert.is(GPUS['L20-48G'].hbmBandwidth, 864e9);
  for (const g of Object.values(GPUS)) assert.is(g.h2dBandwidth, g.d2hBandwidth);
});

test('model presets: parameter counts near the published sizes, architecture shared where it should be', () => {
  const billions = (m: ModelName) => (MODELS[m].weightBytes * MODELS[m].tensorParallel) / 2 / 1e9;
  const published: Record<ModelName, number> = {
    'Llama-2-7B': 6.74,
    'LongAlpaca-7B': 6.74,
    'Llama-2-13B': 13.0,
    'LongAlpaca-13B': 13.0,
    'Llama-3.1-8B': 8.03,
    'Llama-3.1-70B': 70.6,
  };
  for (const [m, b] of Object.entries(published) as [ModelName, number][]) {
    assert.ok(Math.abs(billions(m) - b) / b < 0.01, `${m}: ${billions(m).toFixed(2)}B vs ${b}B`);
    assert.ok(MODELS[m].params < billions(m) * 1e9, `${m}: FLOP params exclude the input embedding`);
  }
  const { name: _a, ...a } = MODELS['Llama-2-7B'];
  const { name: _b, ...b } = MODELS['LongAlpaca-7B'];
  assert.equal(a, b);
  assert.is(MODELS['Llama-3.1-8B'].numKvHeads, 8);
  assert.is(MODELS['Llama-3.1-70B'].tensorParallel, 4);
});

test('deployment: TP=1 keeps the card, KV memory = HBM * 0.9 - weights - activation reserve', () => {
  const { gpu, model } = deployment('Llama-2-7B', 'A100-80G');
  assert.is(gpu.name, 'A100-80G');
  assert.is(gpu.flops, GPUS['A100-80G'].flops);
  const expected = 80 * GiB * GPU_MEMORY_UTILIZATION - model.weightBytes - ACTIVATION_RESERVE;
  assert.ok(Math.abs(gpu.memBytes - expected) <= 1);
  // ~57 GiB: about 117K tokens of Llama-2-7B KV.
  assert.ok(gpu.memBytes / (512 * 1024) > 100_000);
});

test('deployment: TP=4 aggregates compute, bandwidth, PCIe and KV memory', () => {
  const { gpu, model, cost } = deployment('Llama-3.1-70B', 'H100-SXM');
  const card = GPUS['H100-SXM'];
  assert.is(gpu.name, 'H100-SXM x4');
  assert.is(gpu.flops, card.flops * 4 * TP_EFFICIENCY);
  assert.is(gpu.hbmBandwidth, card.hbmBandwidth * 4 * TP_EFFICIENCY);
  assert.is(gpu.h2dBandwidth, card.h2dBandwidth * 4);
  const perCard = 80 * GiB * GPU_MEMORY_UTILIZATION - model.weightBytes - ACTIVATION_RESERVE;
  assert.ok(Math.abs(gpu.memBytes - 4 * perCard) <= 4);
  // The group uses H100's calibration, not the fallback.
  assert.is(cost.mfuLinear, deployment('Llama-2-7B', 'H100-SXM').cost.mfuLinear);
  // Decode of one sequence: all 141 GB of weights over the group's bandwidth.
  const t = cost.decodeTime([1000]);
  assert.ok(t > 141e9 / (4 * card.hbmBandwidth) && t < 0.06, `70B decode ${t}`);
});

test('every model fits on every GPU preset', () => {
  for (const m of Object.keys(MODELS) as ModelName[]) {
    for (const g of Object.keys(GPUS) as GpuName[]) {
      const { gpu } = deployment(m, g);
      assert.ok(gpu.memBytes > 1 * GiB, `${m} on ${g}: ${(gpu.memBytes / GiB).toFixed(1)} GiB for KV`);
    }
  }
});

test('deployment: unknown names and bad options are clear errors', () => {
  assert.throws(() => deployment('GPT-5' as ModelName, 'A100-80G'), /unknown model GPT-5/);
  assert.throws(() => deployment('Llama-2-7B', 'V100' as GpuName), /unknown GPU V100/);
  assert.throws(() => deployment('Llama-2-7B', 'A100-80G', { eta: 2 }), /eta must be in \(0, 1\]/);
});

test.run();
