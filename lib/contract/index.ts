// The contract between the stages: Request -> Scheduler -> StepPlan -> Executor ->
// StepResult -> events. Plain types; this folder imports nothing of kvcake.
export type { Request, PrefixInfo, SamplingParams } from './request.js';
export type { SeqEvent, FinishReason } from './events.js';
export type {
  SeqId,
  TierName,
  Channel,
  ComputeItem,
  StagedLayer,
  BlockMove,
  ChunkBlocks,
  TransferKind,
  Transfer,
  TableUpdate,
  FreedBlocks,
  StepPlan,
  SampledToken,
  TransferDone,
  StepResult,
  Executor,
} from './plan.js';
export { PLACEHOLDER_TOKEN } from './plan.js';
export { MAX_TIME } from './request.js';
export type { Scheduler } from './scheduler.js';
