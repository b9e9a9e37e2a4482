export { Backend, KVPool, Tensor, Work, createBackend, openBackend, cudaInfo, usableBackends, addonPath } from './backend.js';
export type { BackendKind, BackendOptions, PoolOptions, KVLayout, Tier, TensorData, TensorInput, AppendArgs, DecodeArgs, PrefillArgs, WaitList, DType, CudaInfo, CpuIsa, BackendInfo } from './backend.js';
export { encodeValues, decodeValues, dtypeBytes, fp32ToFp16Bits, fp16BitsToFp32, fp32ToBf16Bits, bf16BitsToFp32 } from './backend/dtype.js';
// Schedulers, block management and the plan contract (the simulator is under "kvcake/sim").
export { createScheduler, POLICIES, SchedulerCore, BlockAllocator, KvCacheManager, BaselineMemory, LayerKvMemory, interleavedKeep } from './sched/index.js';
export type { PolicyName, CreateSchedulerOptions, SchedulerConfig, MemoryPolicy } from './sched/index.js';
export { CakeTracker, type PrefixMode } from './sched/cake.js';
export { cakeOracle } from './sched/oracle.js';
export type { StepPlan, StepResult, Executor, Scheduler, SeqEvent, Transfer, ComputeItem, BlockMove, BlockChange, Channel, SeqId, TierName } from './sched/plan.js';
export type { Request, PrefixInfo } from './workload/request.js';
