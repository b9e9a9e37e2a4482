// Readers for the public traces in ../shared/traces (read from a path, never copied):
//  - Azure LLM inference 2023 (CSV: TIMESTAMP, ContextTokens, GeneratedTokens)
//  - Mooncake conversation (JSONL: timestamp ms, input_length, output_length, hash_ids of
//    512-token blocks, where a shared id means a shared prefix)
// Arrivals come out in seconds relative to the first request, times timeScale (0.5 replays
// the trace twice as fast). Errors name the file and line.
import { readFileSync } from 'node:fs';
import type { Request } from '../contract/request.js';
import { chainHashes, DEFAULT_FINGERPRINT } from './hash.js';

export interface TraceOptions {
  /** Read at most this many requests (from the front). */
  limit?: number;
  /** Multiplies arrival times: < 1 compresses the trace (higher rate). Default 1. */
  timeScale?: number;
  ttftSlo?: number;
  tpotSlo?: number;
}

export interface MooncakeOptions extends TraceOptions {
  /** Prefix-store chunk size; a multiple of the trace's 512-token blocks. Default 512. */
  chunkTokens?: number;
  /** Model fingerprint chained into chunk hashes. */
  fingerprint?: string;
}

/** Tokens per hash_id block in the Mooncake trace. */
export const MOONCAKE_BLOCK_TOKENS = 512;

