// Chunk keys of the prefix store: a chain of SHA-256 digests, one per full chunk,
//
//   key_i = SHA-256("kvcake.chunk.v1" ‖ key_{i-1} ‖ chunk i ‖ model fingerprint ‖ namespace)
//
// so key_i names the whole prefix up to chunk i, for one model and one tenant. Every field
// is length-prefixed (no two inputs encode alike), token ids are little-endian u32, key_{-1}
// is 32 zero bytes. Nothing depends on the process: no random seed, no hash-table salt, no
// host byte order. Two servers, or a server and its restart, agree on every key, which is
// what sharing a store needs. The full 256 bits are kept: a shared store is only as safe as
// its keys are hard to collide (with 64 bits a crafted collision is within reach, and a
// collision hands one tenant's KV to another).
import { hash } from 'node:crypto';
import type { DType } from '../backend/dtype.js';

/** What makes KV values differ between models: a chunk from another model must never load. */
export interface ModelFingerprint {
  /** The model's identity: name and weights revision (anything that changes its KV), e.g. 'meta-llama/Llama-3.1-8B@5206a32'. At most 63 bytes of UTF-8. */
  architecture: string;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  dtype: DType;
}

/** A chunk key: 64 lowercase hex digits (the full SHA-256). */
export type ChunkKey = string;

const CHUNK_DOMAIN = Buffer.from('kvcake.chunk.v1', 'utf8');
const ZERO_KEY = Buffer.alloc(32);
// What a chunk is made of: a run of token ids, or (simulated workloads, traces) an opaque id.
const KIND_TOKENS = 1;
const KIND_ID = 2;

const KEY_RE = /^[0-9a-f]{64}$/;

/** Whether s is a well-formed chunk key. */
export function isChunkKey(s: unknown): s is ChunkKey {
  return typeof s === 'string' && KEY_RE.test(s);
}

/** The 32 bytes of a key; throws naming `what` when it is not a key. */
export function keyBytes(key: ChunkKey, what = 'key'): Buffer {
  if (!isChunkKey(key)) throw new TypeError(`${what} must be a chunk key (64 lowercase hex digits), got ${JSON.stringify(key)}`);
  return Buffer.from(key, 'hex');
}

