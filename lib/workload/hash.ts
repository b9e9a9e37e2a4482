// Chained chunk hashes of workloads: the prefix store's own keys (lib/store/keys.ts), so a
// simulated workload and the engine name the same prefix alike. key_i names chunk i and
// every chunk before it, for one model; two prompts share key_i exactly when they share
// chunks 0..i. Full SHA-256, 64 hex digits.
import { chunkKeys, idChainKeys, keyContext } from '../store/keys.js';

/** Fingerprint the synthetic and trace workloads use when no model is named. */
export const DEFAULT_FINGERPRINT = 'kvcake-sim';

/** Chains chunk identities (strings: a trace's block id, a synthetic group's chunk name). */
export function chainHashes(identities: Iterable<string>, fingerprint: string = DEFAULT_FINGERPRINT): string[] {
  return idChainKeys(identities, keyContext(fingerprint));
}

/** Chained hashes of a prompt's token ids, one per full chunk of `chunkTokens` tokens. */
export function chunkHashesFromTokens(tokens: Int32Array, chunkTokens: number, fingerprint: string = DEFAULT_FINGERPRINT): string[] {
  if (!(Number.isInteger(chunkTokens) && chunkTokens > 0)) {
    throw new Error(`chunkHashesFromTokens: chunkTokens must be an integer > 0, got ${chunkTokens}`);
  }
  return chunkKeys(tokens, chunkTokens, keyContext(fingerprint));
}
