// The weights a config implies, matched against a checkpoint by their Hugging Face names,
// and dummy weights from a seed for the same shapes (vLLM's load_format=dummy).
import type { ModelConfig } from './config.js';
import type { Checkpoint, TensorInfo, SafetensorsDType } from './safetensors.js';

export type WeightRole =
  | 'embed'
  | 'lmHead'
  | 'finalNorm'
  | 'inputNorm'
  | 'postNorm'
  | 'q'
  | 'k'
  | 'v'
  | 'o'
  | 'qBias'
  | 'kBias'
  | 'vBias'
  | 'gate'
  | 'up'
  | 'down';

export interface WeightSpec {
  /** Hugging Face tensor name. */
  name: string;
  role: WeightRole;
  /** Decoder layer, or null for embed, lm_head and the final norm. */
  layer: number | null;
  /** [out][in] for linear layers (HF nn.Linear layout), [n] for norms and biases. */
  shape: number[];
  /** The shape in config terms, for error messages. */
  shapeText: string;
}

export class WeightError extends Error {
  override name = 'WeightError';
}

/** Every tensor a model with this config reads, in load order (embed, layers, norm, head). */
export function expectedWeights(c: ModelConfig): WeightSpec[] {
  const h = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const i = c.intermediateSize;
  const specs: WeightSpec[] = [];
  const add = (name: string, role: WeightRole, layer: number | null, shape: number[], shapeText: string) =>
    specs.push({ name, role, layer, shape, shapeText: `${shapeText} = [${shape.join(', ')}]` });
  add('model.embed_tokens.weight', 'embed', null, [c.vocabSize, h], '[vocab_size, hidden_size]');
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, 'inputNorm', l, [h], '[hidden_size]');
    add(`${p}self_attn.q_proj.weight`, 'q', l, [qDim, h], '[num_attention_heads * head_dim, hidden_size]');
    add(`${p}self_attn.k_proj.weight`, 'k', l, [kvDim, h], '[num_key_value_heads * head_dim, hidden_size]');
    add(`${p}self_attn.v_proj.weight`, 'v', l, [kvDim, h], '[num_key_value_heads * head_dim, hidden_size]');
    if (c.qkvBias) {
      add(`${p}self_attn.q_proj.bias`, 'qBias', l, [qDim], '[num_attention_heads * head_dim]');
      add(`${p}self_attn.k_proj.bias`, 'kBias', l, [kvDim], '[num_key_value_heads * head_dim]');
      add(`${p}self_attn.v_proj.bias`, 'vBias', l, [kvDim], '[num_key_value_heads * head_dim]');
    }
    add(`${p}self_attn.o_proj.weight`, 'o', l, [h, qDim], '[hidden_size, num_attention_heads * head_dim]');
    add(`${p}post_attention_layernorm.weight`, 'postNorm', l, [h], '[hidden_size]');
    add(`${p}mlp.gate_proj.weight`, 'gate', l, [i, h], '[intermediate_size, hidden_size]');
    add(`${p}mlp.up_proj.weight`, 'up', l, [i, h], '[intermediate_size, hidden_size]');
    add(`${p}mlp.down_proj.weight`, 'down', l, [h, i], '[hidden_size, intermediate_size]');
  }
  add('model.norm.weight', 'finalNorm', null, [h], '[hidden_size]');
  if (!c.tieWordEmbeddings) add('lm_head.weight', 'lmHead', null, [c.vocabSize, h], '[vocab_size, hidden_size]');
  return specs;
}

const WEIGHT_DTYPES: readonly SafetensorsDType[] = ['F32', 'F16', 'BF16'];

// Tensors real checkpoints carry that the model does not read: old Llama exports saved
// RoPE's inverse frequencies, and some tied checkpoints store lm_head beside the embedding.
function ignorable(name: string, c: ModelConfig): boolean {
  return /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name) || (c.tieWordEmbeddings && name === 'lm_head.weight');
}

export interface BoundWeight {
  spec: WeightSpec;
  tensor: TensorInfo;
}

/**
 * Pairs every expected weight with its checkpoint tensor, checking dtype and shape, and
 * refusing tensors the config does not account for (they mean the config and the weights
 * disagree, e.g. a bias the config does not enable).
 */
export function bindCheckpoint(c: ModelConfig, ckpt: Checkpoint): BoundWeight[] {
  const specs = expectedWeights(c);
  const wanted = new Set(specs.map((s) => s.name));
  for (const [name, t] of ckpt.tensors) {
    if (!wanted.has(name) && !ignorable(name, c))
      throw new WeightError(`${t.file}: unexpected tensor ${JSON.stringify(name)}: a ${c.architecture} with this config.json has no such weight`);
  }
  return specs.map((spec) => {
    const t = ckpt.tensors.get(spec.name);
    if (!t) throw new WeightError(`${ckpt.dir}: tensor ${JSON.stringify(spec.name)} is missing (expected ${spec.shapeText})`);
    if (!WEIGHT_DTYPES.includes(t.dtype))
      throw new WeightError(`${t.file}: tensor ${JSON.stringify(spec.name)} has dtype ${t.dtype}; weights must be F32, F16 or BF16`);
    if (t.shape.length !== spec.shape.length || t.shape.some((d, k) => d !== spec.shape[k]))
      throw new WeightError(`${t.file}: tensor ${JSON.stringify(spec.name)} has shape [${t.shape.join(', ')}], expected ${spec.shapeText} for this config.json`);
    return { spec, tensor: t };
  });
}

// ---- dummy weights ---------------------------------------------------------------------
//
// Filled natively (ops.fillUniform: element i is a pure function of (seed, i), the same
// bits on every backend), one seed per native tensor. Scales keep activations at unit size
// whatever the shape: linear weights are uniform with standard deviation 1/sqrt(fan_in)
// (each output of a projection of a unit-RMS input then has unit variance; the embedding
// and lm_head use 1/sqrt(hidden_size), so logits are O(1)), norm weights are 1 +- 0.1 and
// biases +- 0.1.
// vLLM's dummy weights are uniform +-1e-3, which makes every logit equal; these give a
// model whose greedy output depends on its input, so tests of generation mean something.

/** Half-width of the uniform distribution of a dummy weight, and its centre. */
export function dummyRange(spec: WeightSpec, c: ModelConfig): { centre: number; half: number } {
  // Uniform on [-a, a] has standard deviation a / sqrt(3).
  const halfWidth = (fanIn: number) => Math.sqrt(3 / fanIn);
  switch (spec.role) {
    case 'inputNorm':
    case 'postNorm':
    case 'finalNorm':
      return { centre: 1, half: 0.1 };
    case 'qBias':
    case 'kBias':
    case 'vBias':
      return { centre: 0, half: 0.1 };
    case 'o':
      return { centre: 0, half: halfWidth(c.numHeads * c.headDim) };
    case 'down':
      return { centre: 0, half: halfWidth(c.intermediateSize) };
    default:
      return { centre: 0, half: halfWidth(c.hiddenSize) };
  }
}
