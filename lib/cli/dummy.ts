// Dummy models for `kvcake serve --dummy`: a named shape or any config.json, with seeded
// weights and, unless a tokenizer directory is given, the built-in byte-level tokenizer.
import { readFileSync } from 'node:fs';
import { BYTE_TOKENIZER_MIN_VOCAB, writeByteTokenizer } from '../model/byte-tokenizer.js';

const llama = (o: Record<string, unknown>) => ({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: null,
  tie_word_embeddings: true,
  torch_dtype: 'float32',
  bos_token_id: 256,
  eos_token_id: 260,
  ...o,
});

/** Named shapes: small enough for a CPU, shaped like a Llama (GQA, head dim 64). */
export const DUMMY_PRESETS: Record<string, Record<string, unknown>> = {
  tiny: llama({ hidden_size: 256, intermediate_size: 512, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 64, vocab_size: 512, max_position_embeddings: 8192 }),
  small: llama({ hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64, vocab_size: 8192, max_position_embeddings: 16384 }),
};

/** A preset name, or the path of a config.json. */
export function loadDummyConfig(spec: string): Record<string, unknown> {
  if (Object.hasOwn(DUMMY_PRESETS, spec)) return DUMMY_PRESETS[spec];
  let text: string;
  try {
    text = readFileSync(spec, 'utf8');
  } catch (err) {
    throw new Error(`--dummy: ${spec} is neither a preset (${Object.keys(DUMMY_PRESETS).join(', ')}) nor a readable config.json: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`--dummy: ${spec} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The byte tokenizer's directory for this config, or null when its vocabulary is too small for one. */
export function dummyTokenizerDir(config: Record<string, unknown>): string | null {
  const v = config.vocab_size;
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= BYTE_TOKENIZER_MIN_VOCAB ? writeByteTokenizer(v) : null;
}
