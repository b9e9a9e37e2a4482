// Hardware and model descriptions the cost model and schedulers read. Presets live in
// presets.ts; these are the shapes.

/** A transformer as the KV cache and the cost model see it. */
export interface ModelSpec {
  name: string;
  /** Parameters, counted for the 2*P FLOPs-per-token linear-layer cost. */
  params: number;
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Bytes per KV element (2 for fp16/bf16). */
  kvDtypeBytes: number;
  /** Bytes of weights read per decode step (per GPU under tensor parallelism). */
  weightBytes: number;
  /** Tensor-parallel degree the preset assumes (1 unless the model needs more). */
  tensorParallel: number;
}

/** One GPU (or one tensor-parallel group, already aggregated by the preset). */
export interface GpuSpec {
  name: string;
  /** Dense bf16 FLOP/s peak. */
  flops: number;
  /** HBM bytes/s peak. */
  hbmBandwidth: number;
  /** HBM bytes available for KV after weights and activations. */
  memBytes: number;
  /** Host<->device bytes/s per direction (pinned). */
  h2dBandwidth: number;
  d2hBandwidth: number;
  /** Fixed latency of one transfer, seconds. */
  transferLatency: number;
}

/** KV bytes one token occupies across all layers (K and V). */
export function kvBytesPerToken(m: ModelSpec): number {
  return 2 * m.numLayers * m.numKvHeads * m.headDim * m.kvDtypeBytes;
}

/** KV bytes one token occupies in one layer. */
export function kvBytesPerTokenLayer(m: ModelSpec): number {
  return 2 * m.numKvHeads * m.headDim * m.kvDtypeBytes;
}
