// The chunk header parser (native), property-tested with fast-check against an independent
// writer of the format: what the reference writes parses with the same fields; any damage
// to a header is refused with the fault it deserves; arbitrary bytes never crash it. And the
// native writer produces, byte for byte, the value the reference writes.
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ChunkIo, chunkKeys, chunkSpec, inspectChunkHeader, keyContext, type ChunkSpec, type ModelFingerprint } from '../../lib/store/index.js';
import { createBackend } from '../../lib/index.js';
import { payloadOf, refHeader, refValue, reseal } from '../util/chunk-ref.js';
import { BLOCK_SIZE, CHUNK_TOKENS, FP, fill, hostPool, pick } from '../util/store.js';
import { Rng } from '../util/rng.js';

const spec = chunkSpec(FP, BLOCK_SIZE, CHUNK_TOKENS);
const key = chunkKeys(Array.from({ length: CHUNK_TOKENS }, (_, i) => i), CHUNK_TOKENS, keyContext(FP))[0];
const payload = Buffer.alloc(spec.payloadBytes, 7);

const arbFingerprint: fc.Arbitrary<ModelFingerprint> = fc.record({
  architecture: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\u0000') && Buffer.byteLength(s) <= 63),
  numLayers: fc.integer({ min: 1, max: 96 }),
  numKvHeads: fc.integer({ min: 1, max: 16 }),
  headDim: fc.constantFrom(64, 80, 96, 128, 256),
  dtype: fc.constantFrom('fp32' as const, 'fp16' as const, 'bf16' as const),
});
const arbSpec: fc.Arbitrary<ChunkSpec> = fc
  .tuple(arbFingerprint, fc.constantFrom(8, 16, 32, 64), fc.integer({ min: 1, max: 8 }))
  .map(([fp, bs, n]) => chunkSpec(fp, bs, bs * n));
const arbKey = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

test('a header from the independent writer parses, with every field, and passes the load checks', () => {
  fc.assert(
    fc.property(arbSpec, arbKey, (s, k) => {
      const h = refHeader(s, k, new Uint8Array(16));
      const r = inspectChunkHeader(h, s, k);
      assert.ok(r.ok, r.message);
      assert.is(r.header!.key, k);
      assert.is(r.header!.fingerprint, Buffer.from(s.digest).toString('hex'));
      assert.is(r.header!.architecture, s.fingerprint.architecture);
      assert.is(r.header!.numLayers, s.fingerprint.numLayers);
      assert.is(r.header!.dtype, s.fingerprint.dtype);
      assert.is(r.header!.blocksPerLayer, s.blocksPerLayer);
      assert.is(r.header!.tokens, s.chunkTokens);
      assert.is(r.header!.blockBytes, s.blockBytes);
      assert.is(r.header!.payloadBytes, s.payloadBytes);
    }),
    { numRuns: 200 },
  );
});

test('any single flipped bit in the checked header is refused', () => {
  const good = refHeader(spec, key, payload);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 7 }), (at, bit) => {
      const h = Buffer.from(good);
      h[at] ^= 1 << bit;
      const r = inspectChunkHeader(h, spec, key);
      assert.not.ok(r.ok, `flip of byte ${at} bit ${bit} passed`);
      const want = at < 8 ? 'magic' : at < 12 ? 'version' : 'header-checksum';
      assert.is(r.fault, want, `flip of byte ${at}: ${r.message}`);
    }),
    { numRuns: 400 },
  );
});

test('a truncated header is refused as truncated, at every length', () => {
  const good = refHeader(spec, key, payload);
  for (let n = 0; n < 256; n++) {
    const r = inspectChunkHeader(good.subarray(0, n), spec, key);
    assert.is(r.fault, 'truncated', `length ${n}`);
  }
  assert.is(inspectChunkHeader(good.subarray(0, 256), spec, key).fault, 'ok');
});

test('arbitrary bytes never pass and never crash the parser', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 5000 }), (b) => {
      const r = inspectChunkHeader(b, spec, key);
      assert.not.ok(r.ok);
    }),
    { numRuns: 500 },
  );
  // Arbitrary bytes behind a valid magic and version reach the header checksum.
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 256, maxLength: 4096 }), (b) => {
      const h = Buffer.from(b);
      h.write('KVCAKECH', 0, 'latin1');
      h.writeUInt32LE(1, 8);
      assert.is(inspectChunkHeader(h, spec, key).fault, 'header-checksum');
    }),
    { numRuns: 200 },
  );
});

test('well-sealed headers with one wrong field: each refused with its own fault', () => {
  const other = chunkSpec({ ...FP, architecture: 'another-model' }, BLOCK_SIZE, CHUNK_TOKENS);
  const cases: [string, Parameters<typeof refHeader>[3], string][] = [
    ['version 2', { version: 2 }, 'version'],
    ['header of 8192 bytes', { headerBytes: 8192 }, 'version'],
    ['unknown flags', { flags: 1 }, 'version'],
    ['bf16 instead of fp16', { dtype: 2 }, 'dtype'],
    ['unknown dtype', { dtype: 9 }, 'dtype'],
    ['4 layers', { numLayers: 4 }, 'layout'],
    ['head dim 128', { headDim: 128 }, 'layout'],
    ['block size 32', { blockSize: 32 }, 'layout'],
    ['blocks per layer 3', { blocksPerLayer: 3 }, 'layout'],
    ['tokens 31', { tokens: 31 }, 'layout'],
    ['payload bytes off by one', { payloadBytes: spec.payloadBytes + 1 }, 'layout'],
    ['another model of the same shape', { fingerprint: other.digest, architecture: 'another-model' }, 'fingerprint'],
    ['another prefix', { key: Buffer.alloc(32, 1) }, 'key'],
  ];
  for (const [what, o, fault] of cases) {
    const r = inspectChunkHeader(refHeader(spec, key, payload, o), spec, key);
    assert.is(r.fault, fault, `${what}: ${r.message}`);
  }
  const r = inspectChunkHeader(refHeader(spec, key, payload, { fingerprint: other.digest, architecture: 'another-model' }), spec, key);
  assert.match(r.message, /the chunk was written for another model \(another-model, fingerprint [0-9a-f]{12}\), this store serves kvcake-test-3L \([0-9a-f]{12}\)/);
  const wrongMagic = reseal(Buffer.from(refHeader(spec, key, payload)).fill(0x41, 0, 8));
  assert.is(inspectChunkHeader(wrongMagic).message, 'not a kvcake chunk (wrong magic)');
  assert.is(inspectChunkHeader(refHeader(spec, key, payload, { version: 7 })).message, 'format version 7, this build reads version 1');
});

test('the native writer produces the reference bytes (same layout, same checksums)', async () => {
  const be = createBackend({ backend: 'cpu' });
  const pool = hostPool(be, 20);
  const image = await fill(pool, 5);
  const io = new ChunkIo({ threads: 1 });
  try {
    for (let seed = 1; seed <= 3; seed++) {
      const ids = pick(new Rng(seed), 20);
      const got = await io.gather({ pool, blocks: ids }, spec, key);
      const want = refValue(spec, key, payloadOf(image, spec.blockBytes, ids));
      assert.is(got.bytes, spec.valueBytes);
      assert.ok(Buffer.compare(got.value, want) === 0, `seed ${seed}: native value differs from the reference`);
    }
  } finally {
    io.close();
    pool.release();
  }
});

test.run();
