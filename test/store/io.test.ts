// The store's native I/O: chunk files and in-memory values into and out of host-tier pool
// blocks, byte-exact; every damaged or foreign chunk refused with its fault before a load
// succeeds; argument errors word for word; ordering with backend ops through waitFor; and
// the read cap.
import { readFileSync, truncateSync, writeFileSync, appendFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import * as assert from 'uvu/assert';
import { ChunkIo, chunkKeys, chunkSpec, faultOf, keyContext } from '../../lib/store/index.js';
import { forEachBackend } from '../util/backends.js';
import { payloadOf, refValue } from '../util/chunk-ref.js';
import { Rng } from '../util/rng.js';
import { BLOCK_SIZE, BLOCKS_PER_CHUNK, CHUNK_TOKENS, FP, assertSameChunk, blocks, fill, hostPool, pick, prompt, removeDir, tempDir } from '../util/store.js';

const spec = chunkSpec(FP, BLOCK_SIZE, CHUNK_TOKENS);
const keys = chunkKeys(prompt(4), CHUNK_TOKENS, keyContext(FP));

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

forEachBackend('store native I/O', (test, be) => {
  let dir = '';
  let io: ChunkIo;
  test.before.each(() => {
    dir = tempDir('io');
    io = new ChunkIo({ threads: 3 });
  });
  test.after.each(() => {
    io.close();
    removeDir(dir);
  });

  test('file round trip into shuffled blocks of another pool is byte-exact', async () => {
    const rng = new Rng(21);
    const src = hostPool(be(), 40);
    const dst = hostPool(be(), 64);
    const image = await fill(src, 1);
    await fill(dst, 2);
    for (let i = 0; i < 3; i++) {
      const from = pick(rng, 40);
      const w = await io.writeFile(blocks(src, from), dir, spec, keys[i]);
      assert.is(w.bytes, spec.valueBytes);
      const into = blocks(dst, pick(rng, 64));
      const r = await io.readFile(into, path.join(dir, `${keys[i]}.kvc`), spec, keys[i]);
      assert.is(r.bytes, spec.valueBytes);
      await assertSameChunk(into, image, from, `chunk ${i}`);
    }
    assert.equal(readdirSync(dir).sort(), keys.slice(0, 3).map((k) => `${k}.kvc`).sort(), 'only complete chunk files, no temp files');
    src.release();
    dst.release();
  });

  test('a value in memory, split at any boundaries, scatters byte-exact', async () => {
    const rng = new Rng(22);
    const src = hostPool(be(), 20);
    const dst = hostPool(be(), 20);
    const image = await fill(src, 3);
    const from = pick(rng, 20);
    const { value } = await io.gather(blocks(src, from), spec, keys[0]);
    for (const cuts of [[1], [4095], [4096], [4097, 9000], [100, 5000, 20000, 40000], []]) {
      const segs: Buffer[] = [];
      let at = 0;
      for (const c of cuts) {
        segs.push(value.subarray(at, c));
        at = c;
      }
      segs.push(value.subarray(at));
      const into = blocks(dst, pick(rng, 20));
      await io.scatter(into, segs, spec, keys[0]);
      await assertSameChunk(into, image, from, `cuts ${cuts.join(',')}`);
    }
    src.release();
    dst.release();
  });

  test('damaged and foreign chunk files are each refused with their fault', async () => {
    const src = hostPool(be(), 20);
    const dst = hostPool(be(), 20);
    const image = await fill(src, 4);
    const from = pick(new Rng(23), 20);
    const payload = payloadOf(image, spec.blockBytes, from);
    const key = keys[0];
    const file = path.join(dir, `${key}.kvc`);
    const other = chunkSpec({ ...FP, architecture: 'another-model' }, BLOCK_SIZE, CHUNK_TOKENS);
    const otherKey = chunkKeys(prompt(1), CHUNK_TOKENS, keyContext(other.fingerprint))[0];
    const good = refValue(spec, key, payload);
    const flip = (b: Buffer, at: number) => {
      const c = Buffer.from(b);
      c[at] ^= 0x10;
      return c;
    };
    const cases: [string, Buffer, string][] = [
      ['corrupted payload', flip(good, 4096 + 12345), 'payload-checksum'],
      ['corrupted last payload byte', flip(good, good.length - 1), 'payload-checksum'],
      ['corrupted header', flip(good, 200), 'header-checksum'],
      ['truncated file', good.subarray(0, good.length - 100), 'truncated'],
      ['truncated inside the header', good.subarray(0, 100), 'truncated'],
      ['empty file', Buffer.alloc(0), 'truncated'],
      ['trailing bytes', Buffer.concat([good, Buffer.alloc(10)]), 'size'],
      ['wrong magic', refValue(spec, key, payload, { magic: 'NOTACHNK' }), 'magic'],
      ['wrong version', refValue(spec, key, payload, { version: 2 }), 'version'],
      ['wrong dtype', refValue(spec, key, payload, { dtype: 2 }), 'dtype'],
      ['wrong fingerprint', refValue(spec, key, payload, { fingerprint: Buffer.alloc(32, 9) }), 'fingerprint'],
      ['a chunk from another model', refValue(other, otherKey, payload), 'fingerprint'],
      ['another prefix under this name', refValue(spec, keys[1], payload), 'key'],
    ];
    for (const [what, bytes, fault] of cases) {
      writeFileSync(file, bytes);
      const err = await rejection(io.readFile(blocks(dst, from), file, spec, key));
      assert.is(faultOf(err), fault, `${what}: ${err.message}`);
      assert.match(err.message, new RegExp(`^readFile ${key.slice(0, 12)}: ${fault}: `));
      const e2 = await rejection(io.scatter(blocks(dst, from), [bytes], spec, key));
      assert.is(faultOf(e2), fault, `${what} (memory): ${e2.message}`);
    }
    writeFileSync(file, good);
    await io.readFile(blocks(dst, from), file, spec, key);
    await assertSameChunk(blocks(dst, from), image, from, 'the good file after the bad ones');
    assert.is(faultOf(await rejection(io.readFile(blocks(dst, from), path.join(dir, 'absent.kvc'), spec, key))), 'missing');
    src.release();
    dst.release();
  });

  test('a file shortened after it was written reads as truncated, one lengthened as size', async () => {
    const src = hostPool(be(), 20);
    await fill(src, 6);
    const from = pick(new Rng(24), 20);
    await io.writeFile(blocks(src, from), dir, spec, keys[0]);
    const file = path.join(dir, `${keys[0]}.kvc`);
    truncateSync(file, spec.valueBytes - spec.blockBytes);
    assert.match((await rejection(io.readFile(blocks(src, from), file, spec, keys[0]))).message, /truncated: the file has \d+ bytes, the chunk needs \d+/);
    await io.writeFile(blocks(src, from), dir, spec, keys[0]);
    appendFileSync(file, 'x');
    assert.is(faultOf(await rejection(io.readFile(blocks(src, from), file, spec, keys[0]))), 'size');
    src.release();
  });

  test('promotion paths verify too: readValue and writeValue refuse damaged values', async () => {
    const src = hostPool(be(), 20);
    await fill(src, 7);
    const from = pick(new Rng(25), 20);
    const { value } = await io.gather(blocks(src, from), spec, keys[0]);
    const bad = Buffer.from(value);
    bad[9000] ^= 1;
    assert.is(faultOf(await rejection(io.writeValue(dir, [bad], spec, keys[0]))), 'payload-checksum');
    assert.is(faultOf(await rejection(io.writeValue(dir, [value], spec, keys[1]))), 'key');
    assert.equal(readdirSync(dir), [], 'nothing written for a damaged or misnamed value');
    await io.writeValue(dir, [value.subarray(0, 5000), value.subarray(5000)], spec, keys[0]);
    const back = await io.readValue(path.join(dir, `${keys[0]}.kvc`), spec, keys[0]);
    assert.ok(Buffer.compare(back.value, value) === 0);
    writeFileSync(path.join(dir, `${keys[0]}.kvc`), bad);
    assert.is(faultOf(await rejection(io.readValue(path.join(dir, `${keys[0]}.kvc`), spec, keys[0]))), 'payload-checksum');
    src.release();
  });

  test('ordering with backend ops: a save waits for the copy that fills its blocks; a failed load skips the copy after it', async () => {
    const b = be();
    const geo = { numKvHeads: FP.numKvHeads, headDim: FP.headDim, blockSize: BLOCK_SIZE, dtype: FP.dtype };
    const dev = b.createPool({ tier: 'device', numBlocks: BLOCKS_PER_CHUNK, ...geo });
    const host = hostPool(b, BLOCKS_PER_CHUNK);
    const image = new Uint16Array(BLOCKS_PER_CHUNK * spec.blockBytes / 2).map((_, i) => (i * 13) & 0xffff);
    await dev.write(image);
    const ids = Int32Array.from({ length: BLOCKS_PER_CHUNK }, (_, i) => i);
    const pairs = new Int32Array(2 * BLOCKS_PER_CHUNK);
    ids.forEach((id, i) => pairs.set([id, id], 2 * i));
    const off = b.copyBlocks(dev, host, pairs);
    await io.writeFile(blocks(host, ids), dir, spec, keys[0], { waitFor: [off] });
    await host.write(new Uint16Array(image.length));
    await io.readFile(blocks(host, ids), path.join(dir, `${keys[0]}.kvc`), spec, keys[0]);
    await assertSameChunk(blocks(host, ids), image, ids, 'saved after the copy');

    writeFileSync(path.join(dir, `${keys[1]}.kvc`), 'not a chunk');
    await dev.write(new Uint16Array(image.length));
    const load = io.readFile(blocks(host, ids), path.join(dir, `${keys[1]}.kvc`), spec, keys[1]);
    load.catch(() => {});
    const copy = b.copyBlocks(host, dev, pairs, { waitFor: [load] });
    const err = await rejection(copy);
    assert.match(err.message, /skipped: an op it waits for failed: readFile [0-9a-f]{12}: truncated/);
    const d = (await dev.read()) as Uint16Array;
    assert.ok(d.every((x) => x === 0), 'nothing reached the device pool');
    dev.release();
    host.release();
  });

  test('releasing the pool while its ops are in flight is safe', async () => {
    const src = hostPool(be(), 20);
    await fill(src, 8);
    const from = pick(new Rng(26), 20);
    const w = io.writeFile(blocks(src, from), dir, spec, keys[0]);
    const g = io.gather(blocks(src, from), spec, keys[0]);
    src.release();
    await w;
    const { value } = await g;
    const back = await io.readValue(path.join(dir, `${keys[0]}.kvc`), spec, keys[0]);
    assert.ok(Buffer.compare(back.value, value) === 0);
  });

  test('bad arguments: errors name the argument and the limit', () => {
    const b = be();
    const host = hostPool(b, 20);
    const dev = b.createPool({ tier: 'device', numBlocks: 20, numKvHeads: FP.numKvHeads, headDim: FP.headDim, blockSize: BLOCK_SIZE, dtype: FP.dtype });
    const wrong = b.createPool({ tier: 'host', numBlocks: 20, numKvHeads: 4, headDim: FP.headDim, blockSize: BLOCK_SIZE, dtype: FP.dtype });
    const ids = Int32Array.from({ length: BLOCKS_PER_CHUNK }, (_, i) => i);
    const f = path.join(dir, 'x.kvc');
    const msg = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error('expected a throw');
    };
    assert.is(msg(() => io.readFile(blocks(dev, ids), f, spec, keys[0])), 'readFile: pool must be a host-tier pool (the store moves chunks through host memory; copyBlocks moves them to the device)');
    assert.is(
      msg(() => io.readFile(blocks(wrong, ids), f, spec, keys[0])),
      "readFile: the pool's layout (numKvHeads 4, headDim 64, blockSize 16, fp16) does not match the store's chunks (numKvHeads 2, headDim 64, blockSize 16, fp16)",
    );
    assert.is(msg(() => io.readFile(blocks(host, ids.subarray(1)), f, spec, keys[0])), 'readFile: blocks has 5 entries, a chunk needs numLayers x blocksPerLayer = 3 x 2 = 6');
    assert.is(msg(() => io.readFile(blocks(host, [0, 1, 2, 3, 4, 20]), f, spec, keys[0])), 'readFile: blocks[5] = 20 is out of range [0, 20) for this pool');
    assert.is(msg(() => io.writeFile(blocks(host, [0, 1, 2, 3, 4, -1]), dir, spec, keys[0])), 'writeFile: blocks[5] = -1 is out of range [0, 20) for this pool');
    assert.is(msg(() => io.scatter(blocks(host, [0, 1, 2, 3, 1, 5]), [], spec, keys[0])), "scatter: blocks[4] = 1 repeats blocks[1]: a chunk's blocks must be distinct");
    assert.is(msg(() => io.gather(blocks(host, ids), spec, 'abc')), 'key must be a chunk key (64 lowercase hex digits), got "abc"');
    assert.is(msg(() => io.readFile(blocks(host, ids), 'a\u0000b', spec, keys[0])), 'readFile: path must not contain NUL characters');
    assert.is(msg(() => io.scatter(blocks(host, ids), [new Uint16Array(4) as unknown as Uint8Array], spec, keys[0])), 'scatter: segments[0] must be a Uint8Array (Buffer)');
    assert.is(msg(() => io.readFile({ pool: {} as never, blocks: ids }, f, spec, keys[0])), 'readFile: pool must be a KVPool');
    assert.is(msg(() => io.gather(blocks(host, ids), { ...spec, native: { ...spec.native, numLayers: 0 } }, keys[0])), 'gather: spec.numLayers = 0 is out of range [1, 4096]');
    assert.is(msg(() => io.gather(blocks(host, ids), { ...spec, native: { ...spec.native, architecture: 'x'.repeat(64) } }, keys[0])), 'gather: spec.architecture is 64 bytes, the limit is 63');
    assert.is(msg(() => io.setReadCap(-1)), 'setReadCap: bytesPerSecond must be >= 0, got -1.000000');
    assert.is(msg(() => new ChunkIo({ threads: 0 })), 'StoreIo: threads = 0 is out of range [1, 64]');
    host.release();
    assert.is(msg(() => io.gather(blocks(host, ids), spec, keys[0])), 'gather: pool has been released');
    const closed = new ChunkIo();
    closed.close();
    assert.is(msg(() => closed.gather(blocks(wrong, ids), spec, keys[0])), 'ChunkIo has been closed');
    dev.release();
    wrong.release();
  });

  test('the read cap holds loads to its rate (a lower bound: each byte is paid for)', async () => {
    const src = hostPool(be(), 20);
    await fill(src, 9);
    const from = pick(new Rng(27), 20);
    const { value } = await io.gather(blocks(src, from), spec, keys[0]);
    const rate = 4 * spec.valueBytes; // four chunks per second
    io.setReadCap(rate);
    assert.is(io.readCap, rate);
    const t0 = performance.now();
    await Promise.all([0, 1, 2].map(() => io.scatter(blocks(src, pick(new Rng(28), 20)), [value], spec, keys[0])));
    const seconds = (performance.now() - t0) / 1000;
    assert.ok(seconds >= 0.7, `three chunks at four per second took ${seconds.toFixed(3)} s`);
    io.setReadCap(0);
    assert.is(io.readCap, 0);
    src.release();
  });
});

// Reading the file back through node:fs: the bytes on disk are the reference layout.
forEachBackend('store native I/O: file layout', (test, be) => {
  test('a written chunk file is exactly the reference value', async () => {
    const dir = tempDir('layout');
    const io = new ChunkIo({ threads: 1 });
    const src = hostPool(be(), 20);
    const image = await fill(src, 10);
    const from = pick(new Rng(29), 20);
    await io.writeFile(blocks(src, from), dir, spec, keys[3]);
    const bytes = readFileSync(path.join(dir, `${keys[3]}.kvc`));
    assert.ok(Buffer.compare(bytes, refValue(spec, keys[3], payloadOf(image, spec.blockBytes, from))) === 0);
    io.close();
    src.release();
    removeDir(dir);
  });
});
