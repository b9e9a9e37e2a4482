// "kvcake/sim": the simulator-side public API — hardware and model presets, the cost model,
// workloads, metrics, the schedulers, the virtual-clock executor and the driver.
export * from '../cost/index.js';
export { SimExecutor, type SimExecutorOptions } from './executor.js';
export { simulate, type SimulateOptions, type SimulateResult } from './simulate.js';
export { runSteps, ListArrivals, type Arrivals, type StepLoopOptions, type StepLoopResult } from '../loop/step-loop.js';
export * from '../workload/index.js';
export * from '../metrics/index.js';
export { createScheduler, POLICIES, Scheduler, CakeTracker, type PolicyName, type CreateSchedulerOptions, type SchedulerConfig, type PrefixMode } from '../sched/index.js';
export type * from '../contract/index.js';
export { PLACEHOLDER_TOKEN } from '../contract/index.js';
