// Every check of core/validate and of the binding: bad input throws a RangeError or
// TypeError whose message names the argument and the limit, and nothing crashes.
import * as assert from 'uvu/assert';
import { createBackend, type Backend, type KVPool, type Tensor } from '../../lib/index.js';
import { forEachBackend } from '../util/backends.js';

function throwsLike(fn: () => unknown, type: ErrorConstructor | RangeErrorConstructor | TypeErrorConstructor, re: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, type, `expected ${type.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a ${type.name} matching ${re}`);
}

interface Fixture {
  b: Backend;
  pool: KVPool; // 16 blocks x 16 tokens, 2 KV heads, headDim 64, fp16
  q: Tensor; // [2][8][64] fp16
  out: Tensor;
}

function fixture(b: Backend): Fixture {
  const pool = b.createPool({ tier: 'device', numBlocks: 16, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
  const q = b.tensor({ dtype: 'fp16', shape: [2, 8, 64] });
  const out = b.tensor({ dtype: 'fp16', shape: [2, 8, 64] });
  return { b, pool, q, out };
}

const POOL = { tier: 'device' as const, numBlocks: 4, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' as const };

forEachBackend('argument errors', (test, be) => {
  test('createPool', () => {
    const b = be();
    throwsLike(() => b.createPool({ ...POOL, headDim: 100 }), RangeError, /^createPool: headDim 100 is not supported \(64, 80, 96, 128, 256\)$/);
    throwsLike(() => b.createPool({ ...POOL, blockSize: 4 }), RangeError, /blockSize 4 is out of range \[8, 256\]/);
    throwsLike(() => b.createPool({ ...POOL, blockSize: 512 }), RangeError, /blockSize 512 is out of range \[8, 256\]/);
    throwsLike(() => b.createPool({ ...POOL, numKvHeads: 0 }), RangeError, /numKvHeads = 0 is out of range \[1, 256\]/);
    throwsLike(() => b.createPool({ ...POOL, numKvHeads: 300 }), RangeError, /numKvHeads = 300 is out of range/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 0 }), RangeError, /numBlocks = 0 is out of range/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: -1 }), RangeError, /numBlocks = -1 is out of range/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 1.5 }), RangeError, /numBlocks must be an integer/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: NaN }), RangeError, /numBlocks must be an integer/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: '4' as unknown as number }), TypeError, /numBlocks must be a number/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 1 << 24, blockSize: 256 }), RangeError, /exceeds the int32 slot-mapping limit/);
    throwsLike(() => b.createPool({ ...POOL, dtype: 'fp8' as 'fp16' }), RangeError, /dtype must be 'fp32', 'fp16' or 'bf16', got 'fp8'/);
    throwsLike(() => b.createPool({ ...POOL, tier: 'gpu' as 'device' }), RangeError, /tier must be 'device' or 'host', got 'gpu'/);
    throwsLike(() => b.createPool(null as unknown as typeof POOL), TypeError, /options must be an object/);
  });

  test('tensors', () => {
    const b = be();
    throwsLike(() => b.tensor({ dtype: 'fp16', shape: [2, 0] }), RangeError, /shape\[1\] = 0 must be a positive integer/);
    throwsLike(() => b.tensor({ dtype: 'fp16', shape: [] }), TypeError, /shape must be a non-empty array/);
    throwsLike(() => b.tensor({ dtype: 'int8' as 'fp16', shape: [2] }), RangeError, /dtype must be 'fp32', 'fp16' or 'bf16'/);
    throwsLike(() => b.tensorFrom(new Float32Array(6), 'fp32', [4]), RangeError, /shape \[4\] has 4 elements but data has 6/);
    throwsLike(() => b.tensorFrom(new Float64Array(4) as unknown as Float32Array, 'fp32'), TypeError, /Float32Array/);
    const t = b.tensor({ dtype: 'fp16', shape: [4] });
    throwsLike(() => t.write(new Float32Array(4)), TypeError, /write: data must be a Uint16Array \(fp16\/bf16 bit patterns\) for fp16 data/);
    throwsLike(() => t.write(new Uint16Array(5)), RangeError, /5 elements at offset 0 do not fit the tensor's 4 elements/);
    throwsLike(() => t.write(new Uint16Array(2), { offset: 3 }), RangeError, /2 elements at offset 3 do not fit/);
    t.release();
    throwsLike(() => t.read(), Error, /read: tensor has been released/);
    throwsLike(() => t.write(new Uint16Array(1)), Error, /write: tensor has been released/);
  });

  test('append', () => {
    const { b, pool, q, out } = fixture(be());
    const row = 2 * 64;
    const k = new Uint16Array(3 * row);
    const slots = new Int32Array([0, 1, 2]);
    throwsLike(() => b.appendKV({ pool, k, v: k, slotMapping: new Int32Array([0, 256, 1]) }), RangeError, /^append: slotMapping\[1\] = 256 is out of range \[0, 256\) for this pool \(numBlocks 16 x blockSize 16\); use -1 for padding rows$/);
    throwsLike(() => b.appendKV({ pool, k, v: k, slotMapping: new Int32Array([5, -1, 5]) }), RangeError, /slotMapping\[2\] = 5 repeats slotMapping\[0\]/);
    throwsLike(() => b.appendKV({ pool, k, v: k, slotMapping: Float64Array.from([0, 1, 2]) as unknown as Int32Array }), TypeError, /append: slotMapping must be an Int32Array/);
    throwsLike(() => b.appendKV({ pool, k: new Float32Array(3 * row), v: k, slotMapping: slots }), TypeError, /appendKV: k must be a Tensor or a Uint16Array for fp16 data/);
    throwsLike(() => b.appendKV({ pool, k: new Uint16Array(2 * row), v: k, slotMapping: slots }), RangeError, /append: k has 256 elements but \[3\]\[2\]\[64\] needs 384/);
    const f32 = b.tensor({ dtype: 'fp32', shape: [3, 2, 64] });
    throwsLike(() => b.appendKV({ pool, k: f32, v: k, slotMapping: slots }), RangeError, /append: k is fp32 but the pool is fp16/);
    const kt = b.tensorFrom(k, 'fp16');
    throwsLike(() => b.appendKV({ pool, k: kt, v: kt, slotMapping: slots }), RangeError, /k and v must be different tensors/);
    for (const t of [f32, kt, q, out]) t.release();
    pool.release();
    throwsLike(() => b.appendKV({ pool, k, v: k, slotMapping: slots }), Error, /append: pool has been released/);
  });

  test('decode', () => {
    const { b, pool, q, out } = fixture(be());
    const ok = { pool, q, out, blockTables: new Int32Array([0, 1, 2, 3, 4, 5, 6, 7]), tableStride: 4, contextLens: new Int32Array([40, 64]), numHeads: 8 };
    throwsLike(() => b.decode({ ...ok, blockTables: new Int32Array([0, 1, 2, 3, 4, 5, 9000, 7]) }), RangeError, /^decode: blockTables\[1\]\[2\] = 9000 is out of range \[0, 16\) for this pool$/);
    throwsLike(() => b.decode({ ...ok, blockTables: new Int32Array([0, 1, -1, 3, 4, 5, 6, 7]) }), RangeError, /blockTables\[0\]\[2\] = -1 is out of range/);
    throwsLike(() => b.decode({ ...ok, contextLens: new Int32Array([40, 700]) }), RangeError, /^decode: contextLens\[1\] = 700 needs 44 blocks but tableStride is 4$/);
    throwsLike(() => b.decode({ ...ok, contextLens: new Int32Array([40, -3]) }), RangeError, /contextLens\[1\] = -3 is negative/);
    throwsLike(() => b.decode({ ...ok, numHeads: 7 }), RangeError, /numHeads 7 is not a multiple of the pool's numKvHeads 2/);
    throwsLike(() => b.decode({ ...ok, numHeads: 0 }), RangeError, /numHeads = 0 is out of range \[1, 1024\]/);
    throwsLike(() => b.decode({ ...ok, numHeads: 16 }), RangeError, /decode: q has 1024 elements but \[2\]\[16\]\[64\] needs 2048/);
    throwsLike(() => b.decode({ ...ok, blockTables: new Int32Array(7) }), RangeError, /blockTables has 7 entries but batch 2 x tableStride 4 needs 8/);
    throwsLike(() => b.decode({ ...ok, tableStride: 0 }), RangeError, /tableStride = 0 is out of range/);
    throwsLike(() => b.decode({ ...ok, tableStride: 2.5 }), RangeError, /tableStride must be an integer/);
    throwsLike(() => b.decode({ ...ok, scale: NaN }), RangeError, /scale must be a finite number/);
    throwsLike(() => b.decode({ ...ok, scale: 'x' as unknown as number }), TypeError, /scale must be a number/);
    throwsLike(() => b.decode({ ...ok, out: q }), RangeError, /out must be a different tensor from q/);
    throwsLike(() => b.decode({ ...ok, out: new Uint16Array(10) as unknown as Tensor }), TypeError, /decode: out must be a Tensor/);
    throwsLike(() => b.decode({ ...ok, contextLens: [40, 64] as unknown as Int32Array }), TypeError, /decode: contextLens must be an Int32Array/);
    throwsLike(() => b.decode({ ...ok, waitFor: [Promise.resolve()] as never }), TypeError, /decode: waitFor\[0\] is not a Work/);
    throwsLike(() => b.decode({ ...ok, waitFor: 'x' as never }), TypeError, /waitFor must be an array of Work/);
    const small = b.tensor({ dtype: 'fp16', shape: [100] });
    throwsLike(() => b.decode({ ...ok, out: small }), RangeError, /decode: out has 100 elements but \[2\]\[8\]\[64\] needs 1024/);
    const other = createBackend({ backend: b.name });
    const foreign = other.tensor({ dtype: 'fp16', shape: [2, 8, 64] });
    throwsLike(() => b.decode({ ...ok, q: foreign }), RangeError, /decode: q belongs to a different backend/);
    for (const t of [small, foreign, q, out]) t.release();
    pool.release();
  });

  test('prefill', () => {
    const { b, pool, q, out } = fixture(be());
    const ok = { pool, q, out, qStartLoc: new Int32Array([0, 1, 2]), blockTables: new Int32Array([0, 1, 2, 3]), tableStride: 2, contextLens: new Int32Array([20, 5]), numHeads: 8 };
    throwsLike(() => b.prefill({ ...ok, qStartLoc: new Int32Array([0, 2]) }), RangeError, /qStartLoc has 2 entries but batch \+ 1 = 3/);
    throwsLike(() => b.prefill({ ...ok, qStartLoc: new Int32Array([1, 1, 2]) }), RangeError, /qStartLoc\[0\] must be 0, got 1/);
    throwsLike(() => b.prefill({ ...ok, qStartLoc: new Int32Array([0, 2, 1]) }), RangeError, /^prefill: qStartLoc must be non-decreasing, but qStartLoc\[2\] = 1 < qStartLoc\[1\] = 2$/);
    throwsLike(() => b.prefill({ ...ok, qStartLoc: new Int32Array([0, 1, 7]), contextLens: new Int32Array([20, 5]) }), RangeError, /sequence 1 has 6 query tokens but contextLens\[1\] = 5/);
    throwsLike(() => b.prefill({ ...ok, qStartLoc: new Int32Array([0, 3, 5]) }), RangeError, /prefill: q has 1024 elements but \[5\]\[8\]\[64\] needs 2560/);
    throwsLike(() => b.prefill({ ...ok, qStartLoc: new Float32Array([0, 1, 2]) as unknown as Int32Array }), TypeError, /prefill: qStartLoc must be an Int32Array/);
    for (const t of [q, out]) t.release();
    pool.release();
  });

  test('copyBlocks', () => {
    const b = be();
    const a = b.createPool({ ...POOL, numBlocks: 8 });
    const h = b.createPool({ ...POOL, tier: 'host', numBlocks: 4 });
    const odd = b.createPool({ ...POOL, headDim: 128 });
    throwsLike(() => b.copyBlocks(a, odd, new Int32Array([0, 0])), RangeError, /pool geometry mismatch: src \(numBlocks 8, numKvHeads 2, headDim 64, blockSize 16, fp16\) vs dst \(numBlocks 4, numKvHeads 2, headDim 128/);
    throwsLike(() => b.copyBlocks(a, h, new Int32Array([0, 1, 2])), RangeError, /pairs has 3 entries; it must be \[n\]\[2\]/);
    throwsLike(() => b.copyBlocks(a, h, new Int32Array([0, 1, 8, 2])), RangeError, /^copyBlocks: pairs\[1\]\[0\] = 8 is out of range \[0, 8\) for the src pool$/);
    throwsLike(() => b.copyBlocks(a, h, new Int32Array([0, 4])), RangeError, /pairs\[0\]\[1\] = 4 is out of range \[0, 4\) for the dst pool/);
    throwsLike(() => b.copyBlocks(a, h, new Int32Array([0, 1, 2, 1])), RangeError, /pairs\[1\]\[1\] = 1 repeats the destination of pairs\[0\]; destination blocks must be distinct/);
    throwsLike(() => b.copyBlocks(a, a, new Int32Array([0, 1, 1, 2])), RangeError, /pairs\[0\]\[1\] = 1 is also a source block in this call/);
    throwsLike(() => b.copyBlocks(a, h, new Int32Array([-1, 0])), RangeError, /pairs\[0\]\[0\] = -1 is out of range/);
    throwsLike(() => b.copyBlocks(a, h, [0, 1] as unknown as Int32Array), TypeError, /copyBlocks: pairs must be an Int32Array/);
    throwsLike(() => b.copyBlocks({} as KVPool, h, new Int32Array(2)), TypeError, /copyBlocks: src must be a KVPool/);
    h.release();
    throwsLike(() => b.copyBlocks(a, h, new Int32Array([0, 0])), Error, /copyBlocks: dst has been released/);
    throwsLike(() => a.read({ firstBlock: 6, numBlocks: 3 }), RangeError, /readPool: blocks \[6, 9\) exceed the pool's 8 blocks/);
    throwsLike(() => a.write(new Uint16Array(10)), RangeError, /writePool: data has 10 elements, not a whole number of blocks of 4096/);
    a.release();
    odd.release();
  });

  test('backend selection', () => {
    throwsLike(() => createBackend({ backend: 'tpu' as 'cpu' }), RangeError, /backend must be 'cpu', 'cuda' or 'auto', got "tpu"/);
  });

  test('garbage arguments throw, never crash', () => {
    const b = be();
    const junk: unknown[] = [undefined, null, 0, -1, 1.5, NaN, 'x', {}, [], new Float64Array(4), Symbol('s'), () => 1];
    const h = b.handle as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const m of ['createPool', 'createTensor', 'append', 'decode', 'prefill', 'copyBlocks', 'write', 'read', 'readPool', 'writePool', 'liveBytes'])
      for (const x of junk)
        for (const y of [undefined, x]) {
          try {
            const r = h[m].call(b.handle, x, y, x, y) as { promise?: Promise<unknown>; release?: () => void };
            // A few combinations are valid (e.g. createTensor('fp16' ...) is not among them,
            // but be lenient): settle and free anything that was created.
            r?.promise?.catch(() => {});
            r?.release?.();
          } catch (err) {
            assert.instance(err, Error, `${m}: threw a non-Error`);
          }
        }
  });
});

forEachBackend('inputs outside the documented contract', (test, be) => {
  test('pool geometry, slots, scale and shapes', () => {
    const { b, pool, q, out } = fixture(be());
    throwsLike(() => b.createPool({ ...POOL, blockSize: 24 }), RangeError, /^createPool: blockSize 24 is not a power of two \(8, 16, 32, 64, 128, 256\)$/);
    const row = 2 * 64;
    const k = new Uint16Array(3 * row);
    throwsLike(() => b.appendKV({ pool, k, v: k, slotMapping: new Int32Array([0, -2, 1]) }), RangeError, /^append: slotMapping\[1\] = -2 is negative; only -1 marks a padding row$/);
    throwsLike(() => b.appendKV({ pool, k: new Uint16Array(4 * row), v: k, slotMapping: new Int32Array([0, 1, 2]) }), RangeError, /^appendKV: k has 512 elements but \[3\]\[2\]\[64\] needs 384; a typed-array input must match its shape exactly$/);
    const ok = { pool, q, out, blockTables: new Int32Array(8), tableStride: 4, contextLens: new Int32Array([40, 64]), numHeads: 8 };
    for (const scale of [-1, 0, 1e-50, 1e39])
      throwsLike(() => b.decode({ ...ok, scale }), RangeError, new RegExp(`^decode: scale must be a positive finite number \\(or left out for 1/sqrt\\(headDim\\)\\), got ${String(scale).replace('+', '\\+')}$`));
    throwsLike(() => b.decode({ ...ok, blockTables: new Int32Array(9) }), RangeError, /^decode: blockTables has 9 entries but batch 2 x tableStride 4 needs 8$/);
    throwsLike(() => b.decode({ ...ok, q: new Uint16Array(2 * 8 * 64 + 1) }), RangeError, /^decode: q has 1025 elements but \[2\]\[8\]\[64\] needs 1024; a typed-array input must match its shape exactly$/);
    throwsLike(() => b.prefill({ ...ok, q: new Uint16Array(3 * 8 * 64), qStartLoc: new Int32Array([0, 1, 2]) }), RangeError, /^prefill: q has 1536 elements but \[2\]\[8\]\[64\] needs 1024; a typed-array input must match its shape exactly$/);
    for (const t of [q, out]) t.release();
    pool.release();
  });

  test('a Tensor input larger than its shape is read from its start', async () => {
    const b = be();
    const pool = b.createPool({ ...POOL, dtype: 'fp32', numBlocks: 2 });
    const row = 2 * 64;
    const kv = Float32Array.from({ length: 16 * row }, (_, i) => Math.sin(i));
    await b.appendKV({ pool, k: kv, v: kv.map((x) => x * 0.5), slotMapping: Int32Array.from({ length: 16 }, (_, i) => i) });
    const qv = Float32Array.from({ length: 4 * 64 }, (_, i) => Math.cos(i));
    const big = b.tensor({ dtype: 'fp32', shape: [2 * 4 * 64] });
    await big.write(qv);
    const args = { pool, blockTables: new Int32Array([0]), tableStride: 1, contextLens: new Int32Array([16]), numHeads: 4 };
    const o1 = b.tensor({ dtype: 'fp32', shape: [1, 4, 64] });
    const o2 = b.tensor({ dtype: 'fp32', shape: [1, 4, 64] });
    await b.decode({ ...args, q: qv, out: o1 });
    await b.decode({ ...args, q: big, out: o2 });
    assert.equal(await o2.readFloat32(), await o1.readFloat32());
    for (const t of [big, o1, o2]) t.release();
    pool.release();
  });
});

forEachBackend('clear errors', (test, be) => {
  test('numbers print as the caller passed them; BigInts are named', () => {
    const b = be();
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 1e300 }), RangeError, /^createPool: numBlocks = 1e\+300 is out of range \[1, 2147483647\]$/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 1e-7 }), RangeError, /^createPool: numBlocks must be an integer, got 1e-7$/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 2 ** 64 }), RangeError, /^createPool: numBlocks = 18446744073709552000 is out of range/);
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 4n as unknown as number }), TypeError, /^createPool: numBlocks must be a number, got 4n$/);
    throwsLike(() => b.createPool({ ...POOL, dtype: Symbol('x') as unknown as 'fp16' }), TypeError, /^createPool: dtype must be 'fp32', 'fp16' or 'bf16', got a symbol$/);
    throwsLike(() => b.tensor({ dtype: 'fp16', shape: [4n as unknown as number] }), TypeError, /^tensor: shape\[0\] must be a number, got 4n$/);
    const pool = b.createPool(POOL);
    throwsLike(() => pool.read({ firstBlock: 1n as unknown as number }), TypeError, /^readPool: firstBlock must be a number, got 1n$/);
    throwsLike(() => pool.read({ numBlocks: 2 ** 70 }), RangeError, /^readPool: numBlocks = 1\.1805916207174113e\+21 is out of range \[0, 4\]$/);
    const t = b.tensor({ dtype: 'fp16', shape: [4] });
    throwsLike(() => t.write(new Uint16Array(1), { offset: -0.5 }), RangeError, /^write: offset must be an integer, got -0\.5$/);
    t.release();
    pool.release();
  });

  test('non-object arguments and options name the function and the argument', () => {
    const { b, pool, q, out } = fixture(be());
    const h = b.createPool({ ...POOL, tier: 'host' });
    throwsLike(() => b.appendKV(null as never), TypeError, /^appendKV: arguments must be an object, got null$/);
    throwsLike(() => b.decode(7 as never), TypeError, /^decode: arguments must be an object, got 7$/);
    throwsLike(() => b.prefill(undefined as never), TypeError, /^prefill: arguments must be an object, got undefined$/);
    throwsLike(() => b.appendKV({ pool: null } as never), TypeError, /^appendKV: pool must be a KVPool, got null$/);
    throwsLike(() => b.copyBlocks(pool, h, new Int32Array(0), null as never), TypeError, /^copyBlocks: options must be an object, got null$/);
    throwsLike(() => b.copyBlocks(pool, 'h' as never, new Int32Array(0)), TypeError, /^copyBlocks: dst must be a KVPool, got "h"$/);
    throwsLike(() => pool.read(null as never), TypeError, /^pool\.read: options must be an object, got null$/);
    throwsLike(() => pool.write(new Uint16Array(0), [] as never), TypeError, /^pool\.write: options must be an object, got an array$/);
    throwsLike(() => q.read(null as never), TypeError, /^read: options must be an object, got null$/);
    throwsLike(() => q.write(new Uint16Array(1), 5 as never), TypeError, /^write: options must be an object, got 5$/);
    throwsLike(() => b.tensor(null as never), TypeError, /^tensor: options must be an object, got null$/);
    throwsLike(() => b.tensorFrom(null as never, 'fp16'), TypeError, /^tensorFrom: data must be a Float32Array \(fp32\) or Uint16Array \(fp16\/bf16 bit patterns\), got null$/);
    throwsLike(() => createBackend(null as never), TypeError, /^createBackend: options must be an object, got null$/);
    throwsLike(() => b.decode({ pool, q, out, blockTables: null, tableStride: 1, contextLens: new Int32Array(0), numHeads: 8 } as never), TypeError, /^decode: blockTables must be an Int32Array, got null$/);
    for (const x of [q, out, h]) x.release();
    pool.release();
  });

  test('readFloat32 throws before anything is queued', () => {
    const b = be();
    const t = b.tensor({ dtype: 'fp16', shape: [4] });
    throwsLike(() => t.readFloat32({ waitFor: 'x' as never }), TypeError, /^read: waitFor must be an array of Work, got "x"$/);
    t.release();
    throwsLike(() => t.readFloat32(), Error, /^read: tensor has been released$/);
  });

  test('typed arrays over a SharedArrayBuffer are accepted and read like any other', async () => {
    const b = be();
    const shared = <T extends Float32Array | Uint16Array>(C: { new (buf: SharedArrayBuffer, off: number, len: number): T; BYTES_PER_ELEMENT: number }, src: ArrayLike<number>): T => {
      // At an offset, so the view's own start is what must be read.
      const a = new C(new SharedArrayBuffer((src.length + 3) * C.BYTES_PER_ELEMENT), 3 * C.BYTES_PER_ELEMENT, src.length);
      a.set(src);
      return a;
    };
    const pool = b.createPool({ ...POOL, dtype: 'fp32', numBlocks: 2 });
    const row = 2 * 64;
    const kv = Float32Array.from({ length: 16 * row }, (_, i) => Math.sin(i));
    const slots = Int32Array.from({ length: 16 }, (_, i) => i);
    await b.appendKV({ pool, k: shared(Float32Array, kv), v: shared(Float32Array, kv), slotMapping: slots });
    const image = await pool.read({ firstBlock: 0, numBlocks: 1 });
    const plain = b.createPool({ ...POOL, dtype: 'fp32', numBlocks: 2 });
    await b.appendKV({ pool: plain, k: kv, v: kv, slotMapping: slots });
    assert.equal(image, await plain.read({ firstBlock: 0, numBlocks: 1 }));
    await plain.write(shared(Float32Array, image), { firstBlock: 1 });
    assert.equal(await plain.read({ firstBlock: 1, numBlocks: 1 }), image);
    const qv = Float32Array.from({ length: 4 * 64 }, (_, i) => Math.cos(i));
    const args = { pool, blockTables: new Int32Array([0]), tableStride: 1, contextLens: new Int32Array([16]), numHeads: 4 };
    const o1 = b.tensor({ dtype: 'fp32', shape: [1, 4, 64] });
    const o2 = b.tensor({ dtype: 'fp32', shape: [1, 4, 64] });
    await b.decode({ ...args, q: qv, out: o1 });
    await b.decode({ ...args, q: shared(Float32Array, qv), out: o2 });
    assert.equal(await o2.read(), await o1.read());
    // Prefill against prefill: its kernel need not round like decode's.
    await b.prefill({ ...args, q: qv, out: o1, qStartLoc: new Int32Array([0, 1]) });
    await b.prefill({ ...args, q: shared(Float32Array, qv), out: o2, qStartLoc: new Int32Array([0, 1]) });
    assert.equal(await o2.read(), await o1.read());
    const h = b.tensorFrom(shared(Uint16Array, [1, 2, 3, 4]), 'fp16', [4]);
    assert.equal([...((await h.read()) as Uint16Array)], [1, 2, 3, 4]);
    await h.write(shared(Uint16Array, [9]), { offset: 2 });
    assert.equal([...((await h.read()) as Uint16Array)], [1, 2, 9, 4]);
    for (const t of [o1, o2, h]) t.release();
    pool.release();
    plain.release();
  });
});