function positiveInt(v: unknown, name: string, max = 2 ** 31 - 1): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer in [1, ${max}], got ${String(v)}`);
  return v;
}

/** Checks a fingerprint's fields; returns it. */
export function checkFingerprint(fp: ModelFingerprint, where = 'fingerprint'): ModelFingerprint {
  if (typeof fp !== 'object' || fp === null) throw new TypeError(`${where} must be an object { architecture, numLayers, numKvHeads, headDim, dtype }`);
  if (typeof fp.architecture !== 'string' || fp.architecture.length === 0) throw new TypeError(`${where}.architecture must be a non-empty string`);
  const archBytes = Buffer.byteLength(fp.architecture, 'utf8');
  if (archBytes > 63) throw new RangeError(`${where}.architecture is ${archBytes} bytes of UTF-8, the limit is 63`);
  if (fp.architecture.includes('\u0000')) throw new RangeError(`${where}.architecture must not contain NUL characters`);
  positiveInt(fp.numLayers, `${where}.numLayers`, 4096);
  positiveInt(fp.numKvHeads, `${where}.numKvHeads`, 256);
  positiveInt(fp.headDim, `${where}.headDim`, 256);
  if (fp.dtype !== 'fp32' && fp.dtype !== 'fp16' && fp.dtype !== 'bf16') throw new RangeError(`${where}.dtype must be 'fp32', 'fp16' or 'bf16', got ${JSON.stringify(fp.dtype)}`);
  return fp;
}

/**
 * The 32-byte digest a fingerprint enters keys and chunk headers as. A string names a
 * model for workloads that have no shapes (the simulator); it never equals a structured
 * fingerprint's digest.
 */
export function fingerprintDigest(fp: ModelFingerprint | string): Buffer {
  if (typeof fp === 'string') return hash('sha256', `kvcake.fingerprint.name.v1\u0000${fp}`, 'buffer');
  checkFingerprint(fp);
  const canonical = JSON.stringify([fp.architecture, fp.numLayers, fp.numKvHeads, fp.headDim, fp.dtype]);
  return hash('sha256', `kvcake.fingerprint.v1\u0000${canonical}`, 'buffer');
}

/** A key chain's fixed context: the model and the tenant. */
export interface KeyContext {
  /** fingerprintDigest(...) of the model. */
  fingerprint: Uint8Array;
  /** The tenant, or any salt that must keep prefixes apart ('' by default). */
  namespace: string;
}

export function keyContext(fingerprint: ModelFingerprint | string | Uint8Array, namespace = ''): KeyContext {
  if (typeof namespace !== 'string') throw new TypeError(`namespace must be a string, got ${typeof namespace}`);
  let digest: Uint8Array;
  if (fingerprint instanceof Uint8Array) {
    if (fingerprint.length !== 32) throw new RangeError(`a fingerprint digest must be 32 bytes, got ${fingerprint.length}`);
    digest = fingerprint;
  } else {
    digest = fingerprintDigest(fingerprint);
  }
  return { fingerprint: digest, namespace };
}

function link(parent: Uint8Array, kind: number, body: Uint8Array, ctx: KeyContext, ns: Buffer): Buffer {
  const n = CHUNK_DOMAIN.length + 32 + 1 + 4 + body.length + 32 + 4 + ns.length;
  const buf = Buffer.allocUnsafe(n);
  let o = CHUNK_DOMAIN.copy(buf, 0);
  o += Buffer.from(parent.buffer, parent.byteOffset, parent.byteLength).copy(buf, o);
  buf[o++] = kind;
  o = buf.writeUInt32LE(body.length, o);
  o += Buffer.from(body.buffer, body.byteOffset, body.byteLength).copy(buf, o);
  o += Buffer.from(ctx.fingerprint.buffer, ctx.fingerprint.byteOffset, ctx.fingerprint.byteLength).copy(buf, o);
  o = buf.writeUInt32LE(ns.length, o);
  ns.copy(buf, o);
  return hash('sha256', buf, 'buffer');
}

function tokenBytes(tokens: ArrayLike<number>, from: number, count: number, where: string): Uint8Array {
  const out = new Uint8Array(4 * count);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    const t = tokens[from + i];
    if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) throw new RangeError(`${where}: token ${from + i} = ${t} is not a token id (an integer in [0, 2^32))`);
    view.setUint32(4 * i, t, true);
  }
  return out;
}

/**
 * The keys of a prompt's full chunks of `chunkTokens` tokens, front to back (a trailing
 * partial chunk has no key: it is never stored).
 */
export function chunkKeys(tokens: ArrayLike<number>, chunkTokens: number, ctx: KeyContext): ChunkKey[] {
  if (!(Number.isInteger(chunkTokens) && chunkTokens > 0)) throw new RangeError(`chunkKeys: chunkTokens must be an integer > 0, got ${chunkTokens}`);
  if (tokens === null || typeof tokens !== 'object' || typeof tokens.length !== 'number') throw new TypeError('chunkKeys: tokens must be an array of token ids');
  const ns = Buffer.from(ctx.namespace, 'utf8');
  const out: ChunkKey[] = [];
  let parent: Uint8Array = ZERO_KEY;
  const full = Math.floor(tokens.length / chunkTokens);
  for (let i = 0; i < full; i++) {
    const k = link(parent, KIND_TOKENS, tokenBytes(tokens, i * chunkTokens, chunkTokens, 'chunkKeys'), ctx, ns);
    out.push(k.toString('hex'));
    parent = k;
  }
  return out;
}

/** Keys chained over opaque chunk ids (a trace's block ids, a synthetic group's chunk names). */
export function idChainKeys(ids: Iterable<string>, ctx: KeyContext): ChunkKey[] {
  const ns = Buffer.from(ctx.namespace, 'utf8');
  const out: ChunkKey[] = [];
  let parent: Uint8Array = ZERO_KEY;
  for (const id of ids) {
    const k = link(parent, KIND_ID, Buffer.from(String(id), 'utf8'), ctx, ns);
    out.push(k.toString('hex'));
    parent = k;
  }
  return out;
}
