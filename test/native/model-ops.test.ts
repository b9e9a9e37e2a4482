// The model ops against fp64 references (test/util/model-ref.ts) on randomized and awkward
// shapes, on every backend and on every CPU ISA path this machine has.
//
// Tolerances: fp16/bf16 weights are compared against the reference computed from the
// weights' decoded values, because the kernels convert them to fp32 exactly; what is left is
// fp32 rounding of the products and sums. For a dot product of length k summed in 8 or 16
// lanes and a halving tree, the rounding error is bounded by about (k/8 + 4) ulps of the sum
// of |products|, so |got - want| <= 2^-23 (k/8 + 4) * sum|a w| holds for every element.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { createBackend, decodeValues, encodeValues, ops, type Backend, type DType, type Tensor } from '../../lib/index.js';
import { cpuIsas, forEachBackend, type Kind } from '../util/backends.js';
import { refGemm, refInvFreq, refRmsNorm, refRope, silu } from '../util/model-ref.js';
import { Rng } from '../util/rng.js';

const EPS32 = 2 ** -23;

function randArray(rng: Rng, n: number, a = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.sym(a);
  return x;
}

/** A weight tensor of `dtype` and the exact fp64 values it holds. */
function weight(be: Backend, rng: Rng, n: number, dtype: DType, a = 1): { t: Tensor; values: Float32Array } {
  const bits = encodeValues(randArray(rng, n, a), dtype);
  return { t: be.tensorFrom(bits, dtype), values: decodeValues(bits, dtype) };
}

async function read(t: Tensor): Promise<Float32Array> {
  return decodeValues(await t.read(), t.dtype);
}

async function checkGemm(be: Backend, rng: Rng, m: number, n: number, k: number, dtype: DType, bias: boolean, label: string, impl?: 'own' | 'openblas'): Promise<void> {
  const a = randArray(rng, m * k);
  // cuBLAS multiplies 16-bit weights by activations rounded to the same dtype: the
  // reference takes the rounded activations, and cuBLAS may sum in any order (k ulps).
  const cuda = be.name === 'cuda';
  const aRef = cuda && dtype !== 'fp32' ? decodeValues(encodeValues(a, dtype), dtype) : a;
  const w = weight(be, rng, n * k, dtype);
  const b = bias ? randArray(rng, n) : undefined;
  const out = be.tensor({ dtype: 'fp32', shape: [m, n] });
  try {
    await ops.gemm(be, { a, w: w.t, bias: b, out, m, n, k, impl });
    const got = await read(out);
    const { out: want, absSum } = refGemm(aRef, w.values, b, m, n, k);
    for (let i = 0; i < m * n; i++) {
      // OpenBLAS sums in its own order: allow the sequential-sum bound of k ulps.
      const tol = EPS32 * (impl === 'openblas' || cuda ? k + 4 : k / 8 + 4) * absSum[i] + 1e-30;
      if (!(Math.abs(got[i] - want[i]) <= tol))
        assert.unreachable(`gemm ${label} m ${m} n ${n} k ${k} ${dtype}${bias ? ' +bias' : ''}: out[${Math.floor(i / n)}][${i % n}] = ${got[i]}, want ${want[i]} (tol ${tol})`);
    }
  } finally {
    w.t.release();
    out.release();
  }
}

