// The native forward runner against a naive fp64 forward pass (test/util/model-ref.ts) on
// tiny random models: whole-prompt prefill, chunked prefill at chunk sizes 1 / unaligned /
// whole, mixed decode + prefill batches, greedy generation, per-layer waits and appended
// markers, Qwen2-style q/k/v bias, tied and untied embeddings, GQA 1/4/8.
import * as assert from 'uvu/assert';
import { createModelRunner, ops, encodeValues, decodeValues, type Backend, type DType, type KVPool, type ModelRunner, type RunnerConfig, type Tensor } from '../../lib/index.js';
import { forEachBackend } from '../util/backends.js';
import { refForward, type RefModel } from '../util/model-ref.js';
import { Rng } from '../util/rng.js';

interface Tiny {
  cfg: RunnerConfig;
  ref: RefModel;
  runner: ModelRunner;
  tensors: Tensor[];
}

function values(rng: Rng, n: number, scale: number, dtype: DType): { bits: Float32Array | Uint16Array; v: Float64Array } {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.sym(scale);
  const bits = encodeValues(x, dtype);
  return { bits, v: Float64Array.from(decodeValues(bits, dtype)) };
}

function buildTiny(be: Backend, seed: number, o: { heads: number; kvHeads: number; vocab: number; dtype: DType; bias?: boolean; tied?: boolean; layers?: number; scaling?: boolean }): Tiny {
  const rng = new Rng(seed);
  const H = 96, D = 64, I = 136, L = o.layers ?? 2;
  const cfg: RunnerConfig = {
    hiddenSize: H, intermediateSize: I, numLayers: L, numHeads: o.heads, numKvHeads: o.kvHeads, headDim: D, vocabSize: o.vocab,
    rmsNormEps: 1e-5, ropeTheta: 10000,
    ropeScaling: o.scaling ? { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 } : undefined,
  };
  const tensors: Tensor[] = [];
  const t = (bits: Float32Array | Uint16Array, dtype: DType) => {
    const x = be.tensorFrom(bits, dtype);
    tensors.push(x);
    return x;
  };
  const norm = () => {
    const v = new Float32Array(H).map(() => 1 + rng.sym(0.2));
    return { t: t(v, 'fp32'), v: Float64Array.from(v) };
  };
  const emb = values(rng, o.vocab * H, 1, o.dtype);
  const head = o.tied ? undefined : values(rng, o.vocab * H, 1 / Math.sqrt(H), o.dtype);
  const fn = norm();
  const ref: RefModel = {
    hidden: H, inter: I, layers: L, heads: o.heads, kvHeads: o.kvHeads, headDim: D, vocab: o.vocab, eps: 1e-5, theta: 10000,
    scaling: cfg.ropeScaling, embed: emb.v, finalNorm: fn.v, lmHead: head?.v, layer: [],
  };
  const layers = [];
  for (let l = 0; l < L; l++) {
    const s = 1 / Math.sqrt(H);
    const q = values(rng, o.heads * D * H, s, o.dtype);
    const k = values(rng, o.kvHeads * D * H, s, o.dtype);
    const v = values(rng, o.kvHeads * D * H, s, o.dtype);
    const qkvBits = o.dtype === 'fp32' ? new Float32Array(q.bits.length + 2 * k.bits.length) : new Uint16Array(q.bits.length + 2 * k.bits.length);
    qkvBits.set(q.bits as never, 0);
    qkvBits.set(k.bits as never, q.bits.length);
    qkvBits.set(v.bits as never, q.bits.length + k.bits.length);
    const bq = o.bias ? new Float32Array(o.heads * D).map(() => rng.sym(0.5)) : undefined;
    const bk = o.bias ? new Float32Array(o.kvHeads * D).map(() => rng.sym(0.5)) : undefined;
    const bv = o.bias ? new Float32Array(o.kvHeads * D).map(() => rng.sym(0.5)) : undefined;
    const ow = values(rng, H * o.heads * D, 1 / Math.sqrt(o.heads * D), o.dtype);
    const gate = values(rng, I * H, s, o.dtype);
    const up = values(rng, I * H, s, o.dtype);
    const guBits = o.dtype === 'fp32' ? new Float32Array(2 * I * H) : new Uint16Array(2 * I * H);
    guBits.set(gate.bits as never, 0);
    guBits.set(up.bits as never, I * H);
    const down = values(rng, H * I, 1 / Math.sqrt(I), o.dtype);
    const n1 = norm(), n2 = norm();
    layers.push({
      inputNorm: n1.t, qkv: t(qkvBits, o.dtype), o: t(ow.bits, o.dtype), postNorm: n2.t, gateUp: t(guBits, o.dtype), down: t(down.bits, o.dtype),
      qkvBias: o.bias ? t(Float32Array.from([...bq!, ...bk!, ...bv!]), 'fp32') : undefined,
    });
    ref.layer.push({
      inputNorm: n1.v, q: q.v, k: k.v, v: v.v, o: ow.v, postNorm: n2.v, gate: gate.v, up: up.v, down: down.v,
      qBias: bq && Float64Array.from(bq), kBias: bk && Float64Array.from(bk), vBias: bv && Float64Array.from(bv),
    });
  }
  const runner = createModelRunner(be, {
    config: cfg,
    weights: { embed: t(emb.bits, o.dtype), finalNorm: fn.t, lmHead: head && t(head.bits, o.dtype), layers },
  });
  return { cfg, ref, runner, tensors };
}

