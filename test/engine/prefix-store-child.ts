// A second process for the prefix-store test: an engine on the same model that computes one
// prompt with a Redis-only store, so its chunks reach Redis; prints the result as JSON.
import { createEngine } from '../../lib/engine/index.js';
import { TINY } from '../util/tiny-model.js';

const [url, promptJson] = process.argv.slice(2);
const CONFIG = { ...TINY[1].config, torch_dtype: 'float32' };
const BLOCK = 2 * 1 * 64 * 16 * 4;
const engine = await createEngine({
  model: { config: CONFIG, dummySeed: 11 },
  backend: 'cpu',
  dtype: 'fp32',
  deviceKvBytes: 300 * BLOCK * 3,
  hostKvBytes: 300 * BLOCK,
  maxBatchedTokens: 64,
  policy: 'cake',
  store: { chunkTokens: 32, redis: { url, timeoutMs: 1000, backoffMs: 100 }, log: () => {} },
});
const r = await engine.generate(JSON.parse(promptJson) as number[], { maxTokens: 6, ignoreEos: true }).result;
// close() waits for the saves in flight.
await engine.close();
console.log(JSON.stringify({ tokenIds: r.tokenIds, cachedTokens: r.stats.cachedTokens }));
