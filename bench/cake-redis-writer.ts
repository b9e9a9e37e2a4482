// The first of two processes in the cake-engine benchmark: computes the stored prompt on an
// engine whose prefix store is only Redis, so its chunks reach Redis for the other process.
// Usage: node --import tsx bench/cake-redis-writer.ts REDIS_URL MODEL_ID
import { createEngine } from '../lib/engine/index.js';
import { BLOCK, BLOCK_BYTES, CHUNK, CONFIG, DEVICE_BLOCKS, HOST_BLOCKS, SEED, benchPrompt } from './cake-model.js';

const [url, modelId] = process.argv.slice(2);
const engine = await createEngine({
  model: { config: CONFIG, dummySeed: SEED },
  backend: 'cpu',
  dtype: 'fp32',
  policy: 'compute-only',
  deviceKvBytes: DEVICE_BLOCKS * BLOCK_BYTES,
  hostKvBytes: HOST_BLOCKS * BLOCK_BYTES,
  maxBatchedTokens: CHUNK,
  blockSize: BLOCK,
  modelId,
  store: { chunkTokens: CHUNK, redis: { url }, log: () => {} },
});
await engine.generate(benchPrompt(), { maxTokens: 1, ignoreEos: true }).result;
// close() waits for the saves in flight.
await engine.close();
