// Checks of createScheduler's options whose bad values the scheduler would otherwise use
// silently or fail on deep inside a step (the cost model's shape is checkCostModel's).
import { show } from '../util/show.js';

const COUNTS = ['blockSize', 'deviceBlocks', 'hostBlocks', 'maxBatchedTokens', 'maxRunning', 'minPrefillChunk', 'maxLoadsInFlight', 'minDeviceLayers', 'stagingSets', 'fixedSplit', 'maxSavesInFlight'] as const;

/** Throws a TypeError or RangeError naming the option. */
export function checkSchedulerOptions(opts: Record<string, unknown>): void {
  for (const f of [...COUNTS, 'watermark', 'stagingReserve', 'hostMemBytes'] as const) {
    const v = opts[f];
    if (v !== undefined && typeof v !== 'number') throw new TypeError(`createScheduler: ${f} must be a number, got ${show(v)}`);
  }
  // Counts past 2^31 lose integer precision in the scheduler's arithmetic; no deployment
  // needs them.
  for (const f of COUNTS) {
    const v = opts[f];
    if (typeof v === 'number' && v > 2 ** 31 - 1) throw new RangeError(`createScheduler: ${f} = ${v} exceeds ${2 ** 31 - 1}`);
  }
  const hm = opts.hostMemBytes;
  if (hm !== undefined && !(typeof hm === 'number' && Number.isFinite(hm) && hm >= 0)) throw new RangeError(`createScheduler: hostMemBytes must be a finite number >= 0, got ${show(hm)}`);
  const sb = opts.storageBandwidth;
  if (sb !== undefined && typeof sb !== 'function' && !(typeof sb === 'number' && Number.isFinite(sb) && sb >= 1)) {
    throw new RangeError(`createScheduler: storageBandwidth must be a finite number of bytes/s >= 1 or a function returning one, got ${show(sb)}`);
  }
  for (const f of ['sloAware', 'check', 'recordTables', 'savePrefixes'] as const) {
    const v = opts[f];
    if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`createScheduler: ${f} must be true or false, got ${show(v)}`);
  }
  if (opts.name !== undefined && typeof opts.name !== 'string') throw new TypeError(`createScheduler: name must be a string, got ${show(opts.name)}`);
}