function defineOps(test: ReturnType<typeof suite>, be: () => Backend, label: string): void {
  test(`gemm: randomized and awkward shapes, fp32/fp16/bf16 weights, bias (${label})`, async () => {
    const rng = new Rng(101);
    const shapes: [number, number, number][] = [
      [1, 1, 1], [1, 7, 3], [1, 33, 15], [1, 64, 17], [2, 9, 31], [3, 5, 19], [4, 13, 64], [5, 40, 65], [7, 17, 100],
      [8, 31, 129], [9, 23, 47], [17, 19, 33], [33, 65, 70], [64, 66, 128], [37, 130, 257],
    ];
    for (let i = 0; i < 6; i++) shapes.push([rng.int(1, 70), rng.int(1, 140), rng.int(1, 300)]);
    for (const [i, [m, n, k]] of shapes.entries()) {
      const dtype = (['fp32', 'fp16', 'bf16'] as DType[])[i % 3];
      await checkGemm(be(), rng, m, n, k, dtype, i % 2 === 1, label);
    }
  });

  test(`gemm: vocabulary-sized n (1000, 32003) for a few rows (${label})`, async () => {
    const rng = new Rng(7);
    await checkGemm(be(), rng, 3, 1000, 64, 'bf16', false, label);
    await checkGemm(be(), rng, 2, 32003, 40, 'fp16', false, label);
  });

  test(`gemm: a row's result does not depend on the rows beside it (batch invariance) (${label})`, async () => {
    const b = be();
    if (!ops.info(b).batchInvariant) return console.log(`  (${label}: this GEMM path is not batch invariant; skipped)`);
    const rng = new Rng(55);
    const k = 301, n = 37;
    const w = weight(b, rng, n * k, 'bf16');
    const rows = randArray(rng, 40 * k);
    const outs: Float32Array[] = [];
    for (const m of [1, 3, 8, 40]) {
      const out = b.tensor({ dtype: 'fp32', shape: [m, n] });
      // Row 0 of every call is the same; the others differ in number.
      await ops.gemm(b, { a: rows.subarray(0, m * k), w: w.t, out, m, n, k });
      outs.push((await read(out)).slice(0, n));
      out.release();
    }
    for (let i = 1; i < outs.length; i++) assert.equal(Array.from(outs[i]), Array.from(outs[0]), `row 0 differs with batch size index ${i}`);
    w.t.release();
  });

  test(`rmsnorm, with and without the fused residual add, odd dims (${label})`, async () => {
    const b = be();
    const rng = new Rng(3);
    for (const [rows, dim] of [[1, 1], [3, 7], [5, 64], [2, 1000], [9, 4099]] as const) {
      const x = randArray(rng, rows * dim, 3);
      const w = randArray(rng, dim);
      const res = randArray(rng, rows * dim);
      const xt = b.tensorFrom(x, 'fp32');
      const rt = b.tensorFrom(res, 'fp32');
      const out = b.tensor({ dtype: 'fp32', shape: [rows, dim] });
      await ops.rmsnorm(b, { x, weight: w, out, rows, dim, eps: 1e-5 });
      const want = refRmsNorm(x, w, rows, dim, 1e-5);
      const got = await read(out);
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (Math.abs(want[i]) + 1e-3), `rmsnorm [${rows}][${dim}] at ${i}: ${got[i]} vs ${want[i]}`);
      // Fused: residual += x; out (here in place on x) = norm(residual).
      await ops.rmsnorm(b, { x: xt, weight: w, out: xt, residual: rt, rows, dim, eps: 1e-5 });
      const sum = x.map((v, i) => Math.fround(v + res[i]));
      const want2 = refRmsNorm(sum, w, rows, dim, 1e-5);
      const got2 = await read(xt);
      const gotRes = await read(rt);
      for (let i = 0; i < got2.length; i++) {
        assert.ok(gotRes[i] === sum[i], `residual sum at ${i}`);
        assert.ok(Math.abs(got2[i] - want2[i]) <= 1e-5 * (Math.abs(want2[i]) + 1e-3), `fused rmsnorm at ${i}: ${got2[i]} vs ${want2[i]}`);
      }
      xt.release();
      rt.release();
      out.release();
    }
  });

  test(`rope: theta, llama3 scaling, positions beyond original_max_position_embeddings, GQA 1/4/8 (${label})`, async () => {
    const b = be();
    const rng = new Rng(11);
    const scaling = { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    for (const [headDim, heads, gqa, theta, sc] of [
      [64, 4, 1, 10000, undefined],
      [128, 8, 4, 500000, scaling],
      [80, 8, 8, 1000000, undefined],
      [128, 8, 8, 500000, scaling],
    ] as const) {
      const kvHeads = heads / gqa;
      const positions = Int32Array.from([0, 1, 7, 8191, 8192, 9000, 100000, 131071].slice(0, rng.int(3, 8)));
      const T = positions.length;
      const q = randArray(rng, T * heads * headDim);
      const k = randArray(rng, T * kvHeads * headDim);
      const qt = b.tensorFrom(q, 'fp32');
      const kt = b.tensorFrom(k, 'fp32');
      await ops.rope(b, { q: qt, k: kt, positions, numHeads: heads, numKvHeads: kvHeads, headDim, theta, scaling: sc });
      const inv = refInvFreq(headDim, theta, sc);
      const wq = Float64Array.from(q);
      const wk = Float64Array.from(k);
      refRope(wq, positions, heads, headDim, inv);
      refRope(wk, positions, kvHeads, headDim, inv);
      const gq = await read(qt);
      const gk = await read(kt);
      // cos/sin rounded to fp32 from fp64 angles, then fp32 products: a few ulps of |x|.
      for (let i = 0; i < gq.length; i++) assert.ok(Math.abs(gq[i] - wq[i]) <= 2e-6, `rope q headDim ${headDim} at ${i}: ${gq[i]} vs ${wq[i]}`);
      for (let i = 0; i < gk.length; i++) assert.ok(Math.abs(gk[i] - wk[i]) <= 2e-6, `rope k headDim ${headDim} at ${i}: ${gk[i]} vs ${wk[i]}`);
      qt.release();
      kt.release();
    }
  });

  test(`siluMul, embed, add, logits (${label})`, async () => {
    const b = be();
    const rng = new Rng(19);
    // SiLU * up on a fused gate_up row; dims not a multiple of 8.
    const rows = 3, dim = 77;
    const x = randArray(rng, rows * 2 * dim, 12);
    const out = b.tensor({ dtype: 'fp32', shape: [rows, dim] });
    await ops.siluMul(b, { x, out, rows, dim });
    const g = await read(out);
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < dim; i++) {
        const want = silu(x[r * 2 * dim + i]) * x[r * 2 * dim + dim + i];
        assert.ok(Math.abs(g[r * dim + i] - want) <= 2e-6 * (Math.abs(want) + 1e-3), `siluMul at ${r},${i}: ${g[r * dim + i]} vs ${want}`);
      }
    out.release();
    // Embedding gather from bf16 and fp16 tables, vocab 1000.
    for (const dtype of ['bf16', 'fp16', 'fp32'] as DType[]) {
      const vocab = 1000, hidden = 24;
      const table = weight(b, rng, vocab * hidden, dtype);
      const ids = Int32Array.from([0, 999, 5, 5, 123]);
      const e = b.tensor({ dtype: 'fp32', shape: [ids.length, hidden] });
      await ops.embed(b, { table: table.t, ids, out: e, vocab, hidden });
      const ge = await read(e);
      for (let t = 0; t < ids.length; t++)
        for (let i = 0; i < hidden; i++) assert.is(ge[t * hidden + i], table.values[ids[t] * hidden + i]);
      table.t.release();
      e.release();
    }
    const a1 = randArray(rng, 101), a2 = randArray(rng, 101);
    const s = b.tensor({ dtype: 'fp32', shape: [101] });
    await ops.add(b, { a: a1, b: a2, out: s, n: 101 });
    const gs = await read(s);
    for (let i = 0; i < 101; i++) assert.is(gs[i], Math.fround(a1[i] + a2[i]));
    s.release();
    // Final norm + lm_head for selected rows only.
    const T = 6, H = 40, V = 1000;
    const hid = randArray(rng, T * H, 2);
    const norm = randArray(rng, H);
    const head = weight(b, rng, V * H, 'bf16');
    const sel = Int32Array.from([5, 0, 3]);
    const lg = b.tensor({ dtype: 'fp32', shape: [sel.length, V] });
    await ops.logits(b, { hidden: hid, rows: sel, norm, lmHead: head.t, out: lg, numTokens: T, hiddenSize: H, vocab: V, eps: 1e-6 });
    const gl = await read(lg);
    for (let r = 0; r < sel.length; r++) {
      const xn = refRmsNorm(hid.subarray(sel[r] * H, sel[r] * H + H), norm, 1, H, 1e-6);
      const { out: want } = refGemm(xn, head.values, undefined, 1, V, H);
      // CUDA rounds the normed rows to bf16 before the bf16 lm_head (2^-9 relative).
      const rel = b.name === 'cuda' ? 1e-2 : 1e-4;
      for (let j = 0; j < V; j++) assert.ok(Math.abs(gl[r * V + j] - want[j]) <= rel * (Math.abs(want[j]) + 0.1), `logits row ${r} id ${j}: ${gl[r * V + j]} vs ${want[j]}`);
    }
    head.t.release();
    lg.release();
  });

  test(`fillUniform: in range, seeded, the same bits every time (${label})`, async () => {
    const b = be();
    for (const dtype of ['fp32', 'bf16', 'fp16'] as DType[]) {
      const t1 = b.tensor({ dtype, shape: [10001] });
      const t2 = b.tensor({ dtype, shape: [10001] });
      await ops.fillUniform(b, { tensor: t1, low: -0.5, high: 0.25, seed: 42 });
      await ops.fillUniform(b, { tensor: t2, low: -0.5, high: 0.25, seed: 42 });
      const v1 = await read(t1);
      assert.equal(Array.from(await t1.read()), Array.from(await t2.read()));
      let mean = 0;
      for (const v of v1) {
        assert.ok(v >= -0.5 && v <= 0.25, `${dtype} value ${v} out of range`);
        mean += v / v1.length;
      }
      assert.ok(Math.abs(mean - -0.125) < 0.01, `${dtype} mean ${mean}`);
      if (b.name !== 'cpu') {
        // The same bits as the CPU backend (dummy weights must not depend on the device).
        const c = createBackend({ backend: 'cpu' });
        const t3 = c.tensor({ dtype, shape: [10001] });
        await ops.fillUniform(c, { tensor: t3, low: -0.5, high: 0.25, seed: 42 });
        assert.equal(Array.from(await t1.read()), Array.from(await t3.read()), `${dtype} fill differs from the cpu backend`);
        t3.release();
      }
      await ops.fillUniform(b, { tensor: t2, low: -0.5, high: 0.25, seed: 43 });
      assert.not.equal(Array.from(await t1.read()), Array.from(await t2.read()));
      t1.release();
      t2.release();
    }
  });
}

