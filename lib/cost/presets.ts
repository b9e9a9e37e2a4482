// Hardware and model presets for the simulator, from public spec sheets and model configs.
//
// GPUS hold one card each, and there `memBytes` is the card's whole HBM. deployment() turns
// a card and a model into a serving group: tensor-parallel degree from the model preset,
// FLOP/s and HBM bandwidth summed over the group times TP_EFFICIENCY, PCIe summed over the
// group (each card has its own link and moves its own heads' KV), and `memBytes` becoming
// what is left for KV:
//
//   KV bytes = TP * (card HBM * GPU_MEMORY_UTILIZATION - weights per card - ACTIVATION_RESERVE)
//
// (vLLM's gpu_memory_utilization = 0.9; the activation reserve stands for the peak of the
// profiling forward pass, which vLLM measures and this model fixes.)
import { RooflineCost, type CostOptions } from './roofline.js';
import type { GpuSpec, ModelSpec } from './specs.js';

const GiB = 1024 ** 3;

/** vLLM's default gpu_memory_utilization. */
export const GPU_MEMORY_UTILIZATION = 0.9;
/** Per-card memory held back for activations of the largest batch (vLLM profiles this;
 *  a few GiB for 7B-70B at a few thousand batched tokens). */
export const ACTIVATION_RESERVE = 2 * GiB;
/** Fraction of linear scaling a tensor-parallel group keeps after its all-reduces
 *  (two per layer; on NVLink they cost roughly a tenth of a layer's time at these sizes). */
export const TP_EFFICIENCY = 0.9;

function gpu(name: string, flops: number, hbmBandwidth: number, memBytes: number, pcie: number): GpuSpec {
  // ~10 us: the cost of issuing one cudaMemcpyAsync and its completion event.
  return { name, flops, hbmBandwidth, memBytes, h2dBandwidth: pcie, d2hBandwidth: pcie, transferLatency: 10e-6 };
}

export const GPUS = {
  /** 312 TFLOP/s dense bf16, 2.04 TB/s HBM2e, PCIe Gen4 x16 (~25 GB/s pinned per direction). */
  'A100-80G': gpu('A100-80G', 312e12, 2.039e12, 80 * GiB, 25e9),
  /** 989 TFLOP/s dense bf16, 3.35 TB/s HBM3, PCIe Gen5 x16 (~55 GB/s pinned per direction). */
  'H100-SXM': gpu('H100-SXM', 989e12, 3.35e12, 80 * GiB, 55e9),
  /** 119.5 TFLOP/s dense fp16, 864 GB/s GDDR6, 48 GB, PCIe Gen4 x16. */
  'L20-48G': gpu('L20-48G', 119.5e12, 864e9, 48e9, 25e9),
} satisfies Record<string, GpuSpec>;

interface Arch {
  name: string;
  numLayers: number;
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  vocabSize: number;
  tensorParallel: number;
}

/** Llama-family parameter counts from the config. `params` counts what a token is
 *  multiplied through (every layer's projections and MLP, and the LM head); the input
 *  embedding is a lookup and costs no FLOPs, but its bytes are weights all the same. */
function llama(a: Arch): ModelSpec {
  const headDim = a.hiddenSize / a.numHeads;
  const q = a.hiddenSize * a.hiddenSize;
  const kv = 2 * a.hiddenSize * a.numKvHeads * headDim;
  const o = a.hiddenSize * a.hiddenSize;
  const mlp = 3 * a.hiddenSize * a.intermediateSize;
  const layers = a.numLayers * (q + kv + o + mlp);
  const head = a.vocabSize * a.hiddenSize;
  const params = layers + head;
  const total = params + head; // + input embedding (untied in every preset here)
  return {
    name: a.name,
    params,
    numLayers: a.numLayers,
    hiddenSize: a.hiddenSize,
    numHeads: a.numHeads,
    numKvHeads: a.numKvHeads,
    headDim,
    kvDtypeBytes: 2,
    weightBytes: (total * 2) / a.tensorParallel,
    tensorParallel: a.tensorParallel,
  };
}

const llama2_7b = { numLayers: 32, hiddenSize: 4096, numHeads: 32, numKvHeads: 32, intermediateSize: 11008, vocabSize: 32000, tensorParallel: 1 };
const llama2_13b = { numLayers: 40, hiddenSize: 5120, numHeads: 40, numKvHeads: 40, intermediateSize: 13824, vocabSize: 32000, tensorParallel: 1 };

export const MODELS = {
  'Llama-2-7B': llama({ name: 'Llama-2-7B', ...llama2_7b }),
  /** Llama-2-7B fine-tuned for 32K context (LongLoRA): same architecture. */
  'LongAlpaca-7B': llama({ name: 'LongAlpaca-7B', ...llama2_7b }),
  'Llama-2-13B': llama({ name: 'Llama-2-13B', ...llama2_13b }),
  'LongAlpaca-13B': llama({ name: 'LongAlpaca-13B', ...llama2_13b }),
  /** GQA: 8 KV heads. */
  'Llama-3.1-8B': llama({ name: 'Llama-3.1-8B', numLayers: 32, hiddenSize: 4096, numHeads: 32, numKvHeads: 8, intermediateSize: 14336, vocabSize: 128256, tensorParallel: 1 }),
  /** ~141 GB of bf16 weights: TP=4 fits it on 80 GB (and 48 GB) cards with room for KV. */
  'Llama-3.1-70B': llama({ name: 'Llama-3.1-70B', numLayers: 80, hiddenSize: 8192, numHeads: 64, numKvHeads: 8, intermediateSize: 28672, vocabSize: 128256, tensorParallel: 4 }),
} satisfies Record<string, ModelSpec>;

export type GpuName = keyof typeof GPUS;
export type ModelName = keyof typeof MODELS;

/** A GPU group for a model: tensor-parallel degree from the model preset, aggregated
 *  FLOP/s and HBM bandwidth, and memBytes = HBM left for KV after weights. */
export function deployment(
  modelName: ModelName,
  gpuName: GpuName,
  opts?: CostOptions,
): { model: ModelSpec; gpu: GpuSpec; cost: RooflineCost } {
  const model = MODELS[modelName];
  const card = GPUS[gpuName];
  if (!model) throw new Error(`deployment: unknown model ${String(modelName)} (known: ${Object.keys(MODELS).join(', ')})`);
  if (!card) throw new Error(`deployment: unknown GPU ${String(gpuName)} (known: ${Object.keys(GPUS).join(', ')})`);
  const tp = model.tensorParallel;
  const perCardKv = card.memBytes * GPU_MEMORY_UTILIZATION - model.weightBytes - ACTIVATION_RESERVE;
  if (perCardKv <= 0) {
    throw new Error(
      `deployment: ${modelName} does not fit on ${gpuName} x${tp}: ${(model.weightBytes / GiB).toFixed(1)} GiB of weights per card ` +
        `leave ${(perCardKv / GiB).toFixed(1)} GiB for KV`,
    );
  }
  const scale = tp === 1 ? 1 : tp * TP_EFFICIENCY;
  const group: GpuSpec = {
    name: tp === 1 ? card.name : `${card.name} x${tp}`,
    flops: card.flops * scale,
    hbmBandwidth: card.hbmBandwidth * scale,
    memBytes: Math.floor(perCardKv) * tp,
    h2dBandwidth: card.h2dBandwidth * tp,
    d2hBandwidth: card.d2hBandwidth * tp,
    transferLatency: card.transferLatency,
  };
  return { model, gpu: group, cost: new RooflineCost(model, group, opts) };
}
