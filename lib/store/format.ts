// The chunk format as the TypeScript side sees it: which chunks a store holds (its spec),
// their sizes, and a header inspector. The format itself is defined and checked natively
// (csrc/store/chunk_format.h has the byte layout), because loads verify it on the I/O
// threads before any byte may be used.
import { dtypeBytes, type DType } from '../backend/dtype.js';
import { native, type NativeChunkSpec, type NativeHeaderInspection } from '../native.js';
import { checkFingerprint, fingerprintDigest, keyBytes, type ChunkKey, type ModelFingerprint } from './keys.js';

/** Bytes before the payload in every chunk value (page-aligned payload in a file). */
export const CHUNK_HEADER_BYTES = 4096;
/** The chunk format version this build writes and reads. */
export const CHUNK_FORMAT_VERSION = 1;

/** Why a stored chunk was refused, or a transfer failed. */
export type ChunkFault =
  | 'missing'
  | 'truncated'
  | 'size'
  | 'magic'
  | 'version'
  | 'header-checksum'
  | 'dtype'
  | 'layout'
  | 'fingerprint'
  | 'key'
  | 'payload-checksum'
  | 'io';

export const CHUNK_FAULTS: readonly ChunkFault[] = [
  'missing',
  'truncated',
  'size',
  'magic',
  'version',
  'header-checksum',
  'dtype',
  'layout',
  'fingerprint',
  'key',
  'payload-checksum',
  'io',
];

/** Everything every chunk of one store is: the model, the block layout and the chunk size. */
export interface ChunkSpec {
  readonly fingerprint: ModelFingerprint;
  /** fingerprintDigest(fingerprint). */
  readonly digest: Uint8Array;
  readonly blockSize: number;
  /** Tokens per chunk, a multiple of blockSize. */
  readonly chunkTokens: number;
  /** chunkTokens / blockSize: layer-blocks per layer per chunk. */
  readonly blocksPerLayer: number;
  /** numLayers * blocksPerLayer: the length of a chunk's block list. */
  readonly blocksPerChunk: number;
  /** Bytes of one layer-block, [2][numKvHeads][blockSize][headDim] elements. */
  readonly blockBytes: number;
  readonly payloadBytes: number;
  /** Header + payload: the size of a chunk file or value. */
  readonly valueBytes: number;
  /** @internal */
  readonly native: NativeChunkSpec;
}

export function chunkSpec(fingerprint: ModelFingerprint, blockSize: number, chunkTokens: number): ChunkSpec {
  checkFingerprint(fingerprint);
  if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > 256) throw new RangeError(`blockSize must be an integer in [1, 256], got ${blockSize}`);
  if (!Number.isInteger(chunkTokens) || chunkTokens < blockSize || chunkTokens % blockSize !== 0)
    throw new RangeError(`chunkTokens must be a positive multiple of blockSize ${blockSize}, got ${chunkTokens}`);
  const blocksPerLayer = chunkTokens / blockSize;
  const blockBytes = 2 * fingerprint.numKvHeads * blockSize * fingerprint.headDim * dtypeBytes(fingerprint.dtype);
  const payloadBytes = fingerprint.numLayers * blocksPerLayer * blockBytes;
  const digest = fingerprintDigest(fingerprint);
  return {
    fingerprint: { ...fingerprint },
    digest,
    blockSize,
    chunkTokens,
    blocksPerLayer,
    blocksPerChunk: fingerprint.numLayers * blocksPerLayer,
    blockBytes,
    payloadBytes,
    valueBytes: CHUNK_HEADER_BYTES + payloadBytes,
    native: {
      fingerprint: digest,
      architecture: fingerprint.architecture,
      numLayers: fingerprint.numLayers,
      numKvHeads: fingerprint.numKvHeads,
      headDim: fingerprint.headDim,
      blockSize,
      blocksPerLayer,
      dtype: fingerprint.dtype as DType,
    },
  };
}

/** A parsed header and whether it passed (structure only, or every load check with a spec and key). */
export interface HeaderInspection {
  ok: boolean;
  fault: ChunkFault | 'ok';
  message: string;
  header?: NonNullable<NativeHeaderInspection['header']>;
}

/**
 * Checks the header at the start of `bytes` (at most its first 4096 bytes are read; the
 * payload checksum is not). With spec and key: every check a load makes on a header.
 */
export function inspectChunkHeader(bytes: Uint8Array, spec?: ChunkSpec, key?: ChunkKey): HeaderInspection {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('inspectChunkHeader: bytes must be a Uint8Array (Buffer)');
  const r = spec ? native().inspectChunkHeader(bytes, spec.native, keyBytes(key as ChunkKey)) : native().inspectChunkHeader(bytes);
  return r as HeaderInspection;
}

const FAULT_RE = /^\w+ [0-9a-f]{12}: ([a-z-]+): /;

/** The fault code of a native store op's error message ('io' when it carries none). */
export function faultOf(err: unknown): ChunkFault {
  const m = FAULT_RE.exec(err instanceof Error ? err.message : String(err));
  const code = m?.[1] as ChunkFault | undefined;
  return code && CHUNK_FAULTS.includes(code) ? code : 'io';
}
