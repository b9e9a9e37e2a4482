// Scheduler factory: the policy combinations the benchmarks and users pick from.
//   baseline      vLLM-like: every layer on the device at admission, FCFS, recompute
//   layerkv       LayerKV: per-layer placement with host offload, SLO-aware admission
//   cake          baseline placement + Cake's compute-or-load for requests with prefix hits
//   layerkv+cake  both (neither paper has it): ordinary prefills use LayerKV, prefix-hit
//                 requests load into device blocks for all layers as in Cake
//   compute-only  baseline placement; prefix hits are recomputed (Cake's compute baseline)
//   load-only     baseline placement; prefix hits are loaded whole (Cake's load baseline)
import { Scheduler, type SchedulerConfig } from './scheduler.js';
import { checkSchedulerOptions } from './options.js';
import { show } from '../util/show.js';

export type PolicyName = 'baseline' | 'layerkv' | 'cake' | 'layerkv+cake' | 'compute-only' | 'load-only';
export const POLICIES: readonly PolicyName[] = ['baseline', 'layerkv', 'cake', 'layerkv+cake', 'compute-only', 'load-only'];

export type CreateSchedulerOptions = { policy: PolicyName } & Omit<SchedulerConfig, 'placement' | 'prefix'>;

const PARTS: Record<PolicyName, Pick<SchedulerConfig, 'placement' | 'prefix'>> = {
  baseline: { placement: 'baseline', prefix: 'none' },
  layerkv: { placement: 'layerkv', prefix: 'none' },
  cake: { placement: 'baseline', prefix: 'cake' },
  'layerkv+cake': { placement: 'layerkv', prefix: 'cake' },
  'compute-only': { placement: 'baseline', prefix: 'compute-only' },
  'load-only': { placement: 'baseline', prefix: 'load-only' },
};

export function createScheduler(opts: CreateSchedulerOptions): Scheduler {
  if (!opts || typeof opts !== 'object') throw new TypeError(`createScheduler: options must be an object, got ${show(opts)}`);
  const { policy, ...cfg } = opts;
  const parts = typeof policy === 'string' && Object.hasOwn(PARTS, policy) ? PARTS[policy] : undefined;
  if (!parts) throw new RangeError(`createScheduler: policy must be one of ${POLICIES.join(', ')}, got ${show(policy)}`);
  checkSchedulerOptions(opts as unknown as Record<string, unknown>);
  try {
    return new Scheduler({ ...cfg, ...parts, name: cfg.name ?? policy });
  } catch (err) {
    // The parts name themselves; the caller called createScheduler.
    if (err instanceof Error) err.message = err.message.replace(/^(Scheduler|LayerKV|KVCacheManager|BlockPool(\([a-z]+\))?): /, 'createScheduler: ');
    throw err;
  }
}

export { Scheduler, type SchedulerConfig } from './scheduler.js';
export type { SchedulerStats } from './core.js';
export type { SeqState, SeqStatus } from './request-state.js';
export { BlockPool } from '../kv/block-pool.js';
export { KVCacheManager } from '../kv/kv-cache-manager.js';
export { interleavedKeep, LayerKvPlacement } from './policy/layerkv.js';
export { BaselinePlacement } from './policy/baseline.js';
export type { PlacementPolicy } from './policy/placement.js';
export { CakeTracker, type PrefixMode } from './cake/tracker.js';
export { cakeOracle } from './cake/oracle.js';
export { planCake } from './cake/planner.js';
