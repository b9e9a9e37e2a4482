// A cost model with round numbers, so expected plans and times can be worked out by hand:
// a step costs 10 ms + 1 ms per token; a token's KV is 1000 bytes per layer.
export function fakeCost(o: { numLayers?: number; d2h?: number; h2d?: number } = {}) {
  const numLayers = o.numLayers ?? 4;
  const stepTime = (items: readonly { tokens: number }[]) => (items.length === 0 ? 0 : 0.01 + 0.001 * items.reduce((a, i) => a + i.tokens, 0));
  return {
    model: { numLayers, name: 'fake' },
    gpu: { memBytes: 1e12, d2hBandwidth: o.d2h ?? 1e7, h2dBandwidth: o.h2d ?? 1e7, transferLatency: 0 },
    stepTime,
    prefillChunkTime: (c: number, _k: number) => stepTime([{ tokens: c }]),
    transferTime: (bytes: number, bw: number, lat = 0) => bytes / bw + lat,
    kvBytes: (tokens: number, layers = numLayers) => tokens * layers * 1000,
  };
}
