// Checks a request at the door. A request that can never run is rejected with a reason that
// names the field and the limit, never admitted to hang.
import type { Request } from '../contract/request.js';
import type { SeqId } from '../contract/plan.js';
import type { KVCacheManager } from '../kv/kv-cache-manager.js';

const MAX_TOKEN_ID = 2 ** 31 - 1;

function positiveFinite(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

/** Null when `req` can be scheduled, else why not. */
export function validateRequest(req: Request, now: number, ctx: { seqs: ReadonlyMap<SeqId, unknown>; kv: KVCacheManager; numLayers: number; loadsPrefixes: boolean }): string | null {
  if (!req || typeof req !== 'object') return 'request must be an object';
  if (typeof req.id !== 'string' || req.id.length === 0) return `request.id must be a non-empty string, got ${typeof req.id === 'string' ? "''" : typeof req.id}`;
  if (ctx.seqs.has(req.id)) return `request.id ${req.id} is already in use`;
  if (!Number.isInteger(req.promptLen) || req.promptLen < 1) return `promptLen must be an integer >= 1, got ${req.promptLen}`;
  if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) return `maxNewTokens must be an integer >= 1, got ${req.maxNewTokens}`;
  if (!(Number.isFinite(req.arrival) && req.arrival >= 0)) return `arrival must be a finite time >= 0, got ${req.arrival}`;
  if (req.arrival > now + 1e-9) return `arrival ${req.arrival} is after now ${now}`;
  if (req.ttftSlo !== undefined && !positiveFinite(req.ttftSlo)) return `ttftSlo must be a finite number of seconds > 0, got ${req.ttftSlo}`;
  if (req.tpotSlo !== undefined && !positiveFinite(req.tpotSlo)) return `tpotSlo must be a finite number of seconds > 0, got ${req.tpotSlo}`;
  if (req.promptTokens !== undefined) {
    if (!(req.promptTokens instanceof Int32Array)) return 'promptTokens must be an Int32Array';
    if (req.promptTokens.length !== req.promptLen) return `promptTokens has ${req.promptTokens.length} ids, promptLen is ${req.promptLen}`;
    for (let i = 0; i < req.promptTokens.length; i++) if (req.promptTokens[i] < 0) return `promptTokens[${i}] = ${req.promptTokens[i]} is negative`;
  }
  if (req.stopTokenIds !== undefined) {
    if (!Array.isArray(req.stopTokenIds)) return 'stopTokenIds must be an array of token ids';
    for (const [i, t] of req.stopTokenIds.entries()) if (!(Number.isInteger(t) && t >= 0 && t <= MAX_TOKEN_ID)) return `stopTokenIds[${i}] must be an integer in [0, 2^31), got ${t}`;
  }
  const { kv, numLayers } = ctx;
  const maxTokens = Math.floor((kv.device.numBlocks - kv.stagingReserve - kv.device.watermarkBlocks) / numLayers) * kv.blockSize;
  // A request that cannot hold all its layers on the device would be preempted forever.
  if (req.promptLen + req.maxNewTokens > maxTokens) {
    return `promptLen + maxNewTokens = ${req.promptLen + req.maxNewTokens} exceeds the ${maxTokens} tokens the device pool holds for one sequence`;
  }
  const p = req.prefix;
  if (p !== undefined) {
    if (!p || typeof p !== 'object') return 'prefix must be an object';
    if (!Array.isArray(p.chunkHashes)) return 'prefix.chunkHashes must be an array of chunk keys';
    if (!Number.isInteger(p.chunkTokens) || p.chunkTokens < 1 || p.chunkTokens % kv.blockSize !== 0) return `prefix.chunkTokens must be a positive multiple of blockSize ${kv.blockSize}, got ${p.chunkTokens}`;
    if (!Number.isInteger(p.storedChunks) || p.storedChunks < 0 || p.storedChunks > p.chunkHashes.length) return `prefix.storedChunks must be in [0, ${p.chunkHashes.length}] (chunkHashes), got ${p.storedChunks}`;
    if (p.storedChunks * p.chunkTokens > req.promptLen) return `prefix.storedChunks * chunkTokens = ${p.storedChunks * p.chunkTokens} exceeds promptLen ${req.promptLen}`;
    for (let i = 0; i < p.storedChunks; i++) if (typeof p.chunkHashes[i] !== 'string') return `prefix.chunkHashes[${i}] must be a string`;
    const landing = numLayers * (p.chunkTokens / kv.blockSize);
    if (ctx.loadsPrefixes && p.storedChunks > 0 && landing > kv.host.numBlocks) {
      return `a stored chunk lands in ${landing} host blocks (layers x chunkTokens / blockSize) before it is copied to the device; the host pool has ${kv.host.numBlocks}`;
    }
  }
  return null;
}
