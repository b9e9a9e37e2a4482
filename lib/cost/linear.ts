// A cost model linear in what a step does, fitted to measured steps (lib/engine/calibrate.ts):
//
//   step = t0 + perItem * items + perToken * tokens + perPair * attnPairs + perKvToken * kvRead
//
//   tokens     new tokens the step computes (the GEMMs: weights times activations)
//   attnPairs  sum over items of c * (k + c/2): query-key pairs of causal attention
//   kvRead     sum over items of k + c: KV tokens the attention reads
//   items      sequences in the step (per-sequence overheads: tables, softmax setup)
//
// On a CPU every part of a step competes for the same cores, so the parts add up; a GPU's
// roofline (RooflineCost: the larger of compute and memory time) does not describe it.
import type { Channel } from '../contract/plan.js';
import { checkWake, type ChannelSpec, type CostItem, type CostModel, type WakeCost } from './cost-model.js';

export interface LinearCoefficients {
  t0: number;
  perItem: number;
  perToken: number;
  perPair: number;
  perKvToken: number;
}

export class LinearCost implements CostModel {
  readonly numLayers: number;
  readonly kvBytesPerTokenLayer: number;
  readonly deviceKvBytes: number;
  readonly coef: Readonly<LinearCoefficients>;
  readonly copiesShareCompute: boolean;
  readonly wake?: Readonly<WakeCost>;
  private readonly channels: Record<Channel, ChannelSpec>;

  constructor(o: { numLayers: number; kvBytesPerTokenLayer: number; deviceKvBytes: number; coef: LinearCoefficients; channels: Record<Channel, ChannelSpec>; copiesShareCompute?: boolean; wake?: WakeCost }) {
    for (const [k, v] of Object.entries(o.coef)) if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`LinearCost: coef.${k} must be a finite number >= 0, got ${v}`);
    for (const ch of ['h2d', 'd2h', 'storage'] as const) {
      const s = o.channels[ch];
      if (!(s && s.bandwidth > 0 && Number.isFinite(s.bandwidth) && s.latency >= 0)) throw new RangeError(`LinearCost: channels.${ch} needs a positive bandwidth and a latency >= 0`);
    }
    this.numLayers = o.numLayers;
    this.kvBytesPerTokenLayer = o.kvBytesPerTokenLayer;
    this.deviceKvBytes = o.deviceKvBytes;
    this.coef = { ...o.coef };
    this.copiesShareCompute = o.copiesShareCompute ?? false;
    if (o.wake !== undefined) this.wake = checkWake('LinearCost', o.wake);
    this.channels = { h2d: { ...o.channels.h2d }, d2h: { ...o.channels.d2h }, storage: { ...o.channels.storage } };
  }

  /** The step's features, in the coefficients' order after t0. */
  static features(items: readonly CostItem[]): [number, number, number, number] {
    let tokens = 0;
    let pairs = 0;
    let kv = 0;
    for (const it of items) {
      tokens += it.tokens;
      pairs += it.tokens * (it.cachedBefore + it.tokens / 2);
      kv += it.cachedBefore + it.tokens;
    }
    return [items.length, tokens, pairs, kv];
  }

  stepTime(items: readonly CostItem[]): number {
    if (items.length === 0) return 0;
    const [n, tokens, pairs, kv] = LinearCost.features(items);
    const c = this.coef;
    return c.t0 + c.perItem * n + c.perToken * tokens + c.perPair * pairs + c.perKvToken * kv;
  }

  prefillChunkTime(tokens: number, cachedBefore: number): number {
    return this.stepTime([{ phase: 'prefill', tokens, cachedBefore }]);
  }

  channel(c: Channel): ChannelSpec {
    const s = this.channels[c];
    if (!s) throw new RangeError(`LinearCost.channel: channel must be 'h2d', 'd2h' or 'storage', got ${String(c)}`);
    return s;
  }

  transferTime(bytes: number, c: Channel): number {
    const s = this.channel(c);
    return bytes / s.bandwidth + s.latency;
  }
}
