// Recipes for JS values a caller might pass, as plain data fast-check can generate, shrink
// and print, and their materialization into real values against a context of live native
// objects (pools, tensors, events of this backend and of another one, released ones, fakes
// with the right prototype). Objects may carry getters that release a pool mid-call or
// throw, arrays may carry such getters at an index, typed arrays may sit on a
// SharedArrayBuffer, at an offset, or be detached.
import fc from 'fast-check';
import type { Backend, KVPool, Tensor } from '../../lib/index.js';

/** What a getter throws: passes through the library untouched, so it is expected. */
export class Sentinel extends Error {}

export const EDGE_NUMBERS = [0, -0, 1, -1, 2, 3, 7, 16, 64, 1.5, -0.5, 1e-7, NaN, Infinity, -Infinity, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e300, -1e300, Number.MIN_VALUE];
export const STRINGS = ['', 'fp16', 'fp32', 'bf16', 'fp8', 'device', 'host', 'gpu', 'cpu', 'cuda', 'auto', 'x'.repeat(100), '\u00e9\u{1F600}'];
const LIVE = ['pool', 'hostPool', 'pool32', 'poolBig', 't16', 't32', 'tBf16', 'tSmall', 'event', 'foreignPool', 'foreignTensor', 'foreignEvent', 'releasedPool', 'releasedTensor', 'fakePool', 'fakeTensor', 'bareCtorPool', 'backendHandle', 'poolWrapper', 'tensorWrapper', 'work'] as const;
export type LiveName = (typeof LIVE)[number];
const TYPED = ['Int32Array', 'Uint16Array', 'Float32Array', 'Float64Array', 'Uint8Array', 'Int16Array', 'BigInt64Array'] as const;
export const KEYS = ['pool', 'q', 'k', 'v', 'out', 'blockTables', 'tableStride', 'contextLens', 'numHeads', 'scale', 'slotMapping', 'qStartLoc', 'numBlocks', 'numKvHeads', 'headDim', 'blockSize', 'dtype', 'tier', 'waitFor', 'firstBlock', 'offset', 'shape', 'backend', 'device', 'deviceCapacityBytes'] as const;

export type Recipe =
  | { k: 'num'; v: number }
  | { k: 'str'; v: string }
  | { k: 'big'; v: bigint }
  | { k: 'const'; v: 'undefined' | 'null' | 'true' | 'false' | 'symbol' | 'function' | 'proxy' | 'promise' | 'date' | 'arraybuffer' }
  | { k: 'typed'; type: (typeof TYPED)[number]; values: number[]; shared: boolean; offset: number; detached: boolean }
  | { k: 'live'; what: LiveName }
  | { k: 'obj'; entries: [string, Recipe][]; trap?: { key: string; act: 'release' | 'throw' } }
  | { k: 'arr'; items: Recipe[]; trapAt?: { index: number; act: 'release' | 'throw' } };

const leaf: fc.Arbitrary<Recipe> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(fc.constantFrom(...EDGE_NUMBERS), fc.integer({ min: -4, max: 80 }), fc.double(), fc.integer()).map((v) => ({ k: 'num' as const, v })) },
  { weight: 2, arbitrary: fc.oneof(fc.constantFrom(...STRINGS), fc.string({ maxLength: 8 })).map((v) => ({ k: 'str' as const, v })) },
  { weight: 1, arbitrary: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((v) => ({ k: 'big' as const, v })) },
  { weight: 2, arbitrary: fc.constantFrom('undefined', 'null', 'true', 'false', 'symbol', 'function', 'proxy', 'promise', 'date', 'arraybuffer').map((v) => ({ k: 'const' as const, v: v as Extract<Recipe, { k: 'const' }>['v'] })) },
  {
    weight: 3,
    arbitrary: fc
      .record({
        type: fc.constantFrom(...TYPED),
        values: fc.array(fc.integer({ min: -3, max: 20 }), { maxLength: 40 }),
        shared: fc.boolean(),
        offset: fc.nat(3),
        detached: fc.constantFrom(false, false, false, true),
      })
      .map((r) => ({ k: 'typed' as const, ...r })),
  },
  { weight: 4, arbitrary: fc.constantFrom(...LIVE).map((what) => ({ k: 'live' as const, what })) },
);

export const recipe: fc.Arbitrary<Recipe> = fc.letrec<{ r: Recipe }>((tie) => ({
  r: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 6, arbitrary: leaf },
    {
      weight: 1,
      arbitrary: fc
        .record({
          entries: fc.array(fc.tuple(fc.constantFrom(...KEYS), tie('r')), { maxLength: 4 }),
          trap: fc.option(fc.record({ key: fc.constantFrom(...KEYS), act: fc.constantFrom('release' as const, 'throw' as const) }), { nil: undefined }),
        })
        .map((o) => ({ k: 'obj' as const, ...o })),
    },
    {
      weight: 1,
      arbitrary: fc
        .record({
          items: fc.array(tie('r'), { maxLength: 3 }),
          trapAt: fc.option(fc.record({ index: fc.nat(2), act: fc.constantFrom('release' as const, 'throw' as const) }), { nil: undefined }),
        })
        .map((a) => ({ k: 'arr' as const, ...a })),
    },
  ),
})).r;

/** The live objects a run's recipes refer to. Everything allocated is released by close(). */
export class Ctx {
  readonly live: Record<string, unknown> = {};
  readonly pools: KVPool[] = [];
  readonly tensors: Tensor[] = [];
  readonly pending: Promise<unknown>[] = [];