forEachBackend('model ops', (test, be, kind: Kind) => defineOps(test, be, kind));

// Every CPU ISA level, forced through KVCAKE_CPU_ISA: the levels this machine runs get
// every model op test on that ceiling (scalar included: the kernels a CPU without AVX2
// runs); the others must be refused by name.
const LEVELS = ['scalar', 'avx2', 'avx512', 'avx512bf16'] as const;
const GEMM_PATH: Record<(typeof LEVELS)[number], string> = {
  scalar: 'own scalar (dot-8)',
  avx2: 'own avx2 (dot-8)',
  avx512: 'own avx512 (dot-16)',
  avx512bf16: 'own avx512 (dot-16)',
};

function withIsaEnv<T>(isa: string, fn: () => T): T {
  const prev = process.env.KVCAKE_CPU_ISA;
  process.env.KVCAKE_CPU_ISA = isa;
  try {
    return fn();
  } finally {
    if (prev === undefined) delete process.env.KVCAKE_CPU_ISA;
    else process.env.KVCAKE_CPU_ISA = prev;
  }
}

const runnable = cpuIsas();
for (const isa of LEVELS) {
  const s = suite(`model ops [cpu ${isa}]`);
  if (!runnable.includes(isa)) {
    s('a level this CPU cannot run is refused by name', () => {
      assert.throws(
        () => withIsaEnv(isa, () => createBackend({ backend: 'cpu' })),
        (e: Error) => e instanceof RangeError && e.message === `KVCAKE_CPU_ISA = '${isa}': this CPU cannot run the ${isa} path (it supports ${runnable.join(', ')})`,
      );
    });
    s.run();
    continue;
  }
  let be: Backend | undefined;
  s.before(() => {
    be = withIsaEnv(isa, () => createBackend({ backend: 'cpu' }));
  });
  s('the forced ceiling is the one the model ops report and run under', () => {
    const info = ops.info(be!);
    assert.is(info.isa, isa);
    assert.is(info.isaForced, true);
    assert.is(info.gemm, GEMM_PATH[isa]);
    const kernels = be!.info().kernels!;
    assert.is(kernels['model.gemm'], GEMM_PATH[isa].split(' ')[1]);
    assert.is(kernels['model.elementwise'], isa === 'scalar' ? 'scalar' : 'avx2');
  });
  defineOps(s, () => be!, `cpu ${isa}`);
  s(`gemm on the ${isa} path, every weight dtype`, async () => {
    const rng = new Rng(202);
    for (const [m, n, k] of [[1, 31, 17], [2, 9, 33], [6, 40, 130], [40, 70, 77]] as const)
      for (const dtype of ['fp32', 'fp16', 'bf16'] as DType[]) await checkGemm(be!, rng, m, n, k, dtype, true, isa);
  });
  s.run();
}

