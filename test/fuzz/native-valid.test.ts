// Valid calls with generated shapes, checked against the independent reference: appendKV
// and copyBlocks bit-exact against a JS model of the pool, decode and prefill within the
// reference's tolerance (test/util/paged.ts: compare), tensor and pool reads and writes at
// any offset bit-exact. Inputs come as Tensors or typed arrays, over an ArrayBuffer or a
// SharedArrayBuffer, at any offset.
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createBackend, decodeValues, type DType, type KVPool, type Tensor, type TensorData } from '../../lib/index.js';
import { refDecode, refPrefill, toStorage } from '../reference.js';
import { buildPaged, compare, elementOffset, randomValues } from '../util/paged.js';
import { Rng } from '../util/rng.js';
import { check, count, report } from './harness.js';

const be = createBackend({ backend: 'cpu' });

// Every block size, but blocks of at most 64 Ki elements, so pools stay small enough for the
// JS model to fill and compare quickly.
const geometry = fc
  .record({
    dtype: fc.constantFrom<DType>('fp32', 'fp16', 'bf16'),
    numKvHeads: fc.integer({ min: 1, max: 4 }),
    headDim: fc.constantFrom(64, 80, 96, 128, 256),
    blockSize: fc.constantFrom(8, 16, 32, 64, 128, 256),
  })
  .map((g) => {
    let blockSize = g.blockSize;
    while (blockSize > 8 && 2 * g.numKvHeads * g.headDim * blockSize > 65536) blockSize /= 2;
    return { ...g, blockSize };
  });
type Geo = { dtype: DType; numKvHeads: number; headDim: number; blockSize: number };
const blockElems = (g: Geo) => 2 * g.numKvHeads * g.blockSize * g.headDim;

/** Random storage values: fp32 floats, or finite fp16/bf16 bit patterns. */
function randomStorage(rng: Rng, dtype: DType, n: number): TensorData {
  if (dtype === 'fp32') return Float32Array.from({ length: n }, () => rng.sym(4));
  const maxExp = dtype === 'fp16' ? 0x7bff : 0x7f7f; // largest finite magnitude
  return Uint16Array.from({ length: n }, () => rng.int(0, maxExp) | (rng.next() < 0.5 ? 0x8000 : 0));
}

/** The same values, as the caller may hand them over: a copy over a SharedArrayBuffer, at an offset. */
function shared<T extends TensorData>(a: T, offset: number): T {
  const C = a.constructor as { new (b: SharedArrayBuffer, o: number, n: number): T; BYTES_PER_ELEMENT: number };
  const s = new C(new SharedArrayBuffer((a.length + offset) * C.BYTES_PER_ELEMENT), offset * C.BYTES_PER_ELEMENT, a.length);
  s.set(a as never);
  return s;
}

type InputKind = 'array' | 'shared' | 'tensor';
const inputKind = fc.constantFrom<InputKind>('array', 'shared', 'tensor');

function input(a: TensorData, dtype: DType, kind: InputKind, temps: Tensor[]): TensorData | Tensor {
  if (kind === 'array') return a;
  if (kind === 'shared') return shared(a, 1 + (a.length % 3));
  const t = be.tensorFrom(a, dtype);
  count('valid native', 2);
  temps.push(t);
  return t;
}

function sameBits(got: TensorData, want: TensorData, what: string): void {
  assert.is(got.length, want.length, `${what}: length`);
  const g = new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
  const w = new Uint8Array(want.buffer, want.byteOffset, want.byteLength);
  for (let i = 0; i < w.length; i++) if (g[i] !== w[i]) assert.unreachable(`${what}: byte ${i} is ${g[i]}, want ${w[i]}`);
}

async function withPools<T>(fn: (track: (p: KVPool) => KVPool, temps: Tensor[]) => Promise<T>): Promise<T> {
  const pools: KVPool[] = [];
  const temps: Tensor[] = [];
  try {
    return await fn((p) => (pools.push(p), p), temps);
  } finally {
    for (const p of pools) p.release();
    for (const t of temps) t.release();
  }
}

