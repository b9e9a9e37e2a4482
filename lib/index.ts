export { Backend, KVPool, Tensor, Work, createBackend, openBackend, cudaInfo, usableBackends, addonPath } from './backend.js';
export type { BackendKind, BackendOptions, PoolOptions, KVLayout, Tier, TensorData, TensorInput, AppendArgs, DecodeArgs, PrefillArgs, WaitList, DType, CudaInfo, CpuIsa, BackendInfo } from './backend.js';
export { encodeValues, decodeValues, dtypeBytes, fp32ToFp16Bits, fp16BitsToFp32, fp32ToBf16Bits, bf16BitsToFp32 } from './backend/dtype.js';
// Schedulers, block management and the plan contract (the simulator is under "kvcake/sim").
export {
  createScheduler,
  POLICIES,
  Scheduler,
  BlockPool,
  KVCacheManager,
  LayerKvPlacement,
  BaselinePlacement,
  interleavedKeep,
  CakeTracker,
  cakeOracle,
  planCake,
} from './sched/index.js';
export type { PolicyName, CreateSchedulerOptions, SchedulerConfig, SchedulerStats, PlacementPolicy, PrefixMode, SeqState, SeqStatus } from './sched/index.js';
export type * from './contract/index.js';
export { PLACEHOLDER_TOKEN } from './contract/index.js';
export { runSteps, ListArrivals, type Arrivals, type StepLoopOptions, type StepLoopResult } from './loop/step-loop.js';
export type { CostModel, CostItem, ChannelSpec } from './cost/index.js';
// The model's native ops and the forward runner (docs/model-native-api.md).
export { ops } from './backend/ops.js';
export type { OpsInfo, CublasInfo, RopeScaling, SamplingParams as SampleBatchParams, SampleResult, GemmArgs, RmsNormArgs, RopeArgs, SiluMulArgs, EmbedArgs, AddArgs, LogitsArgs, SampleArgs, FillUniformArgs, LoadTensorArgs } from './backend/ops.js';
export { ModelRunner, createModelRunner } from './backend/model.js';
export type { RunnerConfig, RunnerWeights, LayerWeights, ForwardStep, ForwardResult, ForwardWork } from './backend/model.js';
// Models: config.json, safetensors, tokenizer, loadModel (lib/model).
export * from './model/index.js';
// The engine: continuous batching over real KV pools, with token streams (lib/engine).
export { createEngine, EngineExecutor, engineCost, calibrateEngineCost, fitEngineSteps, EngineBusyError, EngineClosedError, engineFingerprint, modelIdOfDir, modelIdOfDummy } from './engine/index.js';
export type { Engine, EngineOptions, EngineModel, GenerateOptions, Generation, GenerationResult, GenerationStats, TokenChunk, FinishReason as GenerationFinishReason, EngineStats, TierUsage, StepReport, SeqInfo, SeqTraffic, Calibration, CalibrateOptions, EngineCostOptions, EngineStoreOptions } from './engine/index.js';
export { LinearCost, RooflineCost, type LinearCoefficients } from './cost/index.js';
// The prefix KV store: memory, local disk and Redis tiers behind one interface.
export * from './store/index.js';
