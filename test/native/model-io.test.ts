// Sampling (determinism, top-k / top-p support, a chi-square check of temperature
// sampling), loading tensors from real files (dtype conversion, offsets, truncated and
// missing files), and the model ops' argument errors word for word.
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createModelRunner, decodeValues, encodeValues, ops, type Backend, type Tensor } from '../../lib/index.js';
import { forEachBackend } from '../util/backends.js';
import { Rng } from '../util/rng.js';

function throwsLike(fn: () => unknown, type: ErrorConstructor, msg: string | RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, type, `expected ${type.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    if (typeof msg === 'string') assert.is((err as Error).message, msg);
    else assert.match((err as Error).message, msg);
    return;
  }
  assert.unreachable(`expected a ${type.name}: ${msg}`);
}

forEachBackend('sampling', (test, be) => {
  test('greedy takes the lowest id among equal maxima; fixed seeds give fixed ids', async () => {
    const b = be();
    const logits = Float32Array.from([1, 5, 5, 2, /* row 1 */ 0, 0, 0, 0]);
    const g = await ops.sample(b, { logits, rows: 2, vocab: 4 });
    assert.equal(Array.from(g.tokenIds), [1, 0]);
    const rng = new Rng(4);
    const big = Float32Array.from({ length: 8 * 500 }, () => rng.sym(3));
    const p = { temperature: new Float32Array(8).fill(1), seed: Float64Array.from({ length: 8 }, (_, i) => i * 1000), counter: Int32Array.from({ length: 8 }, (_, i) => i) };
    const s1 = await ops.sample(b, { logits: big, rows: 8, vocab: 500, params: p });
    const s2 = await ops.sample(b, { logits: big, rows: 8, vocab: 500, params: p });
    assert.equal(Array.from(s1.tokenIds), Array.from(s2.tokenIds));
    // Row 5 alone, with its own seed and counter, draws the same id as inside the batch.
    const one = await ops.sample(b, { logits: big.subarray(5 * 500, 6 * 500), rows: 1, vocab: 500, params: { temperature: new Float32Array([1]), seed: new Float64Array([5000]), counter: new Int32Array([5]) } });
    assert.is(one.tokenIds[0], s1.tokenIds[5]);
    // logprobs: log-softmax of the raw logits at the chosen id.
    const row = big.subarray(5 * 500, 6 * 500);
    const mx = Math.max(...row);
    const z = row.reduce((a, x) => a + Math.exp(x - mx), 0);
    assert.ok(Math.abs(one.logprobs[0] - (row[one.tokenIds[0]] - mx - Math.log(z))) < 1e-5);
  });

  test('top-k never picks outside the k largest; top-p stays inside its nucleus', async () => {
    const b = be();
    const rng = new Rng(6);
    const V = 50, R = 400;
    const row = Float32Array.from({ length: V }, () => rng.sym(2));
    const logits = new Float32Array(R * V);
    for (let r = 0; r < R; r++) logits.set(row, r * V);
    const order = Array.from({ length: V }, (_, i) => i).sort((x, y) => row[y] - row[x] || x - y);
    const seed = Float64Array.from({ length: R }, (_, i) => i);
    const k = await ops.sample(b, { logits, rows: R, vocab: V, params: { temperature: new Float32Array(R).fill(2), topK: new Int32Array(R).fill(5), seed } });
    const top5 = new Set(order.slice(0, 5));
    for (const id of k.tokenIds) assert.ok(top5.has(id), `top-k 5 picked ${id}`);
    assert.ok(new Set(k.tokenIds).size > 1, 'top-k 5 at temperature 2 draws more than one id');
    // Nucleus at temperature 1, topP 0.5: the smallest prefix of the sorted probabilities reaching 0.5.
    const mx = row[order[0]];
    const p = order.map((i) => Math.exp(row[i] - mx));
    const z = p.reduce((a, x) => a + x, 0);
    let cum = 0, n = 0;
    while (n < V) {
      cum += p[n] / z;
      n++;
      if (cum >= 0.5) break;
    }
    const nucleus = new Set(order.slice(0, n));
    const s = await ops.sample(b, { logits, rows: R, vocab: V, params: { temperature: new Float32Array(R).fill(1), topP: new Float32Array(R).fill(0.5), seed } });
    for (const id of s.tokenIds) assert.ok(nucleus.has(id), `top-p 0.5 picked ${id} outside its ${n}-token nucleus`);
  });

  test('temperature sampling follows softmax(logits / T) (chi-square, 6 ids, 6000 draws)', async () => {
    const b = be();
    const row = Float32Array.from([0.5, -1, 2, 0, 1, -0.5]);
    const T = 0.8, R = 6000, V = 6;
    const logits = new Float32Array(R * V);
    for (let r = 0; r < R; r++) logits.set(row, r * V);
    const s = await ops.sample(b, { logits, rows: R, vocab: V, params: { temperature: new Float32Array(R).fill(T), seed: new Float64Array(R).fill(99), counter: Int32Array.from({ length: R }, (_, i) => i) } });
    const counts = new Array(V).fill(0);
    for (const id of s.tokenIds) counts[id]++;
    const e = Array.from(row, (x) => Math.exp(x / T));
    const z = e.reduce((a, x) => a + x, 0);
    let chi = 0;
    for (let i = 0; i < V; i++) {
      const exp = (R * e[i]) / z;
      chi += (counts[i] - exp) ** 2 / exp;
    }
    // 5 degrees of freedom: P(chi2 > 20.5) = 0.001; the draw is seeded, so this is fixed.
    assert.ok(chi < 20.5, `chi-square ${chi.toFixed(2)} counts ${counts}`);
  });

  test('argument errors', () => {
    const b = be();
    const lg = new Float32Array(8);
    throwsLike(() => ops.sample(b, { logits: lg, rows: 3, vocab: 4 }), RangeError, 'sample: logits has 8 elements but [rows 3][vocab 4] needs 12');
    throwsLike(() => ops.sample(b, { logits: lg, rows: 2, vocab: 4, params: { topP: new Float32Array([0.5, 0]) } }), RangeError, 'sample: sampling.topP[1] = 0 is out of range (0, 1]');
    throwsLike(() => ops.sample(b, { logits: lg, rows: 2, vocab: 4, params: { temperature: new Float32Array([1]) } }), RangeError, 'sample: sampling.temperature has 1 entries but there are 2 rows');
    throwsLike(() => ops.sample(b, { logits: lg, rows: 2, vocab: 4, params: { seed: new Float64Array([1.5, 0]) } }), RangeError, /^sample: params\.seed\[0\] = 1\.5\d* must be an integer in \[0, 2\^53\)$/);
    throwsLike(() => ops.sample(b, { logits: lg, rows: 2, vocab: 4, params: { topK: new Int32Array([-1, 0]) } }), RangeError, 'sample: sampling.topK[0] = -1 must be >= 0 (0 = off)');
  });
});

forEachBackend('loadTensor', (test, be) => {
  let dir = '';
  test.before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'kvcake-load-'));
  });
  test.after(() => rmSync(dir, { recursive: true, force: true }));

  test('reads a byte range, converting bf16 -> fp32 and fp32 -> bf16, at a destination offset, in chunks', async () => {
    const b = be();
    const rng = new Rng(31);
    // 3M bf16 elements (6 MiB) after a 17-byte header: unaligned offset, several chunks once converted.
    const n = 3 << 20;
    const vals = Float32Array.from({ length: n }, () => rng.sym(4));
    const bits = encodeValues(vals, 'bf16') as Uint16Array;
    const file = path.join(dir, 'w.bin');
    const header = Buffer.alloc(17, 7);
    writeFileSync(file, Buffer.concat([header, Buffer.from(bits.buffer), Buffer.from(new Float32Array([1.5, -2, 3.25]).buffer)]));
    const t = b.tensor({ dtype: 'fp32', shape: [n + 10] });
    await ops.loadTensor(b, { tensor: t, path: file, fileOffset: 17, numel: n, srcDtype: 'bf16', dstOffset: 10 });
    const got = decodeValues(await t.read(), 'fp32');
    const want = decodeValues(bits, 'bf16');
    for (let i = 0; i < n; i += 997) assert.is(got[10 + i], want[i]);
    assert.is(got[10 + n - 1], want[n - 1]);
    const t2 = b.tensor({ dtype: 'bf16', shape: [3] });
    await ops.loadTensor(b, { tensor: t2, path: file, fileOffset: 17 + 2 * n, numel: 3, srcDtype: 'fp32' });
    assert.equal(Array.from(decodeValues(await t2.read(), 'bf16')), [1.5, -2, 3.25]);
    t.release();
    t2.release();
  });

  test('truncated, missing and mismatched loads are clear errors', async () => {
    const b = be();
    const file = path.join(dir, 'short.bin');
    writeFileSync(file, Buffer.alloc(100));
    const t = b.tensor({ dtype: 'fp16', shape: [64] });
    const err = async (p: Promise<unknown>, msg: string) => {
      try {
        await p;
      } catch (e) {
        assert.is((e as Error).message, msg);
        return;
      }
      assert.unreachable(`expected: ${msg}`);
    };
    await err(ops.loadTensor(b, { tensor: t, path: file, fileOffset: 40, numel: 32, srcDtype: 'fp16' }), `loadTensor failed: loadTensor: ${file}: bytes [40, 104) are past the end of the file (100 bytes)`);
    await err(ops.loadTensor(b, { tensor: t, path: path.join(dir, 'nope.bin'), fileOffset: 0, numel: 4, srcDtype: 'fp16' }), `loadTensor failed: loadTensor: cannot open ${path.join(dir, 'nope.bin')}: No such file or directory`);
    await err(ops.loadTensor(b, { tensor: t, path: dir, fileOffset: 0, numel: 4, srcDtype: 'fp16' }), `loadTensor failed: loadTensor: ${dir} is not a regular file`);
    throwsLike(() => ops.loadTensor(b, { tensor: t, path: file, fileOffset: 0, numel: 60, srcDtype: 'fp16', dstOffset: 10 }), RangeError, "loadTensor: 60 elements at dstOffset 10 do not fit the tensor's 64 elements");
    throwsLike(() => ops.loadTensor(b, { tensor: t, path: file, fileOffset: -1, numel: 4, srcDtype: 'fp16' }), RangeError, /^loadTensor: fileOffset = -1 is out of range \[0, /);
    throwsLike(() => ops.loadTensor(b, { tensor: t, path: file, fileOffset: 0, numel: 4, srcDtype: 'int8' as 'fp16' }), RangeError, "loadTensor: srcDtype must be 'fp32', 'fp16' or 'bf16', got 'int8'");
    t.release();
  });
});

forEachBackend('model op errors', (test, be) => {
  const t = (b: Backend, dtype: 'fp32' | 'bf16', n: number): Tensor => b.tensor({ dtype, shape: [n] });
  test('gemm, rmsnorm, rope, siluMul, embed, logits', () => {
    const b = be();
    const a = t(b, 'fp32', 12), w = t(b, 'bf16', 20), out = t(b, 'fp32', 15), wb = t(b, 'bf16', 12);
    throwsLike(() => ops.gemm(b, { a, w, out, m: 3, n: 5, k: 5 }), RangeError, 'gemm: a has 12 elements but [m 3][k 5] needs 15');
    throwsLike(() => ops.gemm(b, { a, w, out, m: 3, n: 5, k: 0 }), RangeError, 'gemm: k = 0 is out of range [1, 2147483648]');
    throwsLike(() => ops.gemm(b, { a, w, out, m: 3, n: 6, k: 4 }), RangeError, 'gemm: w has 20 elements but [n 6][k 4] needs 24');
    throwsLike(() => ops.gemm(b, { a: wb, w, out, m: 3, n: 5, k: 4 }), RangeError, 'gemm: a must be fp32, got bf16');
    throwsLike(() => ops.gemm(b, { a, w, out: a, m: 3, n: 4, k: 4 }), RangeError, 'gemm: out must be a different tensor from a');
    throwsLike(() => ops.gemm(b, { a, w, out, m: 3, n: 5, k: 4, bias: new Float32Array(4) }), RangeError, 'gemm: bias has 4 elements but [n 5] needs 5');
    throwsLike(() => ops.gemm(b, { a, w: new Float32Array(20) as unknown as Tensor, out, m: 3, n: 5, k: 4 }), TypeError, 'gemm: w must be a Tensor created by this backend, got a Float32Array of length 20');
    throwsLike(() => ops.rmsnorm(b, { x: a, weight: new Float32Array(4), out, rows: 3, dim: 4, eps: 0 }), RangeError, 'rmsnorm: eps must be a positive finite number, got 0');
    throwsLike(() => ops.rmsnorm(b, { x: a, weight: new Float32Array(3), out, rows: 3, dim: 4 }), RangeError, 'rmsnorm: weight has 3 elements but [dim 4] needs 4');
    throwsLike(() => ops.rmsnorm(b, { x: a, weight: new Float32Array(4), out, rows: 3, dim: 4, residual: a }), RangeError, 'rmsnorm: residual must be a different tensor from x and out');
    throwsLike(() => ops.rope(b, { q: a, positions: new Int32Array([0, -1]), numHeads: 1, headDim: 6, theta: 10000 }), RangeError, 'rope: positions[1] = -1 is out of range [0, 16777216)');
    throwsLike(() => ops.rope(b, { q: a, positions: new Int32Array([0]), numHeads: 1, headDim: 5, theta: 10000 }), RangeError, 'rope: headDim 5 must be even and in [2, 256]');
    throwsLike(() => ops.rope(b, { q: a, positions: new Int32Array([0]), numHeads: 1, headDim: 4, theta: 1 }), RangeError, 'rope: theta must be a finite number > 1, got 1');
    throwsLike(() => ops.rope(b, { q: a, positions: new Int32Array([0]), numHeads: 1, headDim: 4, theta: 1e4, scaling: { type: 'llama3', factor: 8, lowFreqFactor: 4, highFreqFactor: 1, originalMaxPositionEmbeddings: 8192 } }), RangeError, 'rope: scaling.highFreqFactor 1 must be greater than lowFreqFactor 4');
    throwsLike(() => ops.rope(b, { q: a, positions: new Int32Array([0]), numHeads: 1, headDim: 4, theta: 1e4, scaling: { type: 'yarn' } as never }), RangeError, "rope: scaling.type must be 'llama3' (the only rope scaling supported)");
    throwsLike(() => ops.siluMul(b, { x: a, out, rows: 2, dim: 4 }), RangeError, 'siluMul: x has 12 elements but [rows 2][2 x dim 8] needs 16');
    throwsLike(() => ops.embed(b, { table: w, ids: new Int32Array([0, 5]), out, vocab: 5, hidden: 4 }), RangeError, 'embed: ids[1] = 5 is out of range [0, 5)');
    throwsLike(() => ops.logits(b, { hidden: a, rows: new Int32Array([3]), norm: new Float32Array(4), lmHead: w, out, numTokens: 3, hiddenSize: 4, vocab: 5 }), RangeError, 'logits: rows[0] = 3 is out of range [0, 3)');
    for (const x of [a, w, out, wb]) x.release();
    throwsLike(() => ops.gemm(b, { a, w, out, m: 3, n: 5, k: 4 }), Error, 'gemm: a has been released');
  });

  test('createModelRunner and forward', () => {
    const b = be();
    const cfg = { hiddenSize: 64, intermediateSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 64, vocabSize: 10, rmsNormEps: 1e-5, ropeTheta: 10000 };
    const f32 = (n: number) => b.tensor({ dtype: 'fp32', shape: [n] });
    const layer = { inputNorm: f32(64), qkv: f32(256 * 64), o: f32(64 * 128), postNorm: f32(64), gateUp: f32(64 * 64), down: f32(64 * 32) };
    const weights = { embed: f32(640), finalNorm: f32(64), layers: [layer] };
    throwsLike(() => createModelRunner(b, { config: { ...cfg, headDim: 32 }, weights }), RangeError, 'createModelRunner: config.headDim 32 is not supported by the attention kernels (64, 80, 96, 128, 256)');
    throwsLike(() => createModelRunner(b, { config: { ...cfg, numHeads: 3, numKvHeads: 2 }, weights }), RangeError, 'createModelRunner: config.numHeads 3 is not a multiple of numKvHeads 2');
    throwsLike(() => createModelRunner(b, { config: { ...cfg, numLayers: 2 }, weights }), RangeError, 'createModelRunner: weights.layers has 1 entries but config.numLayers is 2');
    throwsLike(() => createModelRunner(b, { config: cfg, weights: { ...weights, layers: [{ ...layer, qkv: f32(100) }] } }), RangeError, 'createModelRunner: weights.layers[0].qkv has 100 elements but [(numHeads + 2 x numKvHeads) x headDim 256][hiddenSize 64] needs 16384');
    throwsLike(() => createModelRunner(b, { config: cfg, weights: { ...weights, layers: [{ ...layer, postNorm: b.tensor({ dtype: 'bf16', shape: [64] }) }] } }), RangeError, 'createModelRunner: weights.layers[0].postNorm must be fp32, got bf16');
    throwsLike(() => createModelRunner(b, { config: cfg, weights: { ...weights, layers: [{ ...layer, down: undefined as never }] } }), TypeError, 'createModelRunner: weights.layers[0].down must be a Tensor created by this backend, got undefined');
    const runner = createModelRunner(b, { config: cfg, weights });
    const pool = b.createPool({ tier: 'device', numBlocks: 4, numKvHeads: 1, headDim: 64, blockSize: 16, dtype: 'fp32' });
    const ok = {
      pool, tokens: new Int32Array([1, 2, 3]), positions: new Int32Array([0, 1, 2]), qStartLoc: new Int32Array([0, 3]), contextLens: new Int32Array([3]),
      tableStride: 1, blockTables: new Int32Array([2]), slotMapping: new Int32Array([32, 33, 34]), logitsRows: new Int32Array([2]),
    };
    throwsLike(() => runner.forward({ ...ok, tokens: new Int32Array([1, 2, 10]) }), RangeError, 'forward: tokens[2] = 10 is out of range [0, 10)');
    throwsLike(() => runner.forward({ ...ok, slotMapping: new Int32Array([32, 33]) }), RangeError, 'forward: slotMapping has 2 entries but numLayers 1 x tokens 3 needs 3');
    throwsLike(() => runner.forward({ ...ok, blockTables: new Int32Array([4]) }), RangeError, 'forward: blockTables[0][0][0] = 4 is out of range [0, 4) for this pool');
    throwsLike(() => runner.forward({ ...ok, slotMapping: new Int32Array([32, 40, 34]) }), RangeError, 'forward: slotMapping[0][1] = 40 but blockTables[0][0] puts position 1 at slot 33 (use -1 to skip writing a token)');
    throwsLike(() => runner.forward({ ...ok, positions: new Int32Array([0, 2, 2]) }), RangeError, "forward: positions[1] = 2 but item 0 places that token at cache position 1 (contextLens[0] - its token count + 1)");
    throwsLike(() => runner.forward({ ...ok, contextLens: new Int32Array([2]) }), RangeError, "forward: item 0 has 3 tokens but contextLens[0] = 2; contextLens counts the step's own tokens");
    throwsLike(() => runner.forward({ ...ok, contextLens: new Int32Array([20]), positions: new Int32Array([17, 18, 19]) }), RangeError, 'forward: contextLens[0] = 20 needs 2 blocks but tableStride is 1');
    throwsLike(() => runner.forward({ ...ok, qStartLoc: new Int32Array([0, 2]) }), RangeError, 'forward: qStartLoc[1] = 2 must equal tokens.length 3');
    throwsLike(() => runner.forward({ ...ok, logitsRows: new Int32Array([3]) }), RangeError, 'forward: logitsRows[0] = 3 is out of range [0, 3)');
    throwsLike(() => runner.forward({ ...ok, waitBeforeLayer: [undefined, undefined] }), RangeError, 'forward: waitBeforeLayer has 2 entries but numLayers is 1');
    const wrong = b.createPool({ tier: 'device', numBlocks: 4, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp32' });
    throwsLike(() => runner.forward({ ...ok, pool: wrong }), RangeError, 'forward: pool has numKvHeads 2, headDim 64 but the model has numKvHeads 1, headDim 64');
    runner.release();
    throwsLike(() => runner.forward(ok), Error, 'forward: the model runner has been released');
    pool.release();
    wrong.release();
  });
});
