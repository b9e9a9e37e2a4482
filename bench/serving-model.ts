// The dummy model the engine and serve groups run (real Llama shapes at a size two CPU
// cores serve at tens of requests per second), its pools and an engine over them, and the
// request rate it sustains by the cost model's estimate, which both groups scale their
// rates from.
import type { CostModel } from '../lib/cost/cost-model.js';
import { createEngine, type Engine, type StepReport } from '../lib/engine/index.js';
import type { PolicyName } from '../lib/sched/index.js';

export const CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  hidden_size: 256,
  intermediate_size: 704,
  num_hidden_layers: 8,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 64,
  vocab_size: 4096,
  max_position_embeddings: 8192,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
};

/** Requests per second the cost model predicts: each request one 256-token prefill and 40
 *  output tokens of decode at batch 8. */
export function capacityOf(cost: CostModel): number {
  const decodeStep = cost.stepTime(Array.from({ length: 8 }, () => ({ phase: 'decode' as const, tokens: 1, cachedBefore: 280 })));
  return 1 / (cost.prefillChunkTime(256, 0) + (40 * decodeStep) / 8);
}

export const BLOCK = 16;
/** Bytes of one block of one layer's KV (K and V of every KV head, fp32). */
export const BLOCK_BYTES = 2 * CONFIG.num_key_value_heads * CONFIG.head_dim * BLOCK * 4;

/** Pools that hold `requests` requests of 320 tokens in every layer on the device tier,
 *  and 16x that on the host tier. */
export function servingPools(requests: number): { deviceBlocks: number; hostBlocks: number } {
  const deviceBlocks = requests * Math.ceil(320 / BLOCK) * CONFIG.num_hidden_layers;
  return { deviceBlocks, hostBlocks: 16 * deviceBlocks };
}

/** An engine on the CPU backend over the model with these pools. */
export function servingEngine(o: { policy: PolicyName; pools: { deviceBlocks: number; hostBlocks: number }; maxBatchedTokens: number; cost: CostModel; onStep?: (s: StepReport) => void }): Promise<Engine> {
  return createEngine({
    model: { config: CONFIG, dummySeed: 1 },
    backend: 'cpu',
    dtype: 'fp32',
    policy: o.policy,
    deviceKvBytes: o.pools.deviceBlocks * BLOCK_BYTES,
    hostKvBytes: o.pools.hostBlocks * BLOCK_BYTES,
    maxBatchedTokens: o.maxBatchedTokens,
    blockSize: BLOCK,
    cost: o.cost,
    onStep: o.onStep,
  });
}
