// The cost model an engine's scheduler plans with, before it is fitted to this machine
// (calibrate.ts): a roofline over the model's real shapes with round priors for a CPU.
// Planning quality depends on it (chunk sizes under SLOs, LayerKV's kept layers, Cake's
// split); correctness never does.
import { RooflineCost } from '../cost/roofline.js';
import type { GpuSpec } from '../cost/specs.js';
import { modelSpec } from '../model/config.js';
import type { Model } from '../model/model.js';

export interface EngineCostOptions {
  /** Device KV bytes the pools hold. */
  deviceKvBytes: number;
  /** Peak FLOP/s and memory bytes/s of the machine (priors: 100 GFLOP/s, 20 GB/s). */
  flops?: number;
  bandwidth?: number;
  /** Fitted efficiencies (RooflineCost's options); priors otherwise. */
  mfuLinear?: number;
  mfuAttention?: number;
  eta?: number;
  t0?: number;
  /** Host <-> device copy bandwidth, bytes/s (prior: half the memory bandwidth). */
  copyBandwidth?: number;
}

export function engineCost(model: Model, o: EngineCostOptions): RooflineCost {
  const spec = modelSpec(model.config, { weightDtype: model.dtype, kvDtype: model.dtype });
  const bw = o.bandwidth ?? 20e9;
  const copy = o.copyBandwidth ?? bw / 2;
  const gpu: GpuSpec = { name: `${model.backend.name} (this machine)`, flops: o.flops ?? 100e9, hbmBandwidth: bw, memBytes: o.deviceKvBytes, h2dBandwidth: copy, d2hBandwidth: copy, transferLatency: 30e-6 };
  return new RooflineCost(spec, gpu, { mfuLinear: o.mfuLinear ?? 0.5, mfuAttention: o.mfuAttention ?? 0.3, eta: o.eta ?? 0.5, t0: o.t0 ?? 0.5e-3 });
}
