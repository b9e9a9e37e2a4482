// Standalone check of the CUDA backend, for a GPU machine without Node:
//   nvcc -std=c++17 -O2 -I csrc -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=sm_80 \
//        tools/cuda-check/main.cu csrc/cuda/*.cu csrc/core/validate.cc -o cuda-check
//   ./cuda-check            correctness on randomized shapes, then timings
//   ./cuda-check --check    correctness only      ./cuda-check --bench    timings only
// Correctness goes through the Backend interface (staging, streams, events, kernels) and is
// compared with a naive CPU reference in double precision. Timings use the kernel
// launchers directly with cudaEvent timing.
// Exit status 0 when every check passed.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/validate.h"
#include "cuda/kernels.cuh"

using namespace kvcake;

namespace {

int failures = 0;
std::mt19937 rng(1234);

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("  FAIL %s\n", what.c_str());
  }
}

void cu(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "cuda %s: %s\n", what, cudaGetErrorString(e));
    std::exit(2);
  }
}

std::string wait(const EventPtr& e) {
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::string err;
  e->onComplete([&](const std::string& x) {
    std::lock_guard<std::mutex> lk(m);
    err = x;
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lk(m);
  cv.wait(lk, [&] { return done; });
  return err;
}

// Host-side element encode/decode for each dtype.
float decodeElem(DType t, const uint8_t* p) {
  if (t == DType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t u;
  std::memcpy(&u, p, 2);
  if (t == DType::F16) {
    __half_raw r;
    r.x = u;
    return __half2float(__half(r));
  }
  __nv_bfloat16_raw r;
  r.x = u;
  return __bfloat162float(__nv_bfloat16(r));
}
void encodeElem(DType t, float f, uint8_t* p) {
  if (t == DType::F32) {
    std::memcpy(p, &f, 4);
  } else if (t == DType::F16) {
    __half_raw r = __half_raw(__float2half_rn(f));
    std::memcpy(p, &r.x, 2);
  } else {
    __nv_bfloat16_raw r = __nv_bfloat16_raw(__float2bfloat16_rn(f));
    std::memcpy(p, &r.x, 2);
  }
}

// A host mirror of a dense array of one dtype, filled with uniform values in [-1, 1).
struct HostArray {
  DType t;
  std::vector<uint8_t> bytes;
  HostArray(DType dt, int64_t n, bool random = true) : t(dt), bytes(size_t(n) * dtypeSize(dt)) {
    if (!random) return;
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < n; ++i) encodeElem(t, u(rng), &bytes[size_t(i) * dtypeSize(t)]);
  }
  float at(int64_t i) const { return decodeElem(t, &bytes[size_t(i) * dtypeSize(t)]); }
};

Tensor upload(Backend& be, const HostArray& h, Tier tier = Tier::Device) {
  Tensor x;
  x.dtype = h.t;
  x.numel = int64_t(h.bytes.size() / dtypeSize(h.t));
  x.mem = be.allocate(h.bytes.size(), tier, "tensor");
  WriteOp w;
  w.dst = x.mem;
  w.bytes = std::make_shared<std::vector<uint8_t>>(h.bytes);
  std::string err = wait(be.write(w, Queue::HostToDevice, {}));
  check(err.empty(), "write: " + err);
  return x;
}

std::vector<uint8_t> download(Backend& be, const MemoryPtr& m) {
  ReadOp r;
  r.src = m;
  r.length = m->bytes;
  r.into = std::make_shared<std::vector<uint8_t>>(m->bytes);
  std::string err = wait(be.read(r, Queue::DeviceToHost, {}));
  check(err.empty(), "read: " + err);
  return *r.into;
}

float tolerance(DType t) { return t == DType::F32 ? 2e-4f : t == DType::F16 ? 4e-3f : 3e-2f; }

// Reference attention of one query head over positions 0..n-1 of a table row.
void refAttend(const KVLayout& L, const HostArray& pool, const int32_t* table, int n, const float* q, float scale,
               int kvh, float* out) {
  std::vector<double> s(n);
  double mx = -1e300;
  for (int p = 0; p < n; ++p) {
    const int64_t base = L.offset(table[p / L.blockSize], 0, kvh, p % L.blockSize);
    double acc = 0;
    for (int d = 0; d < L.headDim; ++d) acc += double(q[d]) * pool.at(base + d);
    s[p] = acc * scale;
    mx = std::max(mx, s[p]);
  }
  double sum = 0;
  for (int p = 0; p < n; ++p) sum += (s[p] = std::exp(s[p] - mx));
  for (int d = 0; d < L.headDim; ++d) {
    double acc = 0;
    for (int p = 0; p < n; ++p)
      acc += s[p] * pool.at(L.offset(table[p / L.blockSize], 1, kvh, p % L.blockSize) + d);
    out[d] = n > 0 ? float(acc / sum) : 0.f;
  }
}

struct PoolFixture {
  KVLayout L;
  HostArray host;
  Pool pool;
  PoolFixture(Backend& be, const KVLayout& l) : L(l), host(l.dtype, l.poolBytes() / int64_t(dtypeSize(l.dtype))) {
    Tensor t = upload(be, host);
    pool.mem = t.mem;
    pool.layout = L;
  }
};

// Random block tables: distinct blocks per sequence, shuffled so tables are scattered.
std::vector<int32_t> randomTables(int batch, int stride, int numBlocks) {
  std::vector<int32_t> ids(numBlocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<int32_t> t(size_t(batch) * stride);
  for (int b = 0; b < batch; ++b) {
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int i = 0; i < stride; ++i) t[size_t(b) * stride + i] = ids[i % numBlocks];
  }
  return t;
}

void checkDecode(Backend& be, DType dt, int D, int bs, int kvH, int G, std::vector<int32_t> ctx) {
  const int batch = int(ctx.size());
  const int maxCtx = *std::max_element(ctx.begin(), ctx.end());
  const int stride = std::max(1, (maxCtx + bs - 1) / bs);
  KVLayout L{stride + 3, kvH, D, bs, dt};
  PoolFixture pf(be, L);
  const int H = kvH * G;
  HostArray q(dt, int64_t(batch) * H * D);
  DecodeOp op;
  op.pool = pf.pool;
  op.q = upload(be, q);
  op.out = upload(be, HostArray(dt, int64_t(batch) * H * D, false));
  op.blockTables = randomTables(batch, stride, L.numBlocks);
  op.tableStride = stride;
  op.contextLens = ctx;
  op.batch = batch;
  op.numHeads = H;
  validateDecode(op);
  auto tables = op.blockTables;
  std::string err = wait(be.decode(op, {}));
  check(err.empty(), "decode: " + err);
  auto got = download(be, op.out.mem);
  const float scale = effectiveScale(0.f, D);
  float worst = 0;
  std::vector<float> qf(D), ref(D);
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < H; ++h) {
      for (int d = 0; d < D; ++d) qf[d] = q.at((int64_t(b) * H + h) * D + d);
      refAttend(L, pf.host, &tables[size_t(b) * stride], ctx[b], qf.data(), scale, h / G, ref.data());
      for (int d = 0; d < D; ++d)
        worst = std::max(worst, std::fabs(decodeElem(dt, &got[((int64_t(b) * H + h) * D + d) * dtypeSize(dt)]) - ref[d]));
    }
  char buf[200];
  std::snprintf(buf, sizeof buf, "decode %s D=%d bs=%d kvH=%d G=%d batch=%d maxCtx=%d: max err %.2e", dtypeName(dt), D, bs,
                kvH, G, batch, maxCtx, worst);
  check(worst <= tolerance(dt), buf);
}

void checkPrefill(Backend& be, DType dt, int D, int bs, int kvH, int G, std::vector<int32_t> qLens,
                  std::vector<int32_t> ctx) {
  const int batch = int(ctx.size());
  const int maxCtx = *std::max_element(ctx.begin(), ctx.end());
  const int stride = std::max(1, (maxCtx + bs - 1) / bs);
  KVLayout L{stride + 2, kvH, D, bs, dt};
  PoolFixture pf(be, L);
  const int H = kvH * G;
  std::vector<int32_t> start(batch + 1, 0);
  for (int b = 0; b < batch; ++b) start[b + 1] = start[b] + qLens[b];
  const int totalQ = start[batch];
  HostArray q(dt, int64_t(totalQ) * H * D);
  PrefillOp op;
  op.pool = pf.pool;
  op.q = upload(be, q);
  op.out = upload(be, HostArray(dt, int64_t(std::max(totalQ, 1)) * H * D, false));
  op.qStartLoc = start;
  op.blockTables = randomTables(batch, stride, L.numBlocks);
  op.tableStride = stride;
  op.contextLens = ctx;
  op.batch = batch;
  op.numHeads = H;
  op.scale = 0.1f;
  validatePrefill(op);
  auto tables = op.blockTables;
  std::string err = wait(be.prefill(op, {}));
  check(err.empty(), "prefill: " + err);
  auto got = download(be, op.out.mem);
  float worst = 0;
  std::vector<float> qf(D), ref(D);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < qLens[b]; ++i)
      for (int h = 0; h < H; ++h) {
        const int64_t row = (int64_t(start[b] + i) * H + h) * D;
        for (int d = 0; d < D; ++d) qf[d] = q.at(row + d);
        const int n = ctx[b] - qLens[b] + i + 1;
        refAttend(L, pf.host, &tables[size_t(b) * stride], n, qf.data(), 0.1f, h / G, ref.data());
        for (int d = 0; d < D; ++d) worst = std::max(worst, std::fabs(decodeElem(dt, &got[(row + d) * dtypeSize(dt)]) - ref[d]));
      }
  char buf[200];
  std::snprintf(buf, sizeof buf, "prefill %s D=%d bs=%d kvH=%d G=%d batch=%d totalQ=%d maxCtx=%d: max err %.2e",
                dtypeName(dt), D, bs, kvH, G, batch, totalQ, maxCtx, worst);
  check(worst <= tolerance(dt), buf);
}

