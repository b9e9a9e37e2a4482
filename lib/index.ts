export { Backend, KVPool, Tensor, Work, createBackend, openBackend, cudaInfo, usableBackends, addonPath } from './backend.js';
export type { BackendKind, BackendOptions, PoolOptions, KVLayout, Tier, TensorData, TensorInput, AppendArgs, DecodeArgs, PrefillArgs, WaitList, DType, CudaInfo } from './backend.js';
export { encodeValues, decodeValues, dtypeBytes, fp32ToFp16Bits, fp16BitsToFp32, fp32ToBf16Bits, bf16BitsToFp32 } from './backend/dtype.js';
// Schedulers, block management and the plan contract (the simulator is under "kvcake/sim").
export { createScheduler, POLICIES, SchedulerCore, BlockAllocator, KvCacheManager, BaselineMemory, LayerKvMemory, interleavedKeep } from './sched/index.js';
export type { PolicyName, CreateSchedulerOptions, SchedulerConfig, MemoryPolicy } from './sched/index.js';
export { CakeTracker, type PrefixMode } from './sched/cake.js';
export { cakeOracle } from './sched/oracle.js';
export type { StepPlan, StepResult, Executor, Scheduler, SeqEvent, Transfer, ComputeItem, BlockMove, BlockChange, Channel, SeqId, TierName } from './sched/plan.js';
export type { Request, PrefixInfo } from './workload/request.js';
// The model's native ops and the forward runner (docs/model-native-api.md).
export { ops } from './backend/ops.js';
export type { OpsInfo, CublasInfo, RopeScaling, SamplingParams, SampleResult, GemmArgs, RmsNormArgs, RopeArgs, SiluMulArgs, EmbedArgs, AddArgs, LogitsArgs, SampleArgs, FillUniformArgs, LoadTensorArgs } from './backend/ops.js';
export { ModelRunner, createModelRunner } from './backend/model.js';
export type { RunnerConfig, RunnerWeights, LayerWeights, ForwardStep, ForwardResult, ForwardWork } from './backend/model.js';
