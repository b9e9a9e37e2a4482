// The prefix KV store (Cake's store): chunk keys, the chunk format, the tiers and the store.
export { openPrefixStore, PrefixStore } from './store.js';
export type { PrefixStoreOptions, StoreLogEvent, LoadResult, FailedLoad, SaveResult, TierSave, StoreStats, StoreTierName } from './store.js';
export { chunkKeys, idChainKeys, keyContext, fingerprintDigest, isChunkKey, type ChunkKey, type KeyContext, type ModelFingerprint } from './keys.js';
export { chunkSpec, inspectChunkHeader, faultOf, CHUNK_HEADER_BYTES, CHUNK_FORMAT_VERSION, CHUNK_FAULTS, type ChunkSpec, type ChunkFault, type HeaderInspection } from './format.js';
export { ChunkIo, type ChunkBlocks, type ChunkIoOptions, type IoReport, type ValueReport } from './io.js';
export { BandwidthMeter, type BandwidthMeterOptions } from './bandwidth.js';
export { ByteLru } from './lru.js';
export type { MemoryTierOptions, MemoryTierStats } from './tiers/memory.js';
export type { DiskTierOptions, DiskTierStats } from './tiers/disk.js';
export type { RedisTierOptions, RedisTierStats, RedisCommandClient } from './tiers/redis.js';
