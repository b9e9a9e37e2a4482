// The model side of kvcake: Hugging Face configs, safetensors checkpoints, the tokenizer,
// sampling options, and the loaded model over the native forward runner.
export { parseModelConfig, modelSpec, linearParams, totalParams, ModelConfigError, type ModelConfig, type ModelFamily, type Llama3RopeScaling } from './config.js';
export {
  readSafetensorsHeader,
  parseSafetensors,
  openCheckpoint,
  readTensorChunks,
  SafetensorsError,
  MAX_HEADER_BYTES,
  type SafetensorsHeader,
  type TensorInfo,
  type Checkpoint,
  type SafetensorsDType,
} from './safetensors.js';
export { expectedWeights, bindCheckpoint, WeightError, type WeightSpec, type WeightRole, type BoundWeight } from './weights.js';
export { Tokenizer, DetokenizerStream, TokenizerError, type ChatMessage } from './tokenizer.js';
export { resolveSampling, packSampling, type SamplingOptions, type ResolvedSampling, type SamplingArrays } from './sampling.js';
export { ContiguousKv, type StepItem } from './contiguous-kv.js';
export { Model, loadModel, type ModelSource, type LoadModelOptions, type ModelGenerateOptions, type ModelGenerateResult } from './model.js';
