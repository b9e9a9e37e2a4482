// Malformed calls into every native entry point, straight on the handles (as a caller who
// reaches past lib/backend.ts would) and through the public API: a valid call with one to
// three of its arguments or fields replaced by anything (wrong types, edge numbers,
// BigInts, Symbols, released or foreign pools, getters that release the pool or throw,
// Proxies, detached or shared typed arrays), or deleted. Each must return and settle, or
// throw an Error that names the function; a valid call (no change) must succeed. At the
// end every op has settled and nothing is left allocated.
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createBackend, type Backend, type KVPool, type Tensor } from '../../lib/index.js';
import { native } from '../../lib/native.js';
import { check, count, namedError, report } from './harness.js';
import { Ctx, recipe, Sentinel, type Recipe } from './values.js';

const be = createBackend({ backend: 'cpu' });
const other = createBackend({ backend: 'cpu' });

// A change to a valid call: replace or delete an argument or a field (`value`), or nudge a
// numeric field or one element of an Int32Array field by a little or to an edge value, which
// is what reaches the range checks behind the type checks.
interface Mutation {
  at: number;
  field: boolean;
  del: boolean;
  value: Recipe;
  nudge: { elem: number; by: number } | { elem: number; to: number } | null;
}
const NUDGE_TO = [-2, -1, 0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 256, 4096, 2 ** 24, 2 ** 31 - 1, -(2 ** 31)];
const nudge = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.record({ elem: fc.nat(8), by: fc.integer({ min: -3, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ elem: fc.nat(8), to: fc.constantFrom(...NUDGE_TO) }) },
);
const mutations = fc.array(fc.record({ at: fc.nat(40), field: fc.boolean(), del: fc.constantFrom(false, false, false, true), value: recipe, nudge }), { maxLength: 3 });

// Without instanceof: a Proxy's getPrototypeOf trap would throw here, in the test.
function nudgeable(v: unknown): boolean {
  return typeof v === 'number' || (ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === '[object Int32Array]');
}

function nudged(v: unknown, n: NonNullable<Mutation['nudge']>): unknown {
  const step = (x: number) => ('to' in n ? n.to : x + n.by);
  if (typeof v !== 'number') {
    const src = v as Int32Array;
    const a = src.length > 0 ? Int32Array.from(src) : Int32Array.of(0);
    const i = n.elem % a.length;
    a[i] = step(a[i]);
    return 'to' in n && n.elem >= a.length ? Int32Array.from([...a, n.to]) : a;
  }
  return step(v);
}

function mutate(args: unknown[], ms: Mutation[], ctx: Ctx): unknown[] {
  const out = [...args];
  for (const m of ms) {
    const first = out[0];
    let o: Record<string, unknown> | undefined;
    if (m.field && typeof first === 'object' && first !== null && !Array.isArray(first) && !ArrayBuffer.isView(first)) {
      try {
        // Copied by descriptor: a spread would run a trap getter here, in the test.
        o = Object.defineProperties({}, Object.getOwnPropertyDescriptors(first)) as Record<string, unknown>;
      } catch (err) {
        if (!(err instanceof Sentinel)) throw err; // a Proxy: change a position instead
      }
    }
    if (o) {
      const keys = Object.keys(o);
      const key = m.at < keys.length * 2 ? keys[m.at % keys.length] : ['scale', 'waitFor', 'extra'][m.at % 3];
      const cur = m.nudge ? Object.getOwnPropertyDescriptor(o, key)?.value : undefined;
      const value = m.nudge && nudgeable(cur) ? nudged(cur, m.nudge) : ctx.value(m.value);
      if (m.del) delete o[key];
      else Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
      out[0] = o;
    } else {
      const i = m.at % (out.length + 1);
      const cur = out[i];
      if (m.del) out.length = Math.min(out.length, i);
      else out[i] = m.nudge && nudgeable(cur) ? nudged(cur, m.nudge) : ctx.value(m.value);
    }
  }
  return out;
}

type Outcome = 'ok' | 'threw' | 'rejected' | 'sentinel';

async function outcome(run: () => unknown, prefixes: readonly string[], what: string): Promise<Outcome> {
  let r: unknown;
  try {
    r = run();
  } catch (err) {
    if (err instanceof Sentinel) return 'sentinel';
    if (err instanceof TypeError && err.message === 'Illegal invocation') return 'threw';
    namedError(err, prefixes, what);
    return 'threw';
  }
  const settle = async (p: PromiseLike<unknown>): Promise<Outcome> => {
    try {
      await p;
      return 'ok';
    } catch (err) {
      namedError(err, prefixes, `${what} (rejected)`);
      return 'rejected';
    }
  };
  if (r instanceof Promise) return settle(r);
  if (typeof r === 'object' && r !== null) {
    const o = r as { promise?: Promise<unknown>; release?: () => void };
    if (o.promise instanceof Promise) return settle(o.promise);
    if (typeof o.release === 'function') o.release();
  }
  return 'ok';
}

