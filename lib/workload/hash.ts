// Chained chunk hashes for the prefix store: key_i = H(key_{i-1} || chunk i || model
// fingerprint), so a chunk's key names its whole prefix and two prompts share key_i exactly
// when they share chunks 0..i. H is SHA-256 truncated to 64 bits (16 hex digits):
// collisions are negligible at any store size here, and node:crypto makes it fast.
import { hash } from 'node:crypto';

/** Fingerprint the synthetic and trace workloads use when no model is named. */
export const DEFAULT_FINGERPRINT = 'kvcake-sim';

// One-shot crypto.hash over one buffer: about twice as fast as a Hash object with several
// update() calls, which matters when a trace holds hundreds of thousands of chunks.
function link(prev: string, chunk: string | Uint8Array, fingerprint: string): string {
  const data =
    typeof chunk === 'string'
      ? `${prev}\u0000${chunk}\u0000${fingerprint}`
      : Buffer.concat([Buffer.from(`${prev}\u0000`), chunk, Buffer.from(`\u0000${fingerprint}`)]);
  return hash('sha256', data, 'hex').slice(0, 16);
}

/** Chains chunk identities (strings: a trace's block id, a synthetic group's chunk name). */
export function chainHashes(identities: Iterable<string>, fingerprint: string = DEFAULT_FINGERPRINT): string[] {
  const out: string[] = [];
  let prev = '';
  for (const id of identities) {
    prev = link(prev, id, fingerprint);
    out.push(prev);
  }
  return out;
}

/** Chained hashes of a prompt's token ids, one per full chunk of `chunkTokens` tokens. */
export function chunkHashesFromTokens(tokens: Int32Array, chunkTokens: number, fingerprint: string = DEFAULT_FINGERPRINT): string[] {
  if (!(Number.isInteger(chunkTokens) && chunkTokens > 0)) {
    throw new Error(`chunkHashesFromTokens: chunkTokens must be an integer > 0, got ${chunkTokens}`);
  }
  const out: string[] = [];
  let prev = '';
  const full = Math.floor(tokens.length / chunkTokens);
  for (let i = 0; i < full; i++) {
    const chunk = tokens.subarray(i * chunkTokens, (i + 1) * chunkTokens);
    prev = link(prev, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength), fingerprint);
    out.push(prev);
  }
  return out;
}
