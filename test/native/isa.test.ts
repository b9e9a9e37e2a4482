// Run-time ISA dispatch of the CPU backend: info() says which level every kernel family
// runs (attention and the model's GEMM and elementwise kernels), cpuIsa and KVCAKE_CPU_ISA
// force a level, an unknown or unsupported level is a clear error (never a silent
// fallback), the benchmark references run, the store's checksum verifies across its paths,
// and the compiled objects keep every AVX instruction out of the code that runs before the
// dispatch.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonPath, createBackend, type CpuIsa } from '../../lib/index.js';
import { cpuIsas } from '../util/backends.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const LEVELS: CpuIsa[] = ['scalar', 'avx2', 'avx512', 'avx512bf16', 'avx512fp16'];
const rank = (l: string) => LEVELS.indexOf(l as CpuIsa);
const FAMILIES = ['decode.bf16', 'decode.fp16', 'decode.fp32', 'model.elementwise', 'model.gemm', 'prefill.bf16', 'prefill.fp16', 'prefill.fp32', 'reference'];

function childInfo(env: Record<string, string>): { status: number | null; out: string; err: string } {
  const code = "import { createBackend } from './lib/index.ts'; try { console.log(JSON.stringify(createBackend({ backend: 'cpu' }).info())) } catch (e) { console.error(e.constructor.name + ': ' + e.message); process.exit(3) }";
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

test('info() reports the best level by default and the level of every kernel family', () => {
  const be = createBackend({ backend: 'cpu', cpuIsa: 'auto' });
  const info = be.info();
  assert.is(info.backend, 'cpu');
  assert.is(info.device, be.deviceName);
  assert.ok(info.supportedIsas && info.supportedIsas[0] === 'scalar', `supportedIsas ${info.supportedIsas}`);
  assert.is(info.isa, info.supportedIsas!.at(-1));
  assert.ok(Array.isArray(info.cpuFeatures));
  if (info.isa !== 'scalar') assert.ok(info.cpuFeatures!.includes('avx2'), `features ${info.cpuFeatures}`);
  assert.ok(info.threads! >= 1);
  assert.equal(Object.keys(info.kernels!).sort(), FAMILIES);
  for (const [k, level] of Object.entries(info.kernels!))
    assert.ok(rank(level) >= 0 && rank(level) <= rank(info.isa!), `${k} runs ${level} above ${info.isa}`);
});

test('every supported level can be forced, and kernels stay at or below it', () => {
  for (const isa of cpuIsas()) {
    const info = createBackend({ backend: 'cpu', cpuIsa: isa }).info();
    assert.is(info.isa, isa);
    for (const [k, level] of Object.entries(info.kernels!)) assert.ok(rank(level) <= rank(isa), `${isa}: ${k} runs ${level}`);
    if (isa === 'scalar') assert.ok(Object.values(info.kernels!).every((l) => l === 'scalar'));
    if (isa !== 'scalar') {
      assert.is(info.kernels!['decode.fp16'], isa === 'avx2' ? 'avx2' : 'avx512');
      assert.is(info.kernels!['model.gemm'], isa === 'avx2' ? 'avx2' : 'avx512');
      assert.is(info.kernels!['model.elementwise'], 'avx2');
    }
    if (isa === 'avx512bf16') assert.is(info.kernels!['decode.bf16'], 'avx512bf16');
  }
});

test('an unknown level is a RangeError naming the option and the levels', () => {
  assert.throws(
    () => createBackend({ backend: 'cpu', cpuIsa: 'sse4' as CpuIsa }),
    (e: Error) =>
      e instanceof RangeError &&
      e.message === "createBackend: cpuIsa = 'sse4' is not a CPU ISA level; use auto, scalar, avx2, avx512, avx512bf16, avx512fp16",
  );
  assert.throws(() => createBackend({ backend: 'cpu', cpuIsa: 7 as unknown as CpuIsa }), (e: Error) => e instanceof TypeError && e.message === 'createBackend: cpuIsa must be a string');
  assert.throws(() => createBackend({ backend: 'cpu', cpuIsa: '' as CpuIsa }), (e: Error) => e instanceof RangeError && e.message === 'createBackend: cpuIsa must not be empty');
});

test('a level this CPU cannot run is a RangeError saying what it can run', () => {
  const supported = cpuIsas();
  const missing = LEVELS.find((l) => !supported.includes(l));
  if (!missing) {
    console.log('  (this CPU runs every level; the unsupported-level error is not reachable here)');
    return;
  }
  assert.throws(
    () => createBackend({ backend: 'cpu', cpuIsa: missing }),
    (e: Error) =>
      e instanceof RangeError &&
      e.message === `createBackend: cpuIsa = '${missing}': this CPU cannot run the ${missing} path (it supports ${supported.join(', ')})`,
    `forcing ${missing}`,
  );
});

test('KVCAKE_CPU_ISA forces the level of a backend created without cpuIsa, and a bad value is an error', () => {
  const r = childInfo({ KVCAKE_CPU_ISA: 'scalar' });
  assert.is(r.status, 0, r.err);
  const info = JSON.parse(r.out);
  assert.is(info.isa, 'scalar');
  assert.is(info.kernels['decode.fp16'], 'scalar');
  assert.is(info.kernels['model.gemm'], 'scalar');
  const bad = childInfo({ KVCAKE_CPU_ISA: 'avx9' });
  assert.is(bad.status, 3);
  assert.match(bad.err, "RangeError: KVCAKE_CPU_ISA = 'avx9' is not a CPU ISA level; use auto, scalar, avx2, avx512, avx512bf16, avx512fp16");
  // An explicit option wins over the environment.
  assert.is(createBackend({ backend: 'cpu', cpuIsa: 'scalar' }).info().isa, 'scalar');
});

test('benchmark references: a streaming read of listed blocks and the FMA peak', async () => {
  const be = createBackend({ backend: 'cpu' });
  const pool = be.createPool({ tier: 'device', numBlocks: 8, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
  try {
    assert.is(await be.referenceRead(pool, Int32Array.from([3, 1, 4, 1, 5])), 5 * pool.blockBytes);
    assert.is(await be.referenceRead(pool, new Int32Array(0)), 0);
    const flops = await be.referenceFma(1000);
    assert.ok(flops >= 1000 * 12 * 8 * 2 * (be.info().threads ?? 1), `flops ${flops}`);
    assert.throws(() => be.referenceRead(pool, Int32Array.from([0, 8])), (e: Error) => e instanceof RangeError && e.message === 'reference: blocks[1] = 8 is out of range [0, 8) for this pool');
    assert.throws(() => be.referenceFma(0), (e: Error) => e instanceof RangeError && /^reference: iterations = 0 is out of range/.test(e.message));
  } finally {
    pool.release();
  }
});

// One chunk (3 layers x 2 blocks of fp16, 48 KiB of payload, hashed block by block) written
// or read by a child process whose checksum path KVCAKE_CPU_ISA sets.
const CHUNK_CHILD = `
import path from 'node:path';
import { createBackend } from './lib/index.ts';
import { ChunkIo, chunkKeys, chunkSpec, keyContext } from './lib/store/index.ts';
const fp = { architecture: 'kvcake-isa-test', numLayers: 3, numKvHeads: 2, headDim: 64, dtype: 'fp16' };
const spec = chunkSpec(fp, 16, 32);
const key = chunkKeys(Int32Array.from({ length: 32 }, (_, i) => i), 32, keyContext(fp))[0];
const be = createBackend({ backend: 'cpu' });
const pool = be.createPool({ tier: 'host', numBlocks: 8, numKvHeads: 2, headDim: 64, blockSize: 16, dtype: 'fp16' });
const image = new Uint16Array(pool.bytes / 2).map((_, i) => Math.imul(i + 1, 2654435761) >>> 16);
const blocks = { pool, blocks: Int32Array.from([5, 0, 7, 2, 6, 1]) };
const io = new ChunkIo({ threads: 1 });
let same = true;
if (process.env.CHUNK_MODE === 'write') {
  await pool.write(image);
  await io.writeFile(blocks, process.env.CHUNK_DIR, spec, key);
} else {
  await io.readFile(blocks, path.join(process.env.CHUNK_DIR, key + '.kvc'), spec, key);
  const got = await pool.read();
  const elems = pool.blockBytes / 2;
  for (const b of blocks.blocks) for (let e = 0; e < elems; e++) if (got[b * elems + e] !== image[b * elems + e]) same = false;
}
io.close();
console.log(JSON.stringify({ path: ChunkIo.checksumPath, same }));
`;

test("the store's payload checksum is the same on every path: a chunk written on one verifies on another", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kvcake-isa-'));
  try {
    const run = (mode: 'write' | 'read', isa: string) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHUNK_CHILD], {
        cwd: root,
        env: { ...process.env, KVCAKE_CPU_ISA: isa, CHUNK_MODE: mode, CHUNK_DIR: dir },
        encoding: 'utf8',
      });
      assert.is(r.status, 0, `${mode} on ${isa || 'the best level'}: ${r.stderr}`);
      return JSON.parse(r.stdout) as { path: string; same: boolean };
    };
    const best = cpuIsas().at(-1)!;
    const paths = [run('write', 'scalar').path];
    for (const isa of cpuIsas()) {
      const r = run('read', isa);
      assert.ok(r.same, `read on ${isa}: the blocks differ from what was written`);
      paths.push(r.path);
    }
    rmSync(path.join(dir), { recursive: true, force: true });
    mkdirSync(dir);
    run('write', best);
    assert.ok(run('read', 'scalar').same);
    const want = (isa: string) => (isa === 'scalar' ? 'sse2' : isa === 'avx2' ? 'avx2' : 'avx512');
    if (process.arch === 'x64') assert.equal(paths, [want('scalar'), ...cpuIsas().map(want)], `paths ${paths}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no AVX instruction outside the *_avx2 / *_avx512 objects, nor outside their level namespaces', async () => {
  const objdir = path.join(root, 'build', 'Release', 'obj.target');
  const objdump = spawnSync('objdump', ['--version'], { encoding: 'utf8' });
  if (!existsSync(objdir) || objdump.status !== 0) {
    console.log(`  (skipped: ${!existsSync(objdir) ? 'no node-gyp objects in build/Release/obj.target' : 'objdump is not installed'})`);
    return;
  }
  const { checkIsaSplit } = (await import(path.join(root, 'scripts', 'check-isa-split.mjs'))) as {
    checkIsaSplit(dir: string): { checked: string[]; violations: string[] };
  };
  // node-gyp's objects, and cmake's when the addon under test is the cmake-js build.
  const dirs = [objdir];
  const cmakeDir = path.join(root, 'build-cuda', 'CMakeFiles');
  if (addonPath().startsWith(path.join(root, 'build-cuda') + path.sep) && existsSync(cmakeDir)) dirs.push(cmakeDir);
  for (const dir of dirs) {
    const { checked, violations } = checkIsaSplit(dir);
    for (const o of ['attention_avx512', 'gemm_avx2', 'gemm_avx512', 'model_kernels_avx2', 'checksum_avx2', 'checksum_avx512'])
      assert.ok(checked.some((c) => c.endsWith(`${o}.o`) || c.endsWith(`${o}.cc.o`)), `${o} not among the objects of ${dir}: ${checked.join(', ')}`);
    assert.ok(checked.some((o) => /(^|\/)isa(\.cc)?\.o$/.test(o)), `isa.o not among the objects of ${dir}`);
    assert.equal(violations, [], dir);
  }
});

// The child loads the addon file directly and runs one small fp32 decode and a few model
// ops (a bf16-weight GEMM, RMSNorm, SiLU-and-multiply, an fp16 conversion through embed);
// it prints the level it found, the outputs and the store's checksum path. Under
// qemu-x86_64 -cpu Westmere (SSE4.2, no AVX) this is a CPU without AVX2: the addon must
// load, pick the scalar paths and compute the same results.
const NO_AVX_CHILD = `
import { createRequire } from 'node:module';
const addon = createRequire(import.meta.url)(process.argv[1]);
const be = addon.createBackend('cpu', {});
const pool = be.createPool({ numBlocks: 4, numKvHeads: 1, headDim: 64, blockSize: 16, dtype: 'fp32', tier: 'device' });
await be.writePool(pool, 0, new Float32Array(4 * 2 * 16 * 64).map((_, i) => Math.sin(i))).promise;
const q = be.createTensor('fp32', 64);
await be.write(q, new Float32Array(64).map((_, i) => Math.cos(i))).promise;
const out = be.createTensor('fp32', 64);
await be.decode({ pool, q, out, blockTables: Int32Array.from([2, 0]), tableStride: 2, contextLens: Int32Array.from([20]), numHeads: 1 }).promise;
const read = async (t) => Array.from(new Float32Array(await be.read(t).promise));
const tensor = async (dtype, data) => {
  const t = be.createTensor(dtype, data.length);
  await be.write(t, data).promise;
  return t;
};
const ops = addon.modelOps;
const m = 3, n = 5, k = 37;
const a = await tensor('fp32', new Float32Array(m * k).map((_, i) => Math.sin(0.3 * i)));
const wBits = new Uint16Array(new Float32Array(n * k).map((_, i) => Math.cos(0.7 * i)).buffer).filter((_, i) => i % 2 === 1);
const w = await tensor('bf16', wBits);
const g = be.createTensor('fp32', m * n);
await ops.gemm(be, { a, w, out: g, m, n, k }).promise;
const normed = be.createTensor('fp32', m * n);
await ops.rmsnorm(be, { x: g, weight: await tensor('fp32', new Float32Array(n).fill(1.5)), out: normed, rows: m, dim: n, eps: 1e-5 }).promise;
const gateUp = await tensor('fp32', new Float32Array(2 * 2 * 19).map((_, i) => 4 * Math.sin(1.3 * i)));
const act = be.createTensor('fp32', 2 * 19);
await ops.siluMul(be, { x: gateUp, out: act, rows: 2, dim: 19 }).promise;
const table = await tensor('fp16', new Uint16Array(4 * 11).map((_, i) => 0x3c00 + 37 * i));
const emb = be.createTensor('fp32', 2 * 11);
await ops.embed(be, { table, ids: Int32Array.from([3, 1]), out: emb, vocab: 4, hidden: 11 }).promise;
const model = [...(await read(g)), ...(await read(normed)), ...(await read(act)), ...(await read(emb))];
let forced = '';
try { addon.createBackend('cpu', { cpuIsa: 'avx2' }); } catch (e) { forced = e.message; }
const info = ops.info(be);
const kernels = Object.fromEntries(Object.entries(be.info()).filter(([key]) => key.startsWith('kernel.')));
console.log(JSON.stringify({ isa: be.info().isa, kernels, gemm: info.gemm, checksum: addon.storeChecksumPath,
  out: await read(out), model, forced }));
`;

test('a CPU without AVX (qemu -cpu Westmere) loads the addon and runs the scalar paths with the same results', () => {
  const qemu = spawnSync('qemu-x86_64', ['--version'], { encoding: 'utf8' });
  if (process.arch !== 'x64' || qemu.status !== 0) {
    console.log('  (skipped: qemu-x86_64 is not installed; apt-get install qemu-user runs this check)');
    return;
  }
  type Report = { isa: string; kernels: Record<string, string>; gemm: string; checksum: string; out: number[]; model: number[]; forced: string };
  const run = (prefix: string[]) => {
    const cmd = [...prefix, process.execPath, '--input-type=module', '-e', NO_AVX_CHILD, addonPath()];
    const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env: { ...process.env, KVCAKE_CPU_ISA: '' } });
    assert.is(r.status, 0, `${cmd[0]}: status ${r.status} signal ${r.signal}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Report;
  };
  const host = run([]);
  const old = run(['qemu-x86_64', '-cpu', 'Westmere']);
  assert.is(old.isa, 'scalar');
  assert.ok(Object.values(old.kernels).every((l) => l === 'scalar'), JSON.stringify(old.kernels));
  assert.is(old.gemm, 'own scalar (dot-8)');
  assert.is(old.checksum, 'sse2');
  assert.is(old.forced, "createBackend: cpuIsa = 'avx2': this CPU cannot run the avx2 path (it supports scalar)");
  const close = (x: number, y: number) => Math.abs(x - y) <= 1e-5 + 1e-4 * Math.abs(y);
  for (let i = 0; i < 64; i++) assert.ok(close(old.out[i], host.out[i]), `decode element ${i}: ${old.out[i]} vs ${host.out[i]} (${host.isa})`);
  assert.is(old.model.length, host.model.length);
  for (let i = 0; i < host.model.length; i++)
    assert.ok(close(old.model[i], host.model[i]), `model output ${i}: ${old.model[i]} vs ${host.model[i]} (${host.gemm})`);
});

test.run();