void checkAppend(Backend& be, DType dt, int D, int bs, int kvH, int tokens) {
  KVLayout L{(tokens + bs - 1) / bs + 2, kvH, D, bs, dt};
  PoolFixture pf(be, L);
  HostArray k(dt, int64_t(tokens) * kvH * D), v(dt, int64_t(tokens) * kvH * D);
  std::vector<int32_t> slots(int64_t(L.numBlocks) * bs);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(tokens);
  for (int i = 0; i < tokens; i += 7) slots[i] = -1;  // padding rows
  AppendOp op;
  op.pool = pf.pool;
  op.k = upload(be, k);
  op.v = upload(be, v);
  op.slots = slots;
  validateAppend(op);
  std::string err = wait(be.append(op, {}));
  check(err.empty(), "append: " + err);
  auto got = download(be, pf.pool.mem);
  const size_t es = dtypeSize(dt);
  std::vector<uint8_t> want = pf.host.bytes;
  for (int t = 0; t < tokens; ++t) {
    if (slots[t] < 0) continue;
    for (int h = 0; h < kvH; ++h) {
      const int64_t src = (int64_t(t) * kvH + h) * D;
      std::memcpy(&want[L.offset(slots[t] / bs, 0, h, slots[t] % bs) * es], &k.bytes[src * es], D * es);
      std::memcpy(&want[L.offset(slots[t] / bs, 1, h, slots[t] % bs) * es], &v.bytes[src * es], D * es);
    }
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "append %s D=%d bs=%d kvH=%d tokens=%d", dtypeName(dt), D, bs, kvH, tokens);
  check(got == want, buf);
}

