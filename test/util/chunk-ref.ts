// An independent writer of the chunk format, from the layout documented in
// csrc/store/chunk_format.h, with another xxHash implementation (@node-rs/xxhash): the
// native reader must accept what it writes, and the native writer must produce the same
// bytes.
import xxhash from '@node-rs/xxhash';
import type { ChunkSpec } from '../../lib/store/index.js';

const { xxh3 } = xxhash;
const DTYPE = { fp32: 0, fp16: 1, bf16: 2 } as const;

export interface HeaderOverrides {
  magic?: string;
  version?: number;
  headerBytes?: number;
  key?: Buffer;
  fingerprint?: Uint8Array;
  numLayers?: number;
  numKvHeads?: number;
  headDim?: number;
  dtype?: number;
  blockSize?: number;
  blocksPerLayer?: number;
  tokens?: number;
  flags?: number;
  blockBytes?: number;
  payloadBytes?: number;
  architecture?: string;
}

/** Recomputes the header checksum of a 4096-byte header in place. */
export function reseal(header: Buffer): Buffer {
  header.writeBigUInt64LE(xxh3.xxh64(header.subarray(0, 248)), 248);
  return header;
}

export function refHeader(spec: ChunkSpec, key: string, payload: Uint8Array, o: HeaderOverrides = {}): Buffer {
  const h = Buffer.alloc(4096);
  h.write(o.magic ?? 'KVCAKECH', 0, 'latin1');
  h.writeUInt32LE(o.version ?? 1, 8);
  h.writeUInt32LE(o.headerBytes ?? 4096, 12);
  (o.key ?? Buffer.from(key, 'hex')).copy(h, 16);
  Buffer.from(o.fingerprint ?? spec.digest).copy(h, 48);
  const f = spec.fingerprint;
  h.writeUInt32LE(o.numLayers ?? f.numLayers, 80);
  h.writeUInt32LE(o.numKvHeads ?? f.numKvHeads, 84);
  h.writeUInt32LE(o.headDim ?? f.headDim, 88);
  h.writeUInt32LE(o.dtype ?? DTYPE[f.dtype], 92);
  h.writeUInt32LE(o.blockSize ?? spec.blockSize, 96);
  h.writeUInt32LE(o.blocksPerLayer ?? spec.blocksPerLayer, 100);
  h.writeUInt32LE(o.tokens ?? spec.chunkTokens, 104);
  h.writeUInt32LE(o.flags ?? 0, 108);
  h.writeBigUInt64LE(BigInt(o.blockBytes ?? spec.blockBytes), 112);
  h.writeBigUInt64LE(BigInt(o.payloadBytes ?? spec.payloadBytes), 120);
  const sum = xxh3.xxh128(payload);
  h.writeBigUInt64LE(sum & 0xffffffffffffffffn, 128);
  h.writeBigUInt64LE(sum >> 64n, 136);
  h.write(o.architecture ?? f.architecture, 144, 63, 'utf8');
  return reseal(h);
}

/** A whole chunk value: header and payload. */
export function refValue(spec: ChunkSpec, key: string, payload: Uint8Array, o: HeaderOverrides = {}): Buffer {
  return Buffer.concat([refHeader(spec, key, payload, o), payload]);
}

/** The payload of a chunk whose blocks are `ids` of a pool image (layer-major block order). */
export function payloadOf(image: Uint16Array, blockBytes: number, ids: Int32Array): Buffer {
  const src = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  return Buffer.concat(Array.from(ids, (b) => src.subarray(b * blockBytes, (b + 1) * blockBytes)));
}
