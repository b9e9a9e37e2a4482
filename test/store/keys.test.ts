// Chunk keys: the documented encoding reproduced by an independent implementation, the
// chain property, separation by model and namespace, and the same keys in another process.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chunkKeys, fingerprintDigest, idChainKeys, isChunkKey, keyContext } from '../../lib/store/index.js';
import { CHUNK_TOKENS, FP } from '../util/store.js';

// The encoding of lib/store/keys.ts, written from its comment: domain, parent, kind byte,
// u32 length + body (token ids as u32 LE), fingerprint digest, u32 length + namespace.
function referenceKeys(tokens: number[], chunk: number, fp: Uint8Array, ns: string): string[] {
  const out: string[] = [];
  let parent = Buffer.alloc(32);
  for (let c = 0; c + chunk <= tokens.length; c += chunk) {
    const h = createHash('sha256');
    h.update('kvcake.chunk.v1');
    h.update(parent);
    h.update(Buffer.of(1));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(4 * chunk);
    h.update(len);
    const body = Buffer.alloc(4 * chunk);
    for (let i = 0; i < chunk; i++) body.writeUInt32LE(tokens[c + i], 4 * i);
    h.update(body);
    h.update(fp);
    const nsb = Buffer.from(ns, 'utf8');
    const nl = Buffer.alloc(4);
    nl.writeUInt32LE(nsb.length);
    h.update(nl);
    h.update(nsb);
    parent = h.digest();
    out.push(parent.toString('hex'));
  }
  return out;
}

const tokens = Array.from({ length: 3 * CHUNK_TOKENS + 5 }, (_, i) => (i * 977) % 50000);

test('keys follow the documented encoding (independent SHA-256 reference), one per full chunk, 256 bits', () => {
  const ctx = keyContext(FP, 'tenant-a');
  const keys = chunkKeys(tokens, CHUNK_TOKENS, ctx);
  assert.is(keys.length, 3, 'the partial tail chunk has no key');
  assert.equal(keys, referenceKeys(tokens, CHUNK_TOKENS, fingerprintDigest(FP), 'tenant-a'));
  assert.ok(keys.every(isChunkKey));
  assert.ok(keys.every((k) => k.length === 64));
});

test('chained: a key names its whole prefix; typed arrays and arrays agree', () => {
  const ctx = keyContext(FP);
  const a = chunkKeys(tokens, CHUNK_TOKENS, ctx);
  const changed = tokens.slice();
  changed[CHUNK_TOKENS + 3] += 1;
  const b = chunkKeys(changed, CHUNK_TOKENS, ctx);
  assert.is(a[0], b[0]);
  assert.not.equal(a[1], b[1]);
  assert.not.equal(a[2], b[2], 'the same chunk after a different prefix has another key');
  assert.equal(chunkKeys(Int32Array.from(tokens), CHUNK_TOKENS, ctx), a);
  assert.equal(chunkKeys(Uint32Array.from(tokens), CHUNK_TOKENS, ctx), a);
});

test('namespaces and models never share a key; an id chain never equals a token chain', () => {
  const k = (fp = FP, ns = '') => chunkKeys(tokens, CHUNK_TOKENS, keyContext(fp, ns))[0];
  assert.not.equal(k(FP, 'a'), k(FP, 'b'));
  assert.not.equal(k(FP, ''), k(FP, 'a'));
  assert.not.equal(k(FP), k({ ...FP, architecture: 'other-model' }));
  assert.not.equal(k(FP), k({ ...FP, dtype: 'bf16' }));
  assert.not.equal(k(FP), k({ ...FP, numLayers: 4 }));
  assert.not.equal(fingerprintDigest('kvcake-test-3L').toString('hex'), fingerprintDigest(FP).toString('hex'));
  const ctx = keyContext(FP);
  assert.not.equal(idChainKeys(['1'], ctx)[0], chunkKeys([1], 1, ctx)[0]);
});

test('the same keys in another process (no per-process seed)', () => {
  const here = chunkKeys(tokens, CHUNK_TOKENS, keyContext(FP, 'ns'));
  const script = `
    import { chunkKeys, keyContext } from './lib/store/keys.ts';
    const tokens = Array.from({ length: ${tokens.length} }, (_, i) => (i * 977) % 50000);
    console.log(JSON.stringify(chunkKeys(tokens, ${CHUNK_TOKENS}, keyContext(${JSON.stringify(FP)}, 'ns'))));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  assert.equal(JSON.parse(out), here);
});

test('bad input: clear errors naming the argument', () => {
  const ctx = keyContext(FP);
  assert.throws(() => chunkKeys([1, -2], 2, ctx), /chunkKeys: token 1 = -2 is not a token id \(an integer in \[0, 2\^32\)\)/);
  assert.throws(() => chunkKeys([1, 2.5], 2, ctx), /token 1 = 2.5 is not a token id/);
  assert.throws(() => chunkKeys([1, 2], 0, ctx), /chunkKeys: chunkTokens must be an integer > 0, got 0/);
  assert.throws(() => keyContext({ ...FP, architecture: 'x'.repeat(64) }), /fingerprint.architecture is 64 bytes of UTF-8, the limit is 63/);
  assert.throws(() => keyContext({ ...FP, dtype: 'fp8' as never }), /fingerprint.dtype must be 'fp32', 'fp16' or 'bf16', got "fp8"/);
  assert.throws(() => keyContext({ ...FP, numLayers: 0 }), /fingerprint.numLayers must be an integer in \[1, 4096\], got 0/);
  assert.throws(() => keyContext(new Uint8Array(16)), /a fingerprint digest must be 32 bytes, got 16/);
});

test.run();