void checkCopy(Backend& be, Tier st, Tier dtier, const char* method) {
  setenv("KVCAKE_CUDA_COPY", method, 1);
  KVLayout L{64, 4, 128, 16, DType::BF16};
  HostArray src(L.dtype, L.poolBytes() / 2), dst(L.dtype, L.poolBytes() / 2);
  CopyOp op;
  op.src.layout = op.dst.layout = L;
  op.src.mem = upload(be, src, st).mem;
  op.dst.mem = upload(be, dst, dtier).mem;
  std::vector<int32_t> ids(L.numBlocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  // A consecutive run (coalesced) and scattered pairs.
  for (int i = 0; i < 8; ++i) op.pairs.insert(op.pairs.end(), {10 + i, 40 + i});
  for (int i = 0; i < 20; ++i)
    if (ids[i] < 40 || ids[i] >= 48) op.pairs.insert(op.pairs.end(), {ids[(i + 5) % 64], ids[i]});
  validateCopy(op);
  std::vector<uint8_t> want = dst.bytes;
  const int64_t bb = L.blockBytes();
  for (size_t i = 0; i < op.pairs.size(); i += 2)
    std::memcpy(&want[op.pairs[i + 1] * bb], &src.bytes[op.pairs[i] * bb], bb);
  auto dstMem = op.dst.mem;
  std::string err = wait(be.copyBlocks(op, {}));
  check(err.empty(), "copyBlocks: " + err);
  check(download(be, dstMem) == want,
        std::string("copyBlocks ") + tierName(st) + " -> " + tierName(dtier) + " method " + method);
  unsetenv("KVCAKE_CUDA_COPY");
}

void runChecks(Backend& be) {
  std::printf("correctness (vs a double-precision CPU reference)\n");
  const DType dts[] = {DType::F32, DType::F16, DType::BF16};
  for (DType dt : dts) {
    for (int D : {64, 80, 96, 128, 256}) checkAppend(be, dt, D, 16, 2, 37);
    checkAppend(be, dt, 128, 8, 3, 300);
  }
  std::uniform_int_distribution<int> len(0, 300);
  for (DType dt : dts)
    for (int D : {64, 80, 96, 128, 256}) {
      std::vector<int32_t> ctx;
      for (int i = 0; i < 5; ++i) ctx.push_back(len(rng));
      ctx[1] = 0;  // writes zeros
      checkDecode(be, dt, D, 16, 2, D == 128 ? 4 : 1, ctx);
    }
  // GQA widths and chunks, odd block sizes, long contexts that take the split-KV path.
  for (int G : {2, 3, 6, 8, 12}) checkDecode(be, DType::BF16, 128, 16, 2, G, {1, 77, 513});
  checkDecode(be, DType::F16, 128, 8, 1, 8, {5000, 3000});
  checkDecode(be, DType::F16, 64, 256, 2, 4, {4097, 1, 600});
  checkDecode(be, DType::F32, 96, 24, 2, 2, {2000});
  for (DType dt : dts)
    for (int D : {64, 80, 96, 128, 256}) checkPrefill(be, dt, D, 16, 2, 2, {70, 1, 130}, {70, 40, 200});
  checkPrefill(be, DType::BF16, 128, 8, 2, 4, {200, 64, 3}, {1000, 64, 500});
  checkPrefill(be, DType::F16, 128, 32, 1, 6, {65, 0, 129}, {300, 10, 129});
  checkPrefill(be, DType::F16, 256, 16, 1, 1, {100}, {2100});
  checkPrefill(be, DType::BF16, 64, 16, 2, 2, {300, 257}, {300, 700});  // several query tiles
  for (Tier s : {Tier::Device, Tier::Host})
    for (Tier d : {Tier::Device, Tier::Host})
      for (const char* m : {"auto", "batch", "memcpy", "kernel"}) checkCopy(be, s, d, m);
  std::printf("  %s (live device bytes now %lld)\n", failures ? "some checks FAILED" : "all passed",
              (long long)be.liveBytes(Tier::Device));
}

// ---- timings -------------------------------------------------------------------------

template <typename F>
float timeMs(F&& f, cudaStream_t st, int iters) {
  f();  // warm-up
  cudaEvent_t a, b;
  cu(cudaEventCreate(&a), "event");
  cu(cudaEventCreate(&b), "event");
  cu(cudaEventRecord(a, st), "record");
  for (int i = 0; i < iters; ++i) f();
  cu(cudaEventRecord(b, st), "record");
  cu(cudaEventSynchronize(b), "sync");
  cu(cudaGetLastError(), "launch");
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
}

void* devAlloc(size_t n) {
  void* p = nullptr;
  cu(cudaMalloc(&p, n), "malloc");
  cu(cudaMemset(p, 0, n), "memset");
  return p;
}
template <typename T>
T* devCopy(const std::vector<T>& v) {
  T* p = static_cast<T*>(devAlloc(v.size() * sizeof(T) + 16));
  cu(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  return p;
}

void benchDecode(int numSMs, int batch, int ctx, int kvH, int H, int D) {
  cudaStream_t st;
  cu(cudaStreamCreate(&st), "stream");
  const int bs = 16, blocksPer = ctx / bs;
  KVLayout L{batch * blocksPer, kvH, D, bs, DType::BF16};
  void* pool = devAlloc(L.poolBytes());
  std::vector<int32_t> ids(L.numBlocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);  // scattered blocks, as in a real pool
  std::vector<int32_t> lens(batch, ctx);
  cuda::DecodeArgs a;
  a.layout = L;
  a.pool = pool;
  a.q = devAlloc(size_t(batch) * H * D * 2);
  a.out = devAlloc(size_t(batch) * H * D * 2);
  a.blockTables = devCopy(ids);
  a.tableStride = blocksPer;
  a.numHeads = H;
  a.scale = 1.f / std::sqrt(float(D));
  a.rows.count = batch;
  a.rows.ctx = devCopy(lens);
  a.rows.maxCtx = ctx;
  auto sp = cuda::planDecodeSplit(a, numSMs);
  void* ws = sp.workspaceBytes ? devAlloc(sp.workspaceBytes) : nullptr;
  const float ms = timeMs([&] { cuda::launchDecode(a, sp, ws, st); }, st, 20);
  const double bytes = double(L.poolBytes());
  // D2D memcpy of the same bytes moves them twice (read + write).
  void* other = devAlloc(L.poolBytes());
  const float msCopy = timeMs([&] { cudaMemcpyAsync(other, pool, L.poolBytes(), cudaMemcpyDeviceToDevice, st); }, st, 20);
  const double gbs = bytes / ms / 1e6, copyGbs = 2 * bytes / msCopy / 1e6;
  std::printf("  decode bf16 batch %d x ctx %d, %d KV heads x %d, %d q heads: %.3f ms, %.0f GB/s KV read "
              "(%.2f of 3350 GB/s peak, %.2f of D2D memcpy %.0f GB/s), partitions %d\n",
              batch, ctx, kvH, D, H, ms, gbs, gbs / 3350, gbs / copyGbs, copyGbs, sp.partitions);
  cudaFree(other);
  cudaFree(pool);
  cudaStreamDestroy(st);
}

void benchPrefill(int S, int H, int kvH, int D) {
  cudaStream_t st;
  cu(cudaStreamCreate(&st), "stream");
  const int bs = 16;
  KVLayout L{S / bs, kvH, D, bs, DType::BF16};
  std::vector<int32_t> ids(L.numBlocks);
  std::iota(ids.begin(), ids.end(), 0);
  cuda::PrefillArgs a;
  a.layout = L;
  a.pool = devAlloc(L.poolBytes());
  a.q = devAlloc(size_t(S) * H * D * 2);
  a.out = devAlloc(size_t(S) * H * D * 2);
  a.blockTables = devCopy(ids);
  a.tableStride = L.numBlocks;
  a.qStartLoc = devCopy(std::vector<int32_t>{0, S});
  a.contextLens = devCopy(std::vector<int32_t>{S});
  a.numHeads = H;
  a.scale = 1.f / std::sqrt(float(D));
  std::vector<cuda::PrefillTile> tiles;
  for (int m0 = (S - 1) / cuda::kPrefillTileM * cuda::kPrefillTileM; m0 >= 0; m0 -= cuda::kPrefillTileM)
    tiles.push_back({0, m0});
  a.tiles = devCopy(tiles);
  a.numTiles = int(tiles.size());
  const float ms = timeMs([&] { cuda::launchPrefill(a, st); }, st, 5);
  const double flops = 4.0 * D * H * (double(S) * (S + 1) / 2);  // QK^T and PV over the causal triangle
  const double tf = flops / ms / 1e9;
  std::printf("  prefill bf16 causal %d tokens, %d heads (%d KV) x %d: %.2f ms, %.0f TFLOP/s (%.2f of 989)\n", S, H,
              kvH, D, ms, tf, tf / 989);
  cudaStreamDestroy(st);
}

void benchCopy(Backend& be, Tier s, Tier d, const char* method, int numBlocks, bool scattered) {
  KVLayout L{numBlocks, 8, 128, 16, DType::BF16};  // 64 KiB blocks
  CopyOp op;
  op.src.layout = op.dst.layout = L;
  op.src.mem = be.allocate(L.poolBytes(), s, "pool");
  op.dst.mem = be.allocate(L.poolBytes(), d, "pool");
  std::vector<int32_t> ids(numBlocks);
  std::iota(ids.begin(), ids.end(), 0);
  if (scattered) std::shuffle(ids.begin(), ids.end(), rng);
  for (int i = 0; i < numBlocks; ++i) op.pairs.insert(op.pairs.end(), {i, ids[i]});
  setenv("KVCAKE_CUDA_COPY", method, 1);
  wait(be.copyBlocks(op, {}));  // warm-up
  const int iters = 5;
  auto t0 = std::chrono::steady_clock::now();
  EventPtr last;
  for (int i = 0; i < iters; ++i) last = be.copyBlocks(op, {});
  std::string err = wait(last);
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
  unsetenv("KVCAKE_CUDA_COPY");
  std::printf("  copyBlocks %s -> %s %-6s %s %d x 64 KiB: %.1f GB/s%s\n", tierName(s), tierName(d), method,
              scattered ? "scattered " : "contiguous", numBlocks, L.poolBytes() / sec / 1e9,
              err.empty() ? "" : (" ERROR " + err).c_str());
}

void benchContiguous(Tier s, Tier d, size_t bytes) {
  void *src, *dst;
  if (s == Tier::Device) src = devAlloc(bytes); else cu(cudaHostAlloc(&src, bytes, 0), "host alloc");
  if (d == Tier::Device) dst = devAlloc(bytes); else cu(cudaHostAlloc(&dst, bytes, 0), "host alloc");
  cudaStream_t st;
  cu(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "stream");
  const float ms = timeMs([&] { cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st); }, st, 5);
  std::printf("  contiguous cudaMemcpyAsync %s -> %s %zu MiB: %.1f GB/s\n", tierName(s), tierName(d), bytes >> 20,
              bytes / ms / 1e6);
  s == Tier::Device ? cudaFree(src) : cudaFreeHost(src);
  d == Tier::Device ? cudaFree(dst) : cudaFreeHost(dst);
  cudaStreamDestroy(st);
}

void runBench(Backend& be, int numSMs) {
  std::printf("timings\n");
  benchDecode(numSMs, 32, 8192, 8, 32, 128);
  benchDecode(numSMs, 32, 8192, 8, 64, 128);
  benchDecode(numSMs, 256, 2048, 8, 32, 128);
  benchDecode(numSMs, 1, 65536, 8, 32, 128);
  benchPrefill(8192, 32, 8, 128);
  benchPrefill(8192, 32, 32, 128);
  benchPrefill(4096, 16, 16, 64);
  const int n = 2048;  // 128 MiB
  for (auto [s, d] : {std::pair{Tier::Device, Tier::Host}, std::pair{Tier::Host, Tier::Device},
                      std::pair{Tier::Device, Tier::Device}}) {
    benchContiguous(s, d, size_t(n) * 65536);
    for (const char* m : {"batch", "memcpy", "kernel"}) benchCopy(be, s, d, m, n, true);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool onlyCheck = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const bool onlyBench = argc > 1 && std::strcmp(argv[1], "--bench") == 0;
  std::string why;
  if (!cudaUsable(&why)) {
    std::printf("CUDA not usable: %s\n", why.c_str());
    return 3;
  }
  try {
    auto be = createCudaBackend(0);
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    std::printf("device: %s, %d SMs\n", be->deviceName().c_str(), sms);
    if (!onlyBench) runChecks(*be);
    if (!onlyCheck) runBench(*be, sms);
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  return failures ? 1 : 0;
}
