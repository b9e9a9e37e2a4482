// Scheduler factory: names the policy combinations the benchmarks and users pick from.
//   baseline      vLLM-like: all layers on the device at admission, FCFS, recompute
//   layerkv       LayerKV: per-layer placement with host offload, SLO-aware admission
//   cake          baseline memory + Cake's compute-or-load for requests with prefix hits
//   layerkv+cake  both (neither paper has it): ordinary prefills use LayerKV, prefix-hit
//                 requests load into device blocks for all layers as in Cake
//   compute-only  baseline memory; prefix hits are recomputed (Cake's compute baseline)
//   load-only     baseline memory; prefix hits are loaded whole (Cake's load baseline)
import { SchedulerCore, type SchedulerConfig } from './scheduler.js';
import { checkSchedulerOptions } from './options.js';
import { show } from '../util/show.js';

export type PolicyName = 'baseline' | 'layerkv' | 'cake' | 'layerkv+cake' | 'compute-only' | 'load-only';
export const POLICIES: readonly PolicyName[] = ['baseline', 'layerkv', 'cake', 'layerkv+cake', 'compute-only', 'load-only'];

export type CreateSchedulerOptions = { policy: PolicyName } & Omit<SchedulerConfig, 'memory' | 'prefixMode'>;

export function createScheduler(opts: CreateSchedulerOptions): SchedulerCore {
  if (!opts || typeof opts !== 'object') throw new TypeError('createScheduler: options object required');
  checkSchedulerOptions(opts as unknown as Record<string, unknown>);
  const { policy, ...cfg } = opts;
  switch (policy) {
    case 'baseline':
      return new SchedulerCore({ ...cfg, memory: 'baseline', prefixMode: 'none', name: cfg.name ?? policy });
    case 'layerkv':
      return new SchedulerCore({ ...cfg, memory: 'layerkv', prefixMode: 'none', name: cfg.name ?? policy });
    case 'cake':
      return new SchedulerCore({ ...cfg, memory: 'baseline', prefixMode: 'cake', name: cfg.name ?? policy });
    case 'layerkv+cake':
      return new SchedulerCore({ ...cfg, memory: 'layerkv', prefixMode: 'cake', name: cfg.name ?? policy });
    case 'compute-only':
    case 'load-only':
      return new SchedulerCore({ ...cfg, memory: 'baseline', prefixMode: policy, name: cfg.name ?? policy });
    default:
      throw new RangeError(`createScheduler: policy must be one of ${POLICIES.join(', ')}, got ${show(policy)}`);
  }
}

export { SchedulerCore, type SchedulerConfig } from './scheduler.js';
export { BlockAllocator } from '../kv/allocator.js';
export { KvCacheManager } from '../kv/block-table.js';
export { BaselineMemory, LayerKvMemory, interleavedKeep, type MemoryPolicy } from './memory.js';
export type * from './plan.js';