forEachBackend('native entry points stand on their own', (test, be) => {
  test('a waitFor element getter that releases the pool', async () => {
    const b = be();
    const pool = b.createPool(POOL);
    const first = pool.write(new Uint16Array(pool.layout.blockStride).fill(7));
    const raw = b.handle as unknown as Record<string, (...a: unknown[]) => { promise: Promise<unknown> }>;
    // A real event to wait on, reached through the raw handle like the getter is.
    const dep = raw.readPool.call(b.handle, pool.handle, 0, 1);
    // The public API copies waitFor first; pool.handle lets a caller skip that.
    const releasing = (p: { release(): void }): unknown[] => {
      const list: unknown[] = [];
      Object.defineProperty(list, 0, { enumerable: true, get: () => (p.release(), dep) });
      return list;
    };
    const r = raw.readPool.call(b.handle, pool.handle, 0, 1, releasing(pool));
    const bytes = new Uint16Array((await r.promise) as ArrayBuffer);
    assert.is(bytes[0], 7);
    assert.ok(pool.released);
    const pool2 = b.createPool(POOL);
    await raw.writePool.call(b.handle, pool2.handle, 0, new Uint16Array(pool2.layout.blockStride), releasing(pool2)).promise;
    await first;
    assert.is(b.liveBytes('device'), 0);
  });

  // V8's receiver check answers first for prototype methods ("Illegal invocation"); the
  // binding's type tags stand behind it (and behind every argument).
  test('methods called on the wrong object throw a TypeError', () => {
    const wrongThis = /^(Illegal invocation|kvcake: a \w+ method was called on an object that is not a \w+)$/;
    const b = be();
    const pool = b.createPool(POOL);
    const t = b.tensor({ dtype: 'fp16', shape: [4] });
    const ev = (b.handle as unknown as { read: (t: unknown) => { ready: () => boolean; promise: Promise<unknown> } }).read(t.handle);
    const proto = (x: object) => Object.getPrototypeOf(x) as Record<string, unknown>;
    const getter = (x: object, k: string) => Object.getOwnPropertyDescriptor(proto(x), k)!.get!;
    throwsLike(() => (proto(pool.handle).release as () => void).call(t.handle), TypeError, wrongThis);
    throwsLike(() => (ev.ready as () => boolean).call(b.handle), TypeError, wrongThis);
    throwsLike(() => getter(t.handle, 'numel').call(pool.handle), TypeError, wrongThis);
    throwsLike(() => (proto(b.handle).liveBytes as (x: string) => number).call(Object.create(proto(b.handle)), 'device'), TypeError, wrongThis);
    const fake = Object.create(proto(pool.handle));
    throwsLike(() => b.handle.copyBlocks(fake, pool.handle, new Int32Array(0)), TypeError, /^copyBlocks: src must be a Pool created by createPool, got an object$/);
    const ctor = proto(pool.handle).constructor as new () => object;
    throwsLike(() => b.handle.copyBlocks(new ctor() as never, pool.handle, new Int32Array(0)), TypeError, /^copyBlocks: src must be a Pool created by createPool$/);
    ev.promise.catch(() => {});
    t.release();
    pool.release();
  });
});

forEachBackend('device capacity', (test, be, kind) => {
  test('allocation beyond the device tier capacity throws a clear Error', () => {
    if (kind !== 'cpu') return; // the capacity option belongs to the CPU backend
    const b = createBackend({ backend: 'cpu', deviceCapacityBytes: 1 << 20 });
    const p = b.createPool({ ...POOL, numBlocks: 64 }); // 64 x 8 KiB = 512 KiB
    throwsLike(() => b.createPool({ ...POOL, numBlocks: 65 }), Error, /cannot allocate a pool of 532480 bytes in the device tier: 524288 of its 1048576 bytes are in use/);
    const h = b.createPool({ ...POOL, tier: 'host', numBlocks: 200 }); // host tier has no such limit
    p.release();
    const p2 = b.createPool({ ...POOL, numBlocks: 128 });
    assert.is(b.liveBytes('device'), 1 << 20);
    p2.release();
    h.release();
    void be;
  });
});