test('appendKV: rows land in their slots, bit-exact, padding rows skipped', async () => {
  await check(
    'valid appendKV',
    fc.record({ geo: geometry, numBlocks: fc.integer({ min: 1, max: 6 }), rows: fc.integer({ min: 1, max: 48 }), seed: fc.integer(), kind: inputKind, pad: fc.double({ min: 0, max: 0.5, noNaN: true }) }),
    ({ geo, numBlocks, rows, seed, kind, pad }) =>
      withPools(async (track, temps) => {
        const rng = new Rng(seed);
        const pool = track(be.createPool({ tier: 'device', numBlocks, ...geo }));
        const image = randomStorage(rng, geo.dtype, numBlocks * blockElems(geo));
        await pool.write(image);
        const numSlots = numBlocks * geo.blockSize;
        const free = rng.shuffle(Array.from({ length: numSlots }, (_, i) => i));
        const slots = Int32Array.from({ length: rows }, (_, i) => (i < free.length && rng.next() >= pad ? free[i] : -1));
        const row = geo.numKvHeads * geo.headDim;
        const k = randomStorage(rng, geo.dtype, rows * row);
        const v = randomStorage(rng, geo.dtype, rows * row);
        await be.appendKV({ pool, k: input(k, geo.dtype, kind, temps), v: input(v, geo.dtype, kind, temps), slotMapping: slots });
        const want = image.slice();
        slots.forEach((s, i) => {
          if (s < 0) return;
          const block = Math.floor(s / geo.blockSize);
          for (let h = 0; h < geo.numKvHeads; h++) {
            const dst = (kv: number) => elementOffset(geo, block, kv, h, s % geo.blockSize);
            want.set(k.subarray((i * geo.numKvHeads + h) * geo.headDim, (i * geo.numKvHeads + h + 1) * geo.headDim), dst(0));
            want.set(v.subarray((i * geo.numKvHeads + h) * geo.headDim, (i * geo.numKvHeads + h + 1) * geo.headDim), dst(1));
          }
        });
        sameBits(await pool.read(), want, `appendKV ${JSON.stringify(geo)} rows ${rows}`);
        count('valid native', 5);
      }),
    120,
  );
});

test('copyBlocks: every pair moves whole blocks, bit-exact, any tiers, within one pool too', async () => {
  await check(
    'valid copyBlocks',
    fc.record({
      geo: geometry,
      nSrc: fc.integer({ min: 1, max: 8 }),
      nDst: fc.integer({ min: 1, max: 8 }),
      tiers: fc.tuple(fc.constantFrom('device' as const, 'host' as const), fc.constantFrom('device' as const, 'host' as const)),
      samePool: fc.boolean(),
      seed: fc.integer(),
    }),
    ({ geo, nSrc, nDst, tiers, samePool, seed }) =>
      withPools(async (track) => {
        const rng = new Rng(seed);
        const src = track(be.createPool({ tier: tiers[0], numBlocks: nSrc, ...geo }));
        const dst = samePool ? src : track(be.createPool({ tier: tiers[1], numBlocks: nDst, ...geo }));
        const srcImage = randomStorage(rng, geo.dtype, src.numBlocks * blockElems(geo));
        const dstImage = samePool ? srcImage : randomStorage(rng, geo.dtype, dst.numBlocks * blockElems(geo));
        await Promise.all([src.write(srcImage), samePool ? undefined : dst.write(dstImage)]);
        // Destinations distinct; within one pool, disjoint from the sources.
        const ids = rng.shuffle(Array.from({ length: dst.numBlocks }, (_, i) => i));
        const dsts = samePool ? ids.slice(0, Math.floor(ids.length / 2)) : ids.slice(0, rng.int(0, ids.length));
        const srcChoices = samePool ? ids.slice(dsts.length) : Array.from({ length: src.numBlocks }, (_, i) => i);
        const pairs = new Int32Array(dsts.length * 2);
        dsts.forEach((d, i) => {
          pairs[2 * i] = rng.pick(srcChoices);
          pairs[2 * i + 1] = d;
        });
        await be.copyBlocks(src, dst, pairs);
        const B = blockElems(geo);
        const want = dstImage.slice();
        for (let i = 0; i < dsts.length; i++) want.set(srcImage.subarray(pairs[2 * i] * B, (pairs[2 * i] + 1) * B), pairs[2 * i + 1] * B);
        sameBits(await dst.read(), want, `copyBlocks ${JSON.stringify(geo)} ${tiers.join('->')} pairs ${pairs.join(',')}`);
        if (!samePool) sameBits(await src.read(), srcImage, 'copyBlocks left its source alone');
        count('valid native', samePool ? 5 : 8);
      }),
    120,
  );
});

const attention = fc.record({
  geo: geometry,
  group: fc.constantFrom(1, 2, 3, 4),
  lens: fc.array(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 3 }),
  scale: fc.option(fc.double({ min: 0.01, max: 2, noNaN: true }), { nil: undefined }),
  spare: fc.integer({ min: 0, max: 3 }),
  extraColumns: fc.integer({ min: 0, max: 2 }),
  seed: fc.integer(),
  kind: inputKind,
});

