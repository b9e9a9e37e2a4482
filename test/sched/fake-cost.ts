// A cost model with round numbers, so expected plans and times can be worked out by hand:
// a step costs 10 ms + 1 ms per token; a token's KV is 1000 bytes per layer (a 16-token
// block is 16000 bytes); PCIe 10 MB/s each way, the store 10 GB/s, no latencies.
import type { CostModel, CostItem } from '../../lib/cost/cost-model.js';
import type { Channel } from '../../lib/contract/plan.js';

export function fakeCost(o: { numLayers?: number; d2h?: number; h2d?: number; storage?: number; storageLatency?: number } = {}): CostModel {
  const numLayers = o.numLayers ?? 4;
  const stepTime = (items: readonly Pick<CostItem, 'tokens'>[]) => (items.length === 0 ? 0 : 0.01 + 0.001 * items.reduce((a, i) => a + i.tokens, 0));
  const channels = {
    h2d: { bandwidth: o.h2d ?? 1e7, latency: 0 },
    d2h: { bandwidth: o.d2h ?? 1e7, latency: 0 },
    storage: { bandwidth: o.storage ?? 1e10, latency: o.storageLatency ?? 0 },
  };
  return {
    numLayers,
    kvBytesPerTokenLayer: 1000,
    deviceKvBytes: 1e12,
    stepTime,
    prefillChunkTime: (c: number) => stepTime([{ tokens: c }]),
    channel: (c: Channel) => channels[c],
    transferTime: (bytes: number, c: Channel) => bytes / channels[c].bandwidth + channels[c].latency,
  };
}