// ---- on the native handles ------------------------------------------------------------

const RAW_OPS = ['createPool', 'createTensor', 'append', 'decode', 'prefill', 'copyBlocks', 'write', 'read', 'readPool', 'writePool', 'liveBytes'] as const;
type RawOp = (typeof RAW_OPS)[number];
const RAW_PREFIXES = ['createPool', 'tensor', 'append', 'decode', 'prefill', 'copyBlocks', 'write', 'read', 'readPool', 'writePool', 'liveBytes', 'kvcake', 'this Backend'];

function rawBase(op: RawOp, ctx: Ctx): unknown[] {
  const L = ctx.live;
  const t = (n: number) => ctx.tensor(be, 'fp16', n).handle;
  const attention = () => ({ pool: L.pool, q: t(2 * 4 * 64), out: t(2 * 4 * 64), blockTables: Int32Array.of(0, 1, 2, 3), tableStride: 2, contextLens: Int32Array.of(20, 32), numHeads: 4 });
  switch (op) {
    case 'createPool':
      return [{ numBlocks: 2, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16', tier: 'device' }];
    case 'createTensor':
      return ['fp16', 8, 'device'];
    case 'append':
      return [{ pool: L.pool, k: t(3 * 128), v: t(3 * 128), slotMapping: Int32Array.of(0, 1, 2) }, undefined];
    case 'decode':
      return [attention(), undefined];
    case 'prefill':
      return [{ ...attention(), qStartLoc: Int32Array.of(0, 1, 2) }, undefined];
    case 'copyBlocks':
      return [L.pool, L.hostPool, Int32Array.of(0, 0, 1, 1), undefined];
    case 'write':
      return [L.t16, new Uint16Array(4), 0, undefined];
    case 'read':
      return [L.t16, undefined];
    case 'readPool':
      return [L.pool, 0, 2, undefined];
    case 'writePool':
      return [L.pool, 1, new Uint16Array(4096), undefined];
    case 'liveBytes':
      return ['device'];
  }
}

test('native handles: malformed arguments to every op', async () => {
  await check(
    'native handles: malformed arguments',
    fc.record({ op: fc.constantFrom(...RAW_OPS), ms: mutations }),
    async ({ op, ms }) => {
      const ctx = new Ctx(be, other);
      try {
        const args = mutate(rawBase(op, ctx), ms, ctx);
        const fn = (be.handle as unknown as Record<string, (...a: unknown[]) => unknown>)[op];
        count('native handles');
        const o = await outcome(() => fn.apply(be.handle, args), RAW_PREFIXES, `${op}(${ms.length} changes)`);
        if (ms.length === 0) assert.is(o, 'ok', `a valid ${op} call must succeed`);
      } finally {
        await ctx.close();
      }
    },
    4000,
  );
});

test('native handles: every method and accessor on any receiver, with any arguments', async () => {
  const ctx0 = new Ctx(be, other);
  const protos = (['pool', 't16', 'event', 'backendHandle'] as const).map((k) => Object.getPrototypeOf(ctx0.live[k]) as object);
  const members: { name: string; call: (self: unknown, args: unknown[]) => unknown }[] = [];
  for (const proto of protos) {
    for (const [name, d] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
      if (name === 'constructor') continue;
      const cls = (proto as { constructor: { name: string } }).constructor.name;
      if (typeof d.value === 'function') members.push({ name: `${cls}.${name}`, call: (self, args) => Reflect.apply(d.value, self, args) });
      if (d.get) members.push({ name: `${cls}.${name} (get)`, call: (self) => Reflect.apply(d.get!, self, []) });
    }
  }
  await ctx0.close();
  assert.ok(members.length >= 25, `found ${members.length} native members`);
  await check(
    'native handles: receivers',
    fc.record({ member: fc.nat(members.length - 1), self: recipe, args: fc.array(recipe, { maxLength: 4 }) }),
    async ({ member, self, args }) => {
      const ctx = new Ctx(be, other);
      try {
        const m = members[member];
        count('native receivers');
        await outcome(() => m.call(ctx.value(self), args.map((a) => ctx.value(a))), RAW_PREFIXES, m.name);
      } finally {
        await ctx.close();
      }
    },
    1500,
  );
});

test('addon entry points: createBackend and cudaInfo with anything', async () => {
  const addon = native() as unknown as Record<string, (...a: unknown[]) => unknown>;
  await check(
    'addon entry points',
    fc.record({ fn: fc.constantFrom('createBackend', 'cudaInfo'), args: fc.array(recipe, { maxLength: 3 }) }),
    async ({ fn, args }) => {
      const ctx = new Ctx(be, other);
      try {
        count('addon');
        // A backend created here is dropped at once: its threads are joined when it is collected.
        await outcome(() => addon[fn](...args.map((a) => ctx.value(a))), ['createBackend', 'kvcake', 'cuda backend unavailable', 'this kvcake binary'], fn);
      } finally {
        await ctx.close();
      }
    },
    300,
  );
});

// ---- through the public API ------------------------------------------------------------

const API_OPS = ['appendKV', 'decode', 'prefill', 'copyBlocks', 'createPool', 'tensor', 'tensorFrom', 'pool.read', 'pool.write', 'tensor.read', 'tensor.write', 'tensor.readFloat32', 'liveBytes'] as const;
type ApiOp = (typeof API_OPS)[number];
const API_PREFIXES = ['appendKV', 'append', 'decode', 'prefill', 'copyBlocks', 'createPool', 'tensor', 'tensorFrom', 'pool.read', 'pool.write', 'readPool', 'writePool', 'read', 'write', 'liveBytes', 'kvcake'];

function apiCall(op: ApiOp, ctx: Ctx, ms: Mutation[]): () => unknown {
  const pool = ctx.live.poolWrapper as KVPool;
  const t16 = ctx.live.tensorWrapper as Tensor;
  const T = (n: number) => ctx.tensor(be, 'fp16', n);
  const attention = () => ({ pool, q: new Uint16Array(2 * 4 * 64), out: T(2 * 4 * 64), blockTables: Int32Array.of(0, 1, 2, 3), tableStride: 2, contextLens: Int32Array.of(20, 32), numHeads: 4 });
  const m = (args: unknown[]) => mutate(args, ms, ctx);
  const b = be as unknown as Record<string, (...a: unknown[]) => unknown>;
  switch (op) {
    case 'appendKV': {
      const a = m([{ pool, k: new Uint16Array(3 * 128), v: T(3 * 128), slotMapping: Int32Array.of(0, -1, 2) }]);
      return () => b.appendKV(...a);
    }
    case 'decode': {
      const a = m([attention()]);
      return () => b.decode(...a);
    }
    case 'prefill': {
      const a = m([{ ...attention(), qStartLoc: Int32Array.of(0, 1, 2) }]);
      return () => b.prefill(...a);
    }
    case 'copyBlocks': {
      const a = m([pool, ctx.pool(be, { tier: 'host', numBlocks: 4, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' }), Int32Array.of(0, 3), {}]);
      return () => b.copyBlocks(...a);
    }
    case 'createPool': {
      const a = m([{ numBlocks: 2, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16', tier: 'host' }]);
      return () => b.createPool(...a);
    }
    case 'tensor': {
      const a = m([{ dtype: 'bf16', shape: [2, 3] }]);
      return () => b.tensor(...a);
    }
    case 'tensorFrom': {
      const a = m([new Float32Array(6), 'fp32', [2, 3]]);
      return () => b.tensorFrom(...a);
    }
    case 'pool.read': {
      const a = m([{ firstBlock: 1, numBlocks: 2 }]);
      return () => (pool.read as (...x: unknown[]) => unknown).apply(pool, a);
    }
    case 'pool.write': {
      const a = m([new Uint16Array(4096), { firstBlock: 3 }]);
      return () => (pool.write as (...x: unknown[]) => unknown).apply(pool, a);
    }
    case 'tensor.read': {
      const a = m([{}]);
      return () => (t16.read as (...x: unknown[]) => unknown).apply(t16, a);
    }
    case 'tensor.write': {
      const a = m([new Uint16Array(2), { offset: 510 }]);
      return () => (t16.write as (...x: unknown[]) => unknown).apply(t16, a);
    }
    case 'tensor.readFloat32': {
      const a = m([{ waitFor: [] }]);
      return () => (t16.readFloat32 as (...x: unknown[]) => unknown).apply(t16, a);
    }
    case 'liveBytes': {
      const a = m(['host']);
      return () => b.liveBytes(...a);
    }
  }
}

test('public API: malformed arguments to every op', async () => {
  await check(
    'public API: malformed arguments',
    fc.record({ op: fc.constantFrom(...API_OPS), ms: mutations }),
    async ({ op, ms }) => {
      const ctx = new Ctx(be, other);
      try {
        const run = apiCall(op, ctx, ms);
        count('public API');
        const o = await outcome(run, API_PREFIXES, `${op}(${ms.length} changes)`);
        if (ms.length === 0) assert.is(o, 'ok', `a valid ${op} call must succeed`);
      } finally {
        await ctx.close();
      }
    },
    3000,
  );
});

test('after the malformed calls: every op settled, nothing left allocated', async () => {
  // Temporaries of ops that threw are released with them; give queued frees a moment.
  for (let i = 0; i < 50 && be.liveBytes('device') + be.liveBytes('host') > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.is(be.liveBytes('device'), 0);
  assert.is(be.liveBytes('host'), 0);
  assert.is(other.liveBytes('device') + other.liveBytes('host'), 0);
  report();
});

test.run();