test('decode: matches the reference for generated shapes', async () => {
  await check(
    'valid decode',
    attention,
    ({ geo, group, lens, scale, spare, extraColumns, seed, kind }) =>
      withPools(async (track, temps) => {
        const rng = new Rng(seed);
        const p = buildPaged(rng, { ...geo, lens, spareBlocks: spare, extraColumns });
        const numHeads = geo.numKvHeads * group;
        const pool = track(be.createPool({ tier: 'device', numBlocks: p.numBlocks, ...geo }));
        await pool.write(p.image);
        const q = randomValues(rng, lens.length * numHeads * geo.headDim, geo.dtype);
        const out = be.tensor({ dtype: geo.dtype, shape: [lens.length, numHeads, geo.headDim] });
        temps.push(out);
        await be.decode({ pool, q: input(toStorage(geo.dtype, q), geo.dtype, kind, temps), out, blockTables: p.blockTables, tableStride: p.tableStride, contextLens: p.contextLens, numHeads, scale });
        const got = await out.readFloat32();
        const want = refDecode(p.seqs, q, { numHeads, numKvHeads: geo.numKvHeads, headDim: geo.headDim, scale });
        const w = compare(got, want, geo.dtype);
        assert.ok(w.ratio <= 1, `decode ${JSON.stringify({ ...geo, group, lens, scale })}: element ${w.at} got ${w.got} want ${w.want}`);
        count('valid native', 6);
      }),
    100,
  );
});

test('prefill: matches the reference for generated shapes and chunk lengths', async () => {
  await check(
    'valid prefill',
    fc.record({ a: attention, qFrac: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 4, maxLength: 4 }) }),
    ({ a: { geo, group, lens, scale, spare, extraColumns, seed, kind }, qFrac }) =>
      withPools(async (track, temps) => {
        const rng = new Rng(seed);
        const p = buildPaged(rng, { ...geo, lens, spareBlocks: spare, extraColumns });
        const numHeads = geo.numKvHeads * group;
        const qLens = lens.map((l, i) => Math.round(l * qFrac[i]));
        const qStartLoc = new Int32Array(lens.length + 1);
        qLens.forEach((n, i) => (qStartLoc[i + 1] = qStartLoc[i] + n));
        const totalQ = qStartLoc[lens.length];
        const pool = track(be.createPool({ tier: 'device', numBlocks: p.numBlocks, ...geo }));
        await pool.write(p.image);
        const rows = Math.max(1, totalQ);
        const q = randomValues(rng, rows * numHeads * geo.headDim, geo.dtype);
        const out = be.tensor({ dtype: geo.dtype, shape: [rows, numHeads, geo.headDim] });
        temps.push(out);
        // With no query tokens a typed-array q would be empty (rejected): pass a Tensor.
        const qIn = totalQ === 0 ? input(toStorage(geo.dtype, q), geo.dtype, 'tensor', temps) : input(toStorage(geo.dtype, q), geo.dtype, kind, temps);
        await be.prefill({ pool, q: qIn, out, qStartLoc, blockTables: p.blockTables, tableStride: p.tableStride, contextLens: p.contextLens, numHeads, scale });
        const got = (await out.readFloat32()).subarray(0, totalQ * numHeads * geo.headDim);
        const want = refPrefill(p.seqs, qLens, q, { numHeads, numKvHeads: geo.numKvHeads, headDim: geo.headDim, scale });
        const w = compare(got, want, geo.dtype);
        assert.ok(w.ratio <= 1, `prefill ${JSON.stringify({ ...geo, group, lens, qLens, scale })}: element ${w.at} got ${w.got} want ${w.want}`);
        count('valid native', 6);
      }),
    80,
  );
});

test('tensor and pool reads and writes at any offset are bit-exact', async () => {
  await check(
    'valid reads and writes',
    fc.record({ geo: geometry, numBlocks: fc.integer({ min: 1, max: 6 }), numel: fc.integer({ min: 1, max: 3000 }), seed: fc.integer(), sharedData: fc.boolean(), tier: fc.constantFrom('device' as const, 'host' as const) }),
    ({ geo, numBlocks, numel, seed, sharedData, tier }) =>
      withPools(async (track, temps) => {
        const rng = new Rng(seed);
        const t = be.tensor({ dtype: geo.dtype, shape: [numel], tier });
        temps.push(t);
        const base = randomStorage(rng, geo.dtype, numel);
        await t.write(base);
        const off = rng.int(0, numel - 1);
        const part = randomStorage(rng, geo.dtype, rng.int(0, numel - off));
        await t.write(sharedData ? shared(part, 2) : part, { offset: off });
        const want = base.slice();
        want.set(part as never, off);
        sameBits(await t.read(), want, `tensor write at ${off}`);
        const pool = track(be.createPool({ tier, numBlocks, ...geo }));
        const B = blockElems(geo);
        const image = randomStorage(rng, geo.dtype, numBlocks * B);
        await pool.write(sharedData ? shared(image, 1) : image);
        const first = rng.int(0, numBlocks - 1);
        const n = rng.int(0, numBlocks - first);
        sameBits(await pool.read({ firstBlock: first, numBlocks: n }), image.subarray(first * B, (first + n) * B), `pool read [${first}, ${first + n})`);
        const f32 = await t.readFloat32();
        assert.is(f32.length, numel);
        assert.equal(f32.subarray(0, 4), decodeValues(want.subarray(0, 4), geo.dtype).subarray(0, 4));
        count('valid native', 9);
      }),
    150,
  );
});

test('after the valid calls nothing is left allocated', () => {
  assert.is(be.liveBytes('device') + be.liveBytes('host'), 0);
  report();
});

test.run();
