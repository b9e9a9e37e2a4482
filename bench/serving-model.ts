// The dummy model the engine and serve groups run (real Llama shapes at a size two CPU
// cores serve at tens of requests per second), and the request rate it sustains by the
// cost model's estimate, which both groups scale their rates from.
import type { CostModel } from '../lib/cost/cost-model.js';

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
