// The engine's side of the prefix store: which model the store's chunks belong to, opening or
// checking the store against the engine's pools, and the lookup that gives each request its
// stored prefix when it arrives.
//
// A chunk's key and header carry the model's fingerprint, so a chunk from other weights never
// loads. The fingerprint's identity string is EngineOptions.modelId when given (name it with
// the weights' revision), else derived from the model: a SHA-256 over config.json, every
// safetensors header (names, shapes, offsets) and 4 KiB of weight bytes at 8 places in each
// file. Two checkpoints with the same shapes and different weights (fine-tunes) differ in
// those bytes; a dummy model's identity is its config and seed.
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { KVPool } from '../backend.js';
import type { PrefixInfo } from '../contract/request.js';
import type { ModelConfig } from '../model/config.js';
import type { Model } from '../model/model.js';
import { openCheckpoint } from '../model/safetensors.js';
import { fingerprintDigest, type ModelFingerprint } from '../store/keys.js';
import { openPrefixStore, PrefixStore, type PrefixStoreOptions } from '../store/store.js';

/** Store options the engine completes with its model's fingerprint and block size. */
export type EngineStoreOptions = Omit<PrefixStoreOptions, 'fingerprint' | 'blockSize' | 'chunkTokens'> & { chunkTokens?: number };

const SAMPLES = 8;
const SAMPLE_BYTES = 4096;

/** The identity string of a model directory (see the header). */
export async function modelIdOfDir(dir: string): Promise<string> {
  const h = createHash('sha256');
  h.update(await readFile(path.join(dir, 'config.json')));
  const ckpt = await openCheckpoint(dir);
  const buf = Buffer.alloc(SAMPLE_BYTES);
  for (const f of ckpt.files) {
    h.update(path.basename(f.file));
    const fh = await open(f.file, 'r');
    try {
      const size = (await fh.stat()).size;
      // The header, then samples spread over the payload.
      const headerEnd = Math.min(size, f.dataStart);
      for (let at = 0; at < headerEnd; at += SAMPLE_BYTES) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(SAMPLE_BYTES, headerEnd - at), at);
        h.update(buf.subarray(0, bytesRead));
      }
      const span = size - headerEnd;
      for (let i = 0; i < SAMPLES && span > 0; i++) {
        const at = headerEnd + Math.floor((span * i) / SAMPLES);
        const { bytesRead } = await fh.read(buf, 0, Math.min(SAMPLE_BYTES, size - at), at);
        h.update(buf.subarray(0, bytesRead));
      }
    } finally {
      await fh.close();
    }
  }
  const arch = ckpt.files.length > 0 ? path.basename(path.resolve(dir)) : 'model';
  return `${arch.slice(0, 30)}@${h.digest('hex').slice(0, 32)}`;
}

/** The identity string of a dummy model: its config and seed. */
export function modelIdOfDummy(config: ModelConfig, seed: number): string {
  const h = createHash('sha256').update(JSON.stringify({ config, seed })).digest('hex');
  return `dummy-${config.architecture.slice(0, 24)}@${h.slice(0, 32)}`;
}

/** The fingerprint the engine's chunks carry. */
export function engineFingerprint(model: Model, modelId: string): ModelFingerprint {
  const c = model.config;
  return { architecture: modelId, numLayers: c.numLayers, numKvHeads: c.numKvHeads, headDim: c.headDim, dtype: model.dtype };
}

/** Opens the engine's store from options, or checks a store the caller opened against the
 *  engine's model and pools. `owned`: the engine closes it. */
export async function attachStore(store: PrefixStore | EngineStoreOptions, fp: ModelFingerprint, pool: KVPool): Promise<{ store: PrefixStore; owned: boolean }> {
  const blockSize = pool.layout.blockSize;
  if (store instanceof PrefixStore) {
    const spec = store.spec;
    if (spec.blockSize !== blockSize) throw new RangeError(`createEngine: the store's chunks are in blocks of ${spec.blockSize} tokens, the engine's pools use ${blockSize} (blockSize)`);
    if (!Buffer.from(spec.digest).equals(fingerprintDigest(fp))) {
      throw new RangeError(
        `createEngine: the store holds chunks of another model (${describe(spec.fingerprint)}); this engine's model is ${describe(fp)}. ` +
          `Pass store options and let the engine open it, or open the store with fingerprint ${JSON.stringify(fp)}`,
      );
    }
    return { store, owned: false };
  }
  if (typeof store !== 'object' || store === null) throw new TypeError('createEngine: store must be a PrefixStore or store options');
  const opened = await openPrefixStore({ ...store, chunkTokens: store.chunkTokens ?? 256, fingerprint: fp, blockSize });
  return { store: opened, owned: true };
}

function describe(fp: ModelFingerprint): string {
  return `${fp.architecture}, ${fp.numLayers} layers, ${fp.numKvHeads} KV heads x ${fp.headDim}, ${fp.dtype}`;
}

/** The prefix a request arrives with: its chunk keys and how many leading chunks the store
 *  holds. A lookup that fails (Redis gone mid-call) is a miss: the prompt is computed. */
export async function lookupPrefix(store: PrefixStore, tokens: Int32Array, signal?: AbortSignal): Promise<{ prefix: PrefixInfo | undefined; error?: Error }> {
  const keys = store.keys(tokens);
  if (keys.length === 0) return { prefix: undefined };
  try {
    const storedChunks = await store.lookup(keys, { signal });
    return { prefix: { chunkTokens: store.chunkTokens, chunkHashes: keys, storedChunks } };
  } catch (err) {
    if (signal?.aborted) throw err;
    return { prefix: { chunkTokens: store.chunkTokens, chunkHashes: keys, storedChunks: 0 }, error: err as Error };
  }
}
