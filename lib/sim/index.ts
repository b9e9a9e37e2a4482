// "kvcake/sim": the simulator-side public API — hardware and model presets, the cost model,
// workloads, metrics, the schedulers, the virtual-clock executor and the driver.
export type { ModelSpec, GpuSpec } from './specs.js';
export { kvBytesPerToken, kvBytesPerTokenLayer } from './specs.js';
export { CostModel, type CostOptions, type CostItem } from './cost.js';
export { GPUS, MODELS, deployment } from './presets.js';
export { SimExecutor, type SimExecutorOptions } from './executor.js';
export { simulate, type SimulateOptions, type SimulateResult } from './simulate.js';
export * from '../workload/index.js';
export * from '../metrics/index.js';
export { createScheduler, POLICIES, SchedulerCore, type PolicyName, type CreateSchedulerOptions, type SchedulerConfig } from '../sched/index.js';
export { CakeTracker, type PrefixMode } from '../sched/cake.js';
export type { StepPlan, StepResult, Executor, Scheduler, SeqEvent, Transfer, ComputeItem } from '../sched/plan.js';
