// The model and prompt of the cake-engine benchmark, shared by the group and its Redis
// writer process.
import { CONFIG as SERVING_CONFIG } from './serving-model.js';
/** The serving groups' model (bench/serving-model.ts) with 4 KV heads: 4 MiB of KV per
 *  256-token chunk, so a chunk's load weighs against its compute. */
export const CONFIG = { ...SERVING_CONFIG, num_key_value_heads: 4, max_position_embeddings: 4096 };
export const SEED = 5;
export const BLOCK = 16;
export const CHUNK = 256;
export const STORED = 8;
export const SUFFIX = 64;
export const PROMPT = STORED * CHUNK + SUFFIX;
export const LAYERS = CONFIG.num_hidden_layers;
export const BLOCK_BYTES = 2 * CONFIG.num_key_value_heads * CONFIG.head_dim * BLOCK * 4;
export const CHUNK_BYTES = LAYERS * (CHUNK / BLOCK) * BLOCK_BYTES;
export const DEVICE_BLOCKS = 2 * LAYERS * Math.ceil((PROMPT + 8) / BLOCK);
export const HOST_BLOCKS = 2 * STORED * LAYERS * (CHUNK / BLOCK);

/** The stored prompt: STORED chunks of CHUNK tokens, then SUFFIX tokens. */
export function benchPrompt(): number[] {
  return Array.from({ length: PROMPT }, (_, i) => (i * 7919 + 13) % CONFIG.vocab_size);
}
