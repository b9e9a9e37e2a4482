// Checks of createScheduler's options that the scheduler core takes on trust: the cost
// model's shape (a wrong object would fail deep inside a step) and the options whose bad
// values would be used silently.
import { show } from '../util/show.js';

const COST_METHODS = ['stepTime', 'prefillChunkTime', 'transferTime', 'kvBytes'] as const;
const GPU_FIELDS = ['memBytes', 'd2hBandwidth', 'h2dBandwidth', 'transferLatency'] as const;

/** Throws a TypeError or RangeError naming the option, for options createScheduler would misuse. */
export function checkSchedulerOptions(opts: Record<string, unknown>): void {
  const cost = opts.cost as Record<string, unknown> | null | undefined;
  const hint = "(deployment(model, gpu).cost, or new CostModel(model, gpu))";
  if (typeof cost !== 'object' || cost === null) throw new TypeError(`createScheduler: cost must be a cost model ${hint}, got ${show(cost)}`);
  for (const m of COST_METHODS)
    if (typeof cost[m] !== 'function') throw new TypeError(`createScheduler: cost.${m} must be a function ${hint}, got ${show(cost[m])}`);
  const model = cost.model as Record<string, unknown> | null | undefined;
  if (typeof model !== 'object' || model === null) throw new TypeError(`createScheduler: cost.model must be a model spec ${hint}, got ${show(model)}`);
  const L = model.numLayers;
  if (!Number.isSafeInteger(L) || (L as number) < 1) throw new RangeError(`createScheduler: cost.model.numLayers must be an integer >= 1, got ${show(L)}`);
  const gpu = cost.gpu as Record<string, unknown> | null | undefined;
  if (typeof gpu !== 'object' || gpu === null) throw new TypeError(`createScheduler: cost.gpu must be a GPU spec ${hint}, got ${show(gpu)}`);
  // Rates of at least 1 byte/s: below that a transfer time overflows to Infinity.
  for (const f of GPU_FIELDS) {
    const v = gpu[f];
    const min = f === 'transferLatency' ? 0 : 1;
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= min)) throw new RangeError(`createScheduler: cost.gpu.${f} must be a finite number >= ${min}, got ${show(v)}`);
  }
  // The core range-checks these; a non-number would reach its messages as is.
  for (const f of ['blockSize', 'deviceBlocks', 'hostBlocks', 'maxBatchedTokens', 'maxRunning', 'watermark', 'minPrefillChunk', 'maxLoadsInFlight'] as const) {
    const v = opts[f];
    if (v !== undefined && typeof v !== 'number') throw new TypeError(`createScheduler: ${f} must be a number, got ${show(v)}`);
    // Counts past 2^31 lose integer precision in the core's arithmetic (2^53 + 2 tokens of
    // budget became a fractional remainder); no deployment needs them.
    if (f !== 'watermark' && typeof v === 'number' && v > 2 ** 31 - 1) throw new RangeError(`createScheduler: ${f} = ${v} exceeds ${2 ** 31 - 1}`);
  }
  const m = opts.minDeviceLayers;
  if (m !== undefined && !(Number.isSafeInteger(m) && (m as number) >= 0 && (m as number) <= (L as number)))
    throw new RangeError(`createScheduler: minDeviceLayers must be an integer in [0, ${L}] (the model's layers), got ${show(m)}`);
  for (const f of ['hostMemBytes', 'storageBandwidth'] as const) {
    const v = opts[f];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 1))
      throw new RangeError(`createScheduler: ${f} must be a finite number >= 1, got ${show(v)}`);
  }
  for (const f of ['sloAware', 'check', 'recordBlockChanges'] as const) {
    const v = opts[f];
    if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`createScheduler: ${f} must be true or false, got ${show(v)}`);
  }
  if (opts.name !== undefined && typeof opts.name !== 'string') throw new TypeError(`createScheduler: name must be a string, got ${show(opts.name)}`);
}
