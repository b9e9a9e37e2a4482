// The one interface every part reads execution costs through: the scheduler (to size steps,
// choose LayerKV layouts and Cake splits), the simulator's executor (to advance its clock)
// and the benchmarks. RooflineCost (roofline.ts) implements it from hardware and model specs;
// a model fitted to measured runs can implement it as well.
import type { Channel } from '../contract/plan.js';

/** One sequence's share of a step, as the cost model sees it. */
export interface CostItem {
  phase: 'prefill' | 'decode';
  tokens: number;
  cachedBefore: number;
}

export interface ChannelSpec {
  /** Bytes per second. */
  bandwidth: number;
  /** Fixed seconds per transfer. */
  latency: number;
}

export interface CostModel {
  /** Layers of the model: transfers and block tables are per layer. */
  readonly numLayers: number;
  /** KV bytes of one token in one layer (K and V). */
  readonly kvBytesPerTokenLayer: number;
  /** Device bytes the KV cache may take (sizes the device pool when no block count is given). */
  readonly deviceKvBytes: number;
  /** Seconds of one forward pass over these items (prefill chunks and decodes together). */
  stepTime(items: readonly CostItem[]): number;
  /** Seconds of one prefill chunk of `tokens` tokens after `cachedBefore`, alone in its step. */
  prefillChunkTime(tokens: number, cachedBefore: number): number;
  /** True where the executor's copies between the tiers run on the cores that run the
   *  forward pass (the CPU backend: a copy is memcpy on the same thread pool), so a step
   *  that carries copies takes its compute time plus theirs. False or absent: the copies
   *  have engines of their own (a GPU's DMA) and overlap compute. */
  readonly copiesShareCompute?: boolean;
  /** A compute step that starts after the executor has had no compute for at least
   *  `afterIdleSeconds` takes `seconds` longer: weights and code have left the caches and
   *  the cores have slowed or been lent out (a shared VM's vCPU halts; a GPU's clocks ramp
   *  down). Absent: no such cost. */
  readonly wake?: Readonly<WakeCost>;
  channel(c: Channel): ChannelSpec;
  /** bytes / bandwidth + latency of the channel. */
  transferTime(bytes: number, c: Channel): number;
}

export interface WakeCost {
  afterIdleSeconds: number;
  seconds: number;
}

/** Checks a WakeCost, naming `where` in the error. */
export function checkWake(where: string, w: WakeCost): WakeCost {
  for (const k of ['afterIdleSeconds', 'seconds'] as const) {
    if (!(typeof w?.[k] === 'number' && w[k] >= 0 && Number.isFinite(w[k]))) throw new RangeError(`${where}: wake.${k} must be a finite number of seconds >= 0, got ${String(w?.[k])}`);
  }
  return { afterIdleSeconds: w.afterIdleSeconds, seconds: w.seconds };
}

/** Default prefix-store read path: a fast local NVMe array or RDMA, 10 GB/s, 100 us a read. */
export const DEFAULT_STORAGE: Readonly<ChannelSpec> = { bandwidth: 10e9, latency: 100e-6 };

/** Checks a cost model's shape at a boundary, naming what is missing. */
export function checkCostModel(where: string, cost: unknown): CostModel {
  const c = cost as Partial<CostModel> | null | undefined;
  if (!c || typeof c !== 'object') throw new TypeError(`${where}: cost must be a CostModel (deployment(model, gpu).cost, or see lib/cost), got ${c === null ? 'null' : typeof c}`);
  for (const fn of ['stepTime', 'prefillChunkTime', 'channel', 'transferTime'] as const) {
    if (typeof c[fn] !== 'function') throw new TypeError(`${where}: cost.${fn} must be a function`);
  }
  if (!(Number.isInteger(c.numLayers) && (c.numLayers as number) >= 1)) throw new RangeError(`${where}: cost.numLayers must be an integer >= 1, got ${String(c.numLayers)}`);
  if (!(typeof c.kvBytesPerTokenLayer === 'number' && c.kvBytesPerTokenLayer > 0 && Number.isFinite(c.kvBytesPerTokenLayer))) {
    throw new RangeError(`${where}: cost.kvBytesPerTokenLayer must be a finite number > 0, got ${String(c.kvBytesPerTokenLayer)}`);
  }
  if (!(typeof c.deviceKvBytes === 'number' && c.deviceKvBytes >= 0)) throw new RangeError(`${where}: cost.deviceKvBytes must be a number >= 0, got ${String(c.deviceKvBytes)}`);
  for (const ch of ['h2d', 'd2h', 'storage'] as const) {
    const s = c.channel!(ch);
    // At least 1 byte/s: below that a transfer's time overflows to Infinity.
    if (!s || !(s.bandwidth >= 1 && Number.isFinite(s.bandwidth))) throw new RangeError(`${where}: cost.channel('${ch}').bandwidth must be a finite number of bytes/s >= 1, got ${String(s?.bandwidth)}`);
    if (!(s.latency >= 0 && Number.isFinite(s.latency))) throw new RangeError(`${where}: cost.channel('${ch}').latency must be a finite number >= 0 s, got ${String(s.latency)}`);
  }
  return c as CostModel;
}