/** Per-layer block tables for a few sequences, blocks shuffled across the pool. */
class Paged {
  tables: number[][][]; // [seq][layer][block]
  constructor(readonly pool: KVPool, readonly layers: number, seqs: number, maxBlocks: number, rng: Rng) {
    const ids = rng.shuffle(Array.from({ length: pool.numBlocks }, (_, i) => i));
    let next = 0;
    this.tables = Array.from({ length: seqs }, () => Array.from({ length: layers }, () => Array.from({ length: maxBlocks }, () => ids[next++])));
  }
  /** A step for items (seq, tokens, position of the first token). */
  step(items: { seq: number; tokens: number[]; start: number }[], stride: number, logitsRows: number[]) {
    const bs = this.pool.layout.blockSize;
    const T = items.reduce((a, b) => a + b.tokens.length, 0);
    const tokens: number[] = [], positions: number[] = [], qStartLoc = [0], contextLens: number[] = [];
    const blockTables = new Int32Array(this.layers * items.length * stride);
    const slotMapping = new Int32Array(this.layers * T);
    for (const it of items) {
      it.tokens.forEach((tok, i) => {
        tokens.push(tok);
        positions.push(it.start + i);
      });
      qStartLoc.push(tokens.length);
      contextLens.push(it.start + it.tokens.length);
    }
    for (let l = 0; l < this.layers; l++)
      items.forEach((it, b) => {
        const tab = this.tables[it.seq][l];
        for (let j = 0; j < stride; j++) blockTables[(l * items.length + b) * stride + j] = tab[j];
        it.tokens.forEach((_, i) => {
          const p = it.start + i;
          slotMapping[l * T + qStartLoc[b] + i] = tab[Math.floor(p / bs)] * bs + (p % bs);
        });
      });
    return {
      pool: this.pool, tokens: Int32Array.from(tokens), positions: Int32Array.from(positions), qStartLoc: Int32Array.from(qStartLoc),
      contextLens: Int32Array.from(contextLens), tableStride: stride, blockTables, slotMapping, logitsRows: Int32Array.from(logitsRows),
      returnLogits: true,
    };
  }
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** got vs reference rows; tolerance relative to the largest |logit| of the row. */
function compareLogits(got: Float32Array, want: Float64Array, wantRows: number[], vocab: number, rel: number, label: string): void {
  wantRows.forEach((row, r) => {
    const w = want.subarray(row * vocab, (row + 1) * vocab);
    const scale = maxAbs(w);
    for (let j = 0; j < vocab; j++) {
      const d = Math.abs(got[r * vocab + j] - w[j]);
      if (!(d <= rel * scale)) assert.unreachable(`${label}: row ${row} id ${j}: got ${got[r * vocab + j]} want ${w[j]} (|d| ${d.toExponential(2)} > ${rel} x ${scale.toFixed(3)})`);
    }
  });
}

function argmax(x: ArrayLike<number>, off: number, n: number): number {
  let b = 0;
  for (let i = 1; i < n; i++) if (x[off + i] > x[off + b]) b = i;
  return b;
}

forEachBackend('forward runner', (test, be, kind) => {
  // fp32 weights and pool: 1e-4 of the row's largest logit (the target). bf16
  // weights are exact in the reference; a bf16 pool rounds q, K, V and the attention output
  // to bf16 (8 bits of mantissa, relative error 2^-9 each), which moves logits by a few
  // 1e-3 of their scale through two layers: 3e-2 leaves room without hiding a wrong kernel
  // (a wrong position or head gives errors of order 1). CUDA rounds activations to the
  // weights' dtype before its GEMMs, hence the looser bound there.
  const cases = [
    { heads: 4, kvHeads: 4, vocab: 1000, dtype: 'fp32' as DType, kv: 'fp32' as DType, tol: kind === 'cuda' ? 1e-3 : 1e-4, tied: false },
    { heads: 8, kvHeads: 2, vocab: 333, dtype: 'bf16' as DType, kv: 'fp32' as DType, tol: kind === 'cuda' ? 3e-2 : 1e-4, tied: true, bias: true },
    { heads: 8, kvHeads: 1, vocab: 517, dtype: 'fp16' as DType, kv: 'bf16' as DType, tol: 3e-2, tied: false, scaling: true },
  ];

  for (const [ci, c] of cases.entries()) {
    test(`case ${ci}: ${c.dtype} weights, ${c.kv} KV, GQA ${c.heads / c.kvHeads}, vocab ${c.vocab}${c.tied ? ', tied' : ''}${c.bias ? ', qkv bias' : ''}${c.scaling ? ', llama3 rope' : ''}: one pass, chunked prefill, mixed batch, greedy`, async () => {
      const b = be();
      const rng = new Rng(1000 + ci);
      const m = buildTiny(b, 77 + ci, c);
      const pool = b.createPool({ tier: 'device', numBlocks: 64, numKvHeads: c.kvHeads, headDim: 64, blockSize: 16, dtype: c.kv });
      try {
        const prompt = Array.from({ length: 37 }, () => rng.int(0, c.vocab - 1));
        const want = refForward(m.ref, prompt);
        const allRows = prompt.map((_, i) => i);
        // One pass over the whole prompt.
        const pg = new Paged(pool, 2, 3, 4, rng);
        const r1 = await m.runner.forward(pg.step([{ seq: 0, tokens: prompt, start: 0 }], 4, allRows)).work;
        compareLogits(r1.logits!, want, allRows, c.vocab, c.tol, `one pass case ${ci}`);
        for (let i = 0; i < prompt.length; i++) assert.is(r1.tokenIds[i], argmax(r1.logits!, i * c.vocab, c.vocab));
        // Chunked prefill: 1, then 16 (block aligned), then 5 (unaligned), then the rest, in sequence 1.
        let start = 0;
        for (const n of [1, 16, 5, prompt.length - 22]) {
          const rows = Array.from({ length: n }, (_, i) => i);
          const r = await m.runner.forward(pg.step([{ seq: 1, tokens: prompt.slice(start, start + n), start }], 4, rows)).work;
          compareLogits(r.logits!, want, rows.map((i) => start + i), c.vocab, c.tol, `chunk ${n} at ${start} case ${ci}`);
          start += n;
        }
        // Mixed batch: a decode of sequence 1 beside a prefill of sequence 2, decode first
        // and then prefill first; each row matches its own reference.
        const next = argmax(want, (prompt.length - 1) * c.vocab, c.vocab);
        const cont = [...prompt, next];
        const want2 = refForward(m.ref, cont);
        const p2 = prompt.slice(0, 20);
        const mixed = await m.runner.forward(pg.step([{ seq: 2, tokens: p2, start: 0 }, { seq: 1, tokens: [next], start: prompt.length }], 4, [19, 20])).work;
        compareLogits(mixed.logits!.subarray(0, c.vocab), want, [19], c.vocab, c.tol, `mixed prefill row case ${ci}`);
        compareLogits(mixed.logits!.subarray(c.vocab), want2, [prompt.length], c.vocab, c.tol, `mixed decode row case ${ci}`);
      } finally {
        pool.release();
        m.runner.release();
        for (const t of m.tensors) t.release();
      }
    });
  }

  test('greedy: 16 generated tokens equal the reference, decoding one token per step', async () => {
    const b = be();
    const rng = new Rng(5);
    const m = buildTiny(b, 9, { heads: 4, kvHeads: 1, vocab: 300, dtype: 'fp32' });
    const pool = b.createPool({ tier: 'device', numBlocks: 32, numKvHeads: 1, headDim: 64, blockSize: 8, dtype: 'fp32' });
    try {
      const prompt = Array.from({ length: 11 }, () => rng.int(0, 299));
      const pg = new Paged(pool, 2, 1, 8, rng);
      let r = await m.runner.forward(pg.step([{ seq: 0, tokens: prompt, start: 0 }], 8, [prompt.length - 1])).work;
      const seq = [...prompt];
      const gen: number[] = [];
      for (let i = 0; i < 16; i++) {
        gen.push(r.tokenIds[0]);
        seq.push(r.tokenIds[0]);
        if (i < 15) r = await m.runner.forward(pg.step([{ seq: 0, tokens: [r.tokenIds[0]], start: seq.length - 1 }], 8, [0])).work;
      }
      // Reference greedy, recomputed from scratch each token.
      const refSeq = [...prompt];
      const refGen: number[] = [];
      for (let i = 0; i < 16; i++) {
        const lg = refForward(m.ref, refSeq);
        const id = argmax(lg, (refSeq.length - 1) * 300, 300);
        refGen.push(id);
        refSeq.push(id);
      }
      assert.equal(gen, refGen);
    } finally {
      pool.release();
      m.runner.release();
      for (const t of m.tensors) t.release();
    }
  });

  test('per-layer waits and appended markers: layer l waits on a copy, offloads wait on appended[l]', async () => {
    const b = be();
    const rng = new Rng(8);
    const m = buildTiny(b, 10, { heads: 4, kvHeads: 2, vocab: 200, dtype: 'bf16', layers: 3 });
    const pool = b.createPool({ tier: 'device', numBlocks: 16, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
    const host = b.createPool({ tier: 'host', numBlocks: 16, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
    try {
      const pg = new Paged(pool, 3, 1, 2, rng);
      const prompt = Array.from({ length: 20 }, () => rng.int(0, 199));
      const first = m.runner.forward(pg.step([{ seq: 0, tokens: prompt, start: 0 }], 2, [19]));
      assert.is(first.appended.length, 3);
      // Offload layer 1's blocks once layer 1 has appended, while the step goes on.
      const blocks = pg.tables[0][1];
      const pairs = Int32Array.from(blocks.flatMap((x, i) => [x, i]));
      const off = b.copyBlocks(pool, host, pairs, { waitFor: [first.appended[1]] });
      const r1 = await first.work;
      await off;
      await Promise.all(first.appended);
      const offloaded = await host.read({ firstBlock: 0, numBlocks: 2 });
      // Clobber layer 1's device blocks, bring them back with a load that layer 1 of the next step waits for.
      await pool.write(new Uint16Array(pool.layout.blockStride).fill(0x7e00), { firstBlock: blocks[0] });
      const back = b.copyBlocks(host, pool, Int32Array.from(blocks.flatMap((x, i) => [i, x])));
      const next = r1.tokenIds[0];
      const step = { ...pg.step([{ seq: 0, tokens: [next], start: 20 }], 2, [0]), waitBeforeLayer: [undefined, [back], undefined] };
      const r2 = await m.runner.forward(step).work;
      const want = refForward(m.ref, [...prompt, next]);
      compareLogits(r2.logits!, want, [20], 200, 3e-2, 'after reload');
      assert.equal(Array.from(await host.read({ firstBlock: 0, numBlocks: 2 })), Array.from(offloaded));
    } finally {
      pool.release();
      host.release();
      m.runner.release();
      for (const t of m.tensors) t.release();
    }
  });

  test('step copies: a reload gating layer 1 restores clobbered blocks inside the step; copies that could not run in time are refused', async () => {
    const b = be();
    const rng = new Rng(18);
    const m = buildTiny(b, 19, { heads: 4, kvHeads: 2, vocab: 200, dtype: 'fp32', layers: 3 });
    const pool = b.createPool({ tier: 'device', numBlocks: 16, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp32' });
    const host = b.createPool({ tier: 'host', numBlocks: 16, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp32' });
    try {
      const pg = new Paged(pool, 3, 1, 2, rng);
      const prompt = Array.from({ length: 20 }, () => rng.int(0, 199));
      const r1 = await m.runner.forward(pg.step([{ seq: 0, tokens: prompt, start: 0 }], 2, [19])).work;
      const blocks = pg.tables[0][1];
      await b.copyBlocks(pool, host, Int32Array.from(blocks.flatMap((x, i) => [x, i])));
      for (const x of blocks) await pool.write(new Float32Array(pool.layout.blockStride).fill(NaN), { firstBlock: x });
      const next = r1.tokenIds[0];
      const back = Int32Array.from(blocks.flatMap((x, i) => [i, x]));
      const base = pg.step([{ seq: 0, tokens: [next], start: 20 }], 2, [0]);
      // Issued after layer 0, gating layer 1: layer 1 reads the restored blocks, not NaN.
      const f = m.runner.forward({ ...base, copies: [{ src: host, dst: pool, pairs: back, afterLayer: 0, beforeLayer: 1 }] });
      assert.is(f.copies.length, 1);
      const r2 = await f.work;
      await Promise.all(f.copies);
      compareLogits(r2.logits!, refForward(m.ref, [...prompt, next]), [20], 200, 1e-4, 'after an in-step reload');
      assert.throws(() => m.runner.forward({ ...base, copies: [{ src: host, dst: pool, pairs: back, afterLayer: 1, beforeLayer: 1 }] }), /forward: copies\[0\] gates layer 1 but can start only after layer 1/);
      assert.throws(
        () => m.runner.forward({ ...base, copies: [{ src: host, dst: pool, pairs: back, afterLayer: 1 }, { src: host, dst: pool, pairs: Int32Array.of(3, 9), after: [0], beforeLayer: 1 }] }),
        /forward: copies\[1\] gates layer 1 but can start only after layer 1/,
      );
      // A device-to-device copy runs on the compute queue: it cannot gate a layer of the step it rides in.
      assert.throws(() => m.runner.forward({ ...base, copies: [{ src: pool, dst: pool, pairs: Int32Array.of(10, 11), beforeLayer: 2 }] }), /forward: copies\[0\] gates layer 2 but is \(or waits for\) a device to device copy/);
      assert.throws(
        () => m.runner.forward({ ...base, copies: [{ src: pool, dst: pool, pairs: Int32Array.of(10, 11) }, { src: host, dst: pool, pairs: Int32Array.of(3, 12), after: [0], beforeLayer: 2 }] }),
        /forward: copies\[1\] gates layer 2 but is \(or waits for\) a device to device copy/,
      );
      // Not gating anything, it is fine: it runs once the step's layers are done.
      const f3 = m.runner.forward({ ...base, copies: [{ src: pool, dst: pool, pairs: Int32Array.of(blocks[0], 13), afterLayer: 2 }] });
      await f3.work;
      await Promise.all(f3.copies);
      assert.equal(Array.from(await pool.read({ firstBlock: 13, numBlocks: 1 })), Array.from(await pool.read({ firstBlock: blocks[0], numBlocks: 1 })));
    } finally {
      pool.release();
      host.release();
      m.runner.release();
      for (const t of m.tensors) t.release();
    }
  });

  test('sampling in the step: per-row seeds give the same ids whatever the batch', async () => {
    const b = be();
    const rng = new Rng(12);
    const m = buildTiny(b, 13, { heads: 4, kvHeads: 4, vocab: 64, dtype: 'fp32' });
    const pool = b.createPool({ tier: 'device', numBlocks: 32, numKvHeads: 4, headDim: 64, blockSize: 16, dtype: 'fp32' });
    try {
      const pg = new Paged(pool, 2, 3, 2, rng);
      const p = [Array.from({ length: 9 }, () => rng.int(0, 63)), Array.from({ length: 5 }, () => rng.int(0, 63))];
      const sampling = (n: number) => ({ temperature: new Float32Array(n).fill(1.5), topK: new Int32Array(n).fill(20), topP: new Float32Array(n).fill(0.9), seed: Float64Array.from({ length: n }, (_, i) => 1234 + i), counter: new Int32Array(n).fill(3) });
      const alone = await m.runner.forward({ ...pg.step([{ seq: 0, tokens: p[0], start: 0 }], 2, [8]), sampling: sampling(1) }).work;
      const both = await m.runner.forward({ ...pg.step([{ seq: 1, tokens: p[0], start: 0 }, { seq: 2, tokens: p[1], start: 0 }], 2, [8, 13]), sampling: sampling(2) }).work;
      assert.is(both.tokenIds[0], alone.tokenIds[0]);
      if (ops.info(b).batchInvariant) assert.equal(Array.from(both.logits!.subarray(0, 64)), Array.from(alone.logits!), 'a row\'s logits do not depend on the batch');
    } finally {
      pool.release();
      m.runner.release();
      for (const t of m.tensors) t.release();
    }
  });
});