const blas = suite('model ops [cpu openblas]');
blas('gemm through the linked OpenBLAS (m >= 32 and forced small m), fp32/fp16/bf16 weights', async () => {
  const be = createBackend({ backend: 'cpu' });
  const info = ops.info(be);
  if (!info.openblas) return console.log('  (this binary has no OpenBLAS: skipped)');
  const rng = new Rng(303);
  for (const [m, n, k] of [[32, 130, 77], [65, 257, 300], [3, 9, 31]] as const)
    for (const dtype of ['fp32', 'fp16', 'bf16'] as DType[]) await checkGemm(be, rng, m, n, k, dtype, true, 'openblas', 'openblas');
});
blas.run();

const bad = suite('model ops: ISA selection errors');
bad('an unknown KVCAKE_CPU_ISA or KVCAKE_CPU_GEMM is an error at createBackend', () => {
  try {
    assert.throws(
      () => withIsaEnv('sse9', () => createBackend({ backend: 'cpu' })),
      (e: Error) => e instanceof RangeError && e.message === "KVCAKE_CPU_ISA = 'sse9' is not a CPU ISA level; use auto, scalar, avx2, avx512, avx512bf16, avx512fp16",
    );
    process.env.KVCAKE_CPU_GEMM = 'mkl';
    assert.throws(() => withIsaEnv('', () => createBackend({ backend: 'cpu' })), (e: Error) => e.message === "KVCAKE_CPU_GEMM must be own or openblas, got 'mkl'");
    delete process.env.KVCAKE_CPU_GEMM;
    if (!ops.info(createBackend({ backend: 'cpu' })).openblas) {
      process.env.KVCAKE_CPU_GEMM = 'openblas';
      assert.throws(() => createBackend({ backend: 'cpu' }), (e: Error) => e.message === 'KVCAKE_CPU_GEMM=openblas: this kvcake binary was built without OpenBLAS (install libopenblas-serial-dev and rebuild)');
    }
  } finally {
    delete process.env.KVCAKE_CPU_GEMM;
  }
});
bad('fmaPeak runs at the GEMM level of a given ceiling and names a bad one', () => {
  assert.ok(ops.fmaPeak('scalar', 0.01) > 0);
  assert.throws(() => ops.fmaPeak('sse9' as never, 0.01), (e: Error) => e instanceof RangeError && e.message.startsWith("fmaPeak: isa = 'sse9' is not a CPU ISA level"));
});
bad.run();