function readLines(fn: string, path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${fn}: trace file not found: ${path}` : `${fn}: cannot read ${path}: ${(e as Error).message}`);
  }
  return text.split('\n');
}

function checkOptions(fn: string, o: TraceOptions): { limit: number; timeScale: number } {
  const limit = o.limit ?? Infinity;
  if (!(limit === Infinity || (Number.isInteger(limit) && limit >= 0))) throw new Error(`${fn}: limit must be an integer >= 0, got ${o.limit}`);
  const timeScale = o.timeScale ?? 1;
  if (!(Number.isFinite(timeScale) && timeScale > 0)) throw new Error(`${fn}: timeScale must be > 0, got ${o.timeScale}`);
  for (const k of ['ttftSlo', 'tpotSlo'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new Error(`${fn}: ${k} must be > 0, got ${v}`);
  }
  return { limit, timeScale };
}

function positiveInt(s: string): number {
  // Number('') is 0 and Number(' 7') is 7: both rejected by the caller through this check.
  const v = Number(s);
  return s.length > 0 && Number.isInteger(v) && v >= 1 && s.trim() === s ? v : NaN;
}

/** "YYYY-MM-DD HH:MM:SS[.fraction]" (UTC) to seconds since the epoch; NaN if malformed.
 *  Parsed by hand: Date.parse is slow and its handling of 7 fraction digits varies. */
function parseTimestamp(s: string): number {
  if (s.length < 19 || s[4] !== '-' || s[7] !== '-' || (s[10] !== ' ' && s[10] !== 'T') || s[13] !== ':' || s[16] !== ':') return NaN;
  const y = Number(s.slice(0, 4));
  const mo = Number(s.slice(5, 7));
  const d = Number(s.slice(8, 10));
  const h = Number(s.slice(11, 13));
  const mi = Number(s.slice(14, 16));
  const sec = Number(s.slice(17));
  if (![y, mo, d, h, mi].every(Number.isInteger) || !(sec >= 0 && sec < 61) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59) return NaN;
  return Date.UTC(y, mo - 1, d, h, mi) / 1000 + sec;
}

function withSlos(req: Request, o: TraceOptions): Request {
  if (o.ttftSlo !== undefined) req.ttftSlo = o.ttftSlo;
  if (o.tpotSlo !== undefined) req.tpotSlo = o.tpotSlo;
  return req;
}

/** Sorts by arrival (stable) and rebases to the first arrival. */
function rebase(reqs: Request[], times: number[], timeScale: number): Request[] {
  let first = Infinity;
  for (const t of times) if (t < first) first = t;
  let sorted = true;
  for (let i = 0; i < reqs.length; i++) {
    reqs[i].arrival = (times[i] - first) * timeScale;
    if (i > 0 && reqs[i].arrival < reqs[i - 1].arrival) sorted = false;
  }
  return sorted ? reqs : reqs.map((r, i) => [r, i] as const).sort((a, b) => a[0].arrival - b[0].arrival || a[1] - b[1]).map(([r]) => r);
}

export function readAzureTrace(path: string, opts: TraceOptions = {}): Request[] {
  const fn = 'readAzureTrace';
  const { limit, timeScale } = checkOptions(fn, opts);
  const lines = readLines(fn, path);
  const header = lines[0]?.replace(/^\uFEFF/, '').replace(/\r$/, '').split(',').map((s) => s.trim());
  const col = (name: string) => header?.indexOf(name) ?? -1;
  const [ti, ci, gi] = [col('TIMESTAMP'), col('ContextTokens'), col('GeneratedTokens')];
  if (ti < 0 || ci < 0 || gi < 0) {
    throw new Error(`${fn}: ${path}:1: header must name TIMESTAMP, ContextTokens, GeneratedTokens, got ${JSON.stringify(lines[0] ?? '')}`);
  }
  const width = header!.length;
  const reqs: Request[] = [];
  const times: number[] = [];
  for (let ln = 1; ln < lines.length && reqs.length < limit; ln++) {
    let line = lines[ln];
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.length === 0) continue;
    const f = line.split(',');
    if (f.length !== width) throw new Error(`${fn}: ${path}:${ln + 1}: expected ${width} fields, got ${f.length}: ${JSON.stringify(line)}`);
    const t = parseTimestamp(f[ti]);
    const promptLen = positiveInt(f[ci]);
    const maxNewTokens = positiveInt(f[gi]);
    if (Number.isNaN(t)) throw new Error(`${fn}: ${path}:${ln + 1}: bad TIMESTAMP ${JSON.stringify(f[ti])}`);
    if (Number.isNaN(promptLen)) throw new Error(`${fn}: ${path}:${ln + 1}: ContextTokens must be an integer >= 1, got ${JSON.stringify(f[ci])}`);
    if (Number.isNaN(maxNewTokens)) throw new Error(`${fn}: ${path}:${ln + 1}: GeneratedTokens must be an integer >= 1, got ${JSON.stringify(f[gi])}`);
    reqs.push(withSlos({ id: `azure-${reqs.length}`, arrival: 0, promptLen, maxNewTokens }, opts));
    times.push(t);
  }
  return rebase(reqs, times, timeScale);
}

export function readMooncakeTrace(path: string, opts: MooncakeOptions = {}): Request[] {
  const fn = 'readMooncakeTrace';
  const { limit, timeScale } = checkOptions(fn, opts);
  const chunkTokens = opts.chunkTokens ?? MOONCAKE_BLOCK_TOKENS;
  if (!(Number.isInteger(chunkTokens) && chunkTokens > 0 && chunkTokens % MOONCAKE_BLOCK_TOKENS === 0)) {
    throw new Error(`${fn}: chunkTokens must be a positive multiple of ${MOONCAKE_BLOCK_TOKENS} (the trace's block size), got ${opts.chunkTokens}`);
  }
  const blocksPerChunk = chunkTokens / MOONCAKE_BLOCK_TOKENS;
  const fingerprint = opts.fingerprint ?? DEFAULT_FINGERPRINT;
  const lines = readLines(fn, path);
  const reqs: Request[] = [];
  const times: number[] = [];
  for (let ln = 0; ln < lines.length && reqs.length < limit; ln++) {
    const line = lines[ln].trim();
    if (line.length === 0) continue;
    const where = `${fn}: ${path}:${ln + 1}`;
    let rec: { timestamp?: unknown; input_length?: unknown; output_length?: unknown; hash_ids?: unknown };
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not valid JSON: ${(e as Error).message}`);
    }
    if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) throw new Error(`${where}: expected a JSON object`);
    const { timestamp, input_length: inLen, output_length: outLen, hash_ids: ids } = rec;
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp)) throw new Error(`${where}: timestamp must be a number (ms), got ${JSON.stringify(timestamp)}`);
    if (!(typeof inLen === 'number' && Number.isInteger(inLen) && inLen >= 1)) throw new Error(`${where}: input_length must be an integer >= 1, got ${JSON.stringify(inLen)}`);
    if (!(typeof outLen === 'number' && Number.isInteger(outLen) && outLen >= 1)) throw new Error(`${where}: output_length must be an integer >= 1, got ${JSON.stringify(outLen)}`);
    if (!Array.isArray(ids)) throw new Error(`${where}: hash_ids must be an array, got ${JSON.stringify(ids)}`);
    const full = Math.floor(inLen / chunkTokens);
    if (ids.length < full * blocksPerChunk) {
      throw new Error(`${where}: hash_ids has ${ids.length} blocks, fewer than the ${full * blocksPerChunk} full blocks of input_length ${inLen}`);
    }
    // A chunk's identity is its blocks' ids; chaining then makes it name the whole prefix.
    const chunkIds: string[] = new Array(full);
    for (let c = 0; c < full; c++) {
      chunkIds[c] = blocksPerChunk === 1 ? String(ids[c]) : ids.slice(c * blocksPerChunk, (c + 1) * blocksPerChunk).join(',');
    }
    const req: Request = {
      id: `mooncake-${reqs.length}`,
      arrival: 0,
      promptLen: inLen,
      maxNewTokens: outLen,
      prefix: { chunkTokens, chunkHashes: chainHashes(chunkIds, fingerprint), storedChunks: 0 },
    };
    reqs.push(withSlos(req, opts));
    times.push(timestamp / 1000);
  }
  return rebase(reqs, times, timeScale);
}
