// Workloads: what requests arrive, when, and which prefix chunks they share.
export { requestProblem, MAX_TIME, type Request, type PrefixInfo } from './request.js';
export { mulberry32 } from './rng.js';
export { synthetic, type SyntheticSpec } from './synthetic.js';
export { readAzureTrace, readMooncakeTrace, MOONCAKE_BLOCK_TOKENS, type TraceOptions, type MooncakeOptions } from './traces.js';
export { annotatePrefixHits, ChunkLru } from './prefix.js';
export { chainHashes, chunkHashesFromTokens, DEFAULT_FINGERPRINT } from './hash.js';
