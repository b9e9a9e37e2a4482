// Shared pieces of the prefix store tests: a small model, host pools filled with known
// bytes, and byte-exact comparison of a chunk's blocks against the blocks it came from.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as assert from 'uvu/assert';
import type { Backend, KVPool } from '../../lib/index.js';
import type { ChunkBlocks, ModelFingerprint, PrefixStoreOptions } from '../../lib/store/index.js';
import { Rng } from './rng.js';

export const FP: ModelFingerprint = { architecture: 'kvcake-test-3L', numLayers: 3, numKvHeads: 2, headDim: 64, dtype: 'fp16' };
export const BLOCK_SIZE = 16;
export const CHUNK_TOKENS = 32;
/** numLayers x chunkTokens / blockSize */
export const BLOCKS_PER_CHUNK = FP.numLayers * (CHUNK_TOKENS / BLOCK_SIZE);
export const BLOCK_ELEMS = 2 * FP.numKvHeads * BLOCK_SIZE * FP.headDim;

export function base(extra: Partial<PrefixStoreOptions> = {}): PrefixStoreOptions {
  return { fingerprint: FP, blockSize: BLOCK_SIZE, chunkTokens: CHUNK_TOKENS, log: () => {}, ...extra };
}

export function hostPool(be: Backend, numBlocks: number, fp: ModelFingerprint = FP): KVPool {
  return be.createPool({ tier: 'host', numBlocks, numKvHeads: fp.numKvHeads, headDim: fp.headDim, blockSize: BLOCK_SIZE, dtype: fp.dtype });
}

/** Fills a pool with random 16-bit patterns; returns the image written. */
export async function fill(pool: KVPool, seed: number): Promise<Uint16Array> {
  const rng = new Rng(seed);
  const img = new Uint16Array((pool.bytes / 2) | 0);
  for (let i = 0; i < img.length; i++) img[i] = rng.int(0, 0xffff);
  await pool.write(img);
  return img;
}

/** Distinct random block ids of a pool, as one chunk's block list. */
export function pick(rng: Rng, numBlocks: number, n = BLOCKS_PER_CHUNK): Int32Array {
  return Int32Array.from(rng.shuffle(Array.from({ length: numBlocks }, (_, i) => i)).slice(0, n));
}

export function blocks(pool: KVPool, ids: Int32Array | number[]): ChunkBlocks {
  return { pool, blocks: Int32Array.from(ids) };
}

/** Asserts dst's blocks hold exactly the bytes src's blocks held in `image`. */
export async function assertSameChunk(dst: ChunkBlocks, image: Uint16Array, src: Int32Array, what: string): Promise<void> {
  const got = (await dst.pool.read()) as Uint16Array;
  const elems = dst.pool.blockBytes / 2;
  for (let i = 0; i < src.length; i++) {
    const g = dst.blocks[i] * elems;
    const w = src[i] * elems;
    for (let e = 0; e < elems; e++)
      if (got[g + e] !== image[w + e]) assert.unreachable(`${what}: chunk block ${i} (pool block ${dst.blocks[i]}) element ${e} is ${got[g + e]}, want ${image[w + e]} (from block ${src[i]})`);
  }
}

export function tempDir(tag: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `kvcake-${tag}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Token ids 0.. of n full chunks plus `extra` tokens, offset by `seed` so prompts differ. */
export function prompt(chunks: number, seed = 0, extra = 0): Int32Array {
  return Int32Array.from({ length: chunks * CHUNK_TOKENS + extra }, (_, i) => (i * 31 + seed * 7919) % 32000);
}
