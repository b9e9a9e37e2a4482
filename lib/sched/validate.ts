// Checks a request at the door. A request that can never run is rejected with a reason that
// names the field and the limit, never admitted to hang.
import { MAX_TIME, type Request } from '../contract/request.js';
import type { SeqId } from '../contract/plan.js';
import type { KVCacheManager } from '../kv/kv-cache-manager.js';
import { show } from '../util/show.js';

const MAX_TOKEN_ID = 2 ** 31 - 1;


/** Null when `req` can be scheduled, else why not. */
export function validateRequest(req: Request, now: number, ctx: { seqs: ReadonlyMap<SeqId, unknown>; kv: KVCacheManager; numLayers: number }): string | null {
  if (typeof req !== 'object' || req === null || Array.isArray(req)) return `request must be an object, got ${show(req)}`;
  if (typeof req.id !== 'string' || req.id.length === 0) return `request.id must be a non-empty string, got ${show(req.id)}`;
  if (ctx.seqs.has(req.id)) return `request.id ${req.id} is already in use`;
  for (const name of ['promptLen', 'maxNewTokens'] as const) {
    const v: unknown = req[name];
    if (!(Number.isSafeInteger(v) && (v as number) >= 1)) return `${name} must be an integer >= 1, got ${show(v)}`;
  }
  const at: unknown = req.arrival;
  if (typeof at !== 'number' || !(at >= 0 && at <= MAX_TIME)) return `arrival must be a time in [0, 1e9] s, got ${show(at)}`;
  if (at > now + 1e-9) return `arrival ${at} is after now ${now}`;
  for (const name of ['ttftSlo', 'tpotSlo'] as const) {
    const v: unknown = req[name];
    if (v !== undefined && !(typeof v === 'number' && v > 0)) return `${name} must be a positive number of seconds (or left out), got ${show(v)}`;
  }
  if (req.promptTokens !== undefined) {
    if (!(req.promptTokens instanceof Int32Array)) return `promptTokens must be an Int32Array of promptLen = ${req.promptLen} token ids, got ${show(req.promptTokens)}`;
    if (req.promptTokens.length !== req.promptLen) return `promptTokens has ${req.promptTokens.length} ids, promptLen is ${req.promptLen}`;
    for (let i = 0; i < req.promptTokens.length; i++) if (req.promptTokens[i] < 0) return `promptTokens[${i}] = ${req.promptTokens[i]} is negative`;
  }
  if (req.stopTokenIds !== undefined) {
    if (!Array.isArray(req.stopTokenIds)) return 'stopTokenIds must be an array of token ids';
    for (const [i, t] of req.stopTokenIds.entries()) if (!(Number.isInteger(t) && t >= 0 && t <= MAX_TOKEN_ID)) return `stopTokenIds[${i}] must be an integer in [0, 2^31), got ${show(t)}`;
  }
  const { kv, numLayers } = ctx;
  const maxTokens = Math.floor((kv.device.numBlocks - kv.stagingReserve - kv.device.watermarkBlocks) / numLayers) * kv.blockSize;
  // A request that cannot hold all its layers on the device would be preempted forever.
  if (req.promptLen + req.maxNewTokens > maxTokens) {
    return `promptLen + maxNewTokens = ${req.promptLen + req.maxNewTokens} exceeds the ${maxTokens} tokens the device pool holds for one sequence`;
  }
  const p = req.prefix;
  if (p !== undefined) {
    if (!p || typeof p !== 'object') return `prefix must be an object, got ${show(p)}`;
    if (!Array.isArray(p.chunkHashes)) return `prefix.chunkHashes must be an array of strings, got ${show(p.chunkHashes)}`;
    const bad = p.chunkHashes.findIndex((h) => typeof h !== 'string');
    if (bad >= 0) return `prefix.chunkHashes[${bad}] must be a string, got ${show(p.chunkHashes[bad])}`;
    if (!Number.isSafeInteger(p.chunkTokens) || p.chunkTokens < 1 || p.chunkTokens % kv.blockSize !== 0) return `prefix.chunkTokens must be a positive multiple of blockSize ${kv.blockSize}, got ${show(p.chunkTokens)}`;
    if (!Number.isSafeInteger(p.storedChunks) || p.storedChunks < 0 || p.storedChunks > p.chunkHashes.length) return `prefix.storedChunks must be an integer in [0, ${p.chunkHashes.length}] (chunkHashes), got ${show(p.storedChunks)}`;
    if (p.storedChunks * p.chunkTokens > req.promptLen) return `prefix.storedChunks * chunkTokens = ${p.storedChunks * p.chunkTokens} exceeds promptLen ${req.promptLen}`;
  }
  return null;
}