  constructor(
    readonly be: Backend,
    readonly other: Backend,
  ) {
    const geo = { numBlocks: 4, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' } as const;
    const pool = this.pool(be, { tier: 'device', ...geo });
    const released = this.pool(be, { tier: 'device', ...geo });
    released.release();
    const t16 = this.tensor(be, 'fp16', 2 * 4 * 64);
    const releasedT = this.tensor(be, 'fp16', 16);
    releasedT.release();
    const foreignPool = this.pool(other, { tier: 'device', ...geo });
    const proto = (x: object) => Object.getPrototypeOf(x) as object;
    const work = pool.read({ firstBlock: 0, numBlocks: 1 });
    this.pending.push(work);
    const rawEvent = (be.handle as unknown as { read(t: unknown): { promise: Promise<unknown> } }).read(t16.handle);
    this.pending.push(rawEvent.promise);
    const foreignEvent = (other.handle as unknown as { read(t: unknown): { promise: Promise<unknown> } }).read(this.tensor(other, 'fp16', 8).handle);
    this.pending.push(foreignEvent.promise);
    Object.assign(this.live, {
      pool: pool.handle,
      hostPool: this.pool(be, { tier: 'host', ...geo }).handle,
      pool32: this.pool(be, { tier: 'device', ...geo, dtype: 'fp32' }).handle,
      poolBig: this.pool(be, { tier: 'device', ...geo, numBlocks: 8, numKvHeads: 4, headDim: 128 }).handle,
      t16: t16.handle,
      t32: this.tensor(be, 'fp32', 2 * 4 * 64).handle,
      tBf16: this.tensor(be, 'bf16', 2 * 4 * 64).handle,
      tSmall: this.tensor(be, 'fp16', 3).handle,
      event: rawEvent,
      foreignPool: foreignPool.handle,
      foreignTensor: this.tensor(other, 'fp16', 2 * 4 * 64).handle,
      foreignEvent,
      releasedPool: released.handle,
      releasedTensor: releasedT.handle,
      fakePool: Object.create(proto(pool.handle)),
      fakeTensor: Object.create(proto(t16.handle)),
      bareCtorPool: new (proto(pool.handle).constructor as new () => object)(),
      backendHandle: be.handle,
      poolWrapper: pool,
      tensorWrapper: t16,
      work,
    });
  }

  pool(b: Backend, o: Parameters<Backend['createPool']>[0]): KVPool {
    const p = b.createPool(o);
    this.pools.push(p);
    return p;
  }

  tensor(b: Backend, dtype: 'fp16' | 'fp32' | 'bf16', numel: number): Tensor {
    const t = b.tensor({ dtype, shape: [numel] });
    this.tensors.push(t);
    return t;
  }

  /** Releases what this run allocated and waits for its ops. */
  async close(): Promise<void> {
    for (const p of this.pools) p.release();
    for (const t of this.tensors) t.release();
    await Promise.allSettled(this.pending);
  }

  /** A getter's side effect: release the run's main pool (what a hostile getter would do). */
  private act(act: 'release' | 'throw'): void {
    if (act === 'throw') throw new Sentinel('thrown by a getter');
    for (const p of this.pools) p.release();
  }

  value(r: Recipe): unknown {
    switch (r.k) {
      case 'num':
      case 'str':
      case 'big':
        return r.v;
      case 'const':
        switch (r.v) {
          case 'undefined':
            return undefined;
          case 'null':
            return null;
          case 'true':
            return true;
          case 'false':
            return false;
          case 'symbol':
            return Symbol('fuzz');
          case 'function':
            return () => 1;
          case 'proxy':
            return new Proxy(
              {},
              {
                get: () => {
                  throw new Sentinel('proxy get');
                },
                has: () => {
                  throw new Sentinel('proxy has');
                },
                ownKeys: () => {
                  throw new Sentinel('proxy ownKeys');
                },
                getPrototypeOf: () => {
                  throw new Sentinel('proxy getPrototypeOf');
                },
              },
            );
          case 'promise':
            return Promise.resolve(1);
          case 'date':
            return new Date(0);
          case 'arraybuffer':
            return new ArrayBuffer(16);
        }
        break;
      case 'typed': {
        const C = globalThis[r.type] as unknown as { new (b: ArrayBufferLike, off: number, len: number): ArrayLike<number>; BYTES_PER_ELEMENT: number };
        const bytes = (r.values.length + r.offset) * C.BYTES_PER_ELEMENT;
        const buf = r.shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
        const a = new C(buf, r.offset * C.BYTES_PER_ELEMENT, r.values.length);
        r.values.forEach((x, i) => ((a as { [i: number]: number | bigint })[i] = r.type === 'BigInt64Array' ? BigInt(x) : x));
        if (r.detached && !r.shared) structuredClone(buf, { transfer: [buf as ArrayBuffer] });
        return a;
      }
      case 'live':
        return this.live[r.what];
      case 'obj': {
        const o: Record<string, unknown> = {};
        for (const [key, v] of r.entries) o[key] = this.value(v);
        if (r.trap) {
          const { key, act } = r.trap;
          const inner = o[key];
          Object.defineProperty(o, key, {
            enumerable: true,
            configurable: true,
            get: () => {
              this.act(act);
              return inner;
            },
          });
        }
        return o;
      }
      case 'arr': {
        const a = r.items.map((x) => this.value(x));
        if (r.trapAt && r.trapAt.index < a.length) {
          const { index, act } = r.trapAt;
          const inner = a[index];
          Object.defineProperty(a, index, {
            enumerable: true,
            configurable: true,
            get: () => {
              this.act(act);
              return inner;
            },
          });
        }
        return a;
      }
    }
    throw new Error(`unknown recipe ${JSON.stringify(r)}`);
  }
}
