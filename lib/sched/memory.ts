// Memory policies: how a prefill gets device blocks at admission and which of its layers
// stay on the device. The scheduler core asks a policy for a layout; everything else
// (block tables, transfers, preemption) is the core's.
import type { TierName } from './plan.js';

export interface CostLike {
  readonly model: { numLayers: number };
  readonly gpu: { d2hBandwidth: number; h2dBandwidth: number; transferLatency: number };
  stepTime(items: readonly { phase: 'prefill' | 'decode'; tokens: number; cachedBefore: number }[]): number;
  prefillChunkTime(c: number, k: number): number;
  transferTime(bytes: number, bandwidth: number, latency?: number): number;
  kvBytes(tokens: number, layers?: number): number;
}

export interface LayoutQuery {
  /** Tokens the prefill will hold (prompt, plus generated tokens when recomputing). */
  tokens: number;
  /** Blocks one layer of it needs. */
  blocksPerLayer: number;
  /** Device blocks free for an admission (watermark already subtracted). */
  deviceFree: number;
  hostFree: number;
  numLayers: number;
  /** Token budget per step, for the prefill-time estimate. */
  chunkTokens: number;
}

export interface MemoryPolicy {
  readonly name: 'baseline' | 'layerkv';
  /** Tier of each layer for a new prefill, or null when it cannot be admitted now. */
  layout(q: LayoutQuery): TierName[] | null;
}

/** vLLM v0: every layer's blocks for the whole prompt on the device at admission. */
export class BaselineMemory implements MemoryPolicy {
  readonly name = 'baseline' as const;
  layout(q: LayoutQuery): TierName[] | null {
    if (q.blocksPerLayer * q.numLayers > q.deviceFree) return null;
    return new Array<TierName>(q.numLayers).fill('device');
  }
}

/** Which k of L layers stay on the device: spread evenly, so between two kept layers sit
 *  offloaded ones whose transfers overlap the kept layers' compute (and, more to the
 *  point, every offloaded layer has compute after it to hide behind). Layer L-1 is kept
 *  first: its offload could only overlap the next step. */
export function interleavedKeep(numLayers: number, keep: number): boolean[] {
  const out = new Array<boolean>(numLayers).fill(false);
  for (let l = 0; l < numLayers; l++) out[l] = Math.floor(((l + 1) * keep) / numLayers) > Math.floor((l * keep) / numLayers);
  return out;
}

/**
 * LayerKV: a prefill is admitted when the device has blocks for the layers it keeps; the
 * rest go to the host as each layer's prefill finishes. The fewest layers kept is the
 * smallest k with offload time of the other L-k layers <= the prefill's compute time (the
 * offload then hides behind compute). Above that minimum the policy keeps as many layers as
 * the device has free blocks for: a kept layer costs nothing now and saves a load at decode.
 */
export class LayerKvMemory implements MemoryPolicy {
  readonly name = 'layerkv' as const;
  private readonly minKeepCache = new Map<number, number>();
  constructor(
    private readonly cost: CostLike,
    private readonly minDeviceLayers = 0,
  ) {}

  /** Prefill compute time of `tokens` tokens in chunks of `chunk`. */
  prefillTime(tokens: number, chunk: number): number {
    let t = 0;
    for (let k = 0; k < tokens; k += chunk) t += this.cost.prefillChunkTime(Math.min(chunk, tokens - k), k);
    return t;
  }

  /** The smallest number of kept layers that satisfies the offload constraint. */
  minKeep(tokens: number, numLayers: number, chunk: number): number {
    const hit = this.minKeepCache.get(tokens);
    if (hit !== undefined) return hit;
    const compute = this.prefillTime(tokens, chunk);
    const perLayer = this.cost.kvBytes(tokens, 1);
    // Offloads of one layer go out per chunk, so latency is paid per chunk per layer.
    const chunks = Math.ceil(tokens / chunk);
    const oneLayer = perLayer / this.cost.gpu.d2hBandwidth + chunks * this.cost.gpu.transferLatency;
    const offloadable = oneLayer > 0 ? Math.min(numLayers, Math.floor(compute / oneLayer)) : numLayers;
    const k = Math.max(this.minDeviceLayers, numLayers - offloadable);
    if (this.minKeepCache.size > 4096) this.minKeepCache.clear();
    this.minKeepCache.set(tokens, k);
    return k;
  }

  /** Offload seconds vs prefill compute seconds for a layout keeping `keep` layers (the
   *  invariant checker's view of the constraint). */
  constraint(tokens: number, numLayers: number, keep: number, chunk: number): { offload: number; compute: number } {
    const chunks = Math.ceil(tokens / chunk);
    const off = numLayers - keep;
    return {
      offload: off * (this.cost.kvBytes(tokens, 1) / this.cost.gpu.d2hBandwidth + chunks * this.cost.gpu.transferLatency),
      compute: this.prefillTime(tokens, chunk),
    };
  }

  layout(q: LayoutQuery): TierName[] | null {
    const min = Math.min(q.numLayers, this.minKeep(q.tokens, q.numLayers, q.chunkTokens));
    const fit = q.blocksPerLayer === 0 ? q.numLayers : Math.floor(q.deviceFree / q.blocksPerLayer);
    if (fit < min) return null;
    const keep = Math.min(q.numLayers, fit);
    if ((q.numLayers - keep) * q.blocksPerLayer > q.hostFree) return null;
    const kept = interleavedKeep(q.numLayers, keep);
    return kept.map((k) => (k ? 'device' : 'host'));
  }
}
