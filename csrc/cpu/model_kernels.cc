// The CPU kernel set's plumbing and dispatch, compiled for the baseline like every file
// without a level suffix: each kernel family lists the levels it implements (registered
// for the backend's info()), and a call runs the highest of them at or below the backend's
// ceiling, in the level's own namespace (model_paths.h). No kernel here reads the
// environment or CPUID; the ceiling comes from the backend (cpu/isa.h resolveIsa).
#include "cpu/model_kernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/thread_pool.h"
#include "core/completion_event.h"
#include "core/rng.h"
#include "cpu/dtype_scalar.h"
#include "cpu/gemm_blas.h"
#include "cpu/kernels.h"
#include "cpu/model_paths.h"

namespace kvcake::cpu {

namespace {

ThreadPool& pool() { return ThreadPool::global(); }

// Splits [0, n) into about `parts` chunks of at least `minChunk` and runs fn(begin, end).
template <typename F>
void parallelRange(int64_t n, int64_t minChunk, F&& fn) {
  if (n <= 0) return;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(int64_t(pool().size()) * 4, n / std::max<int64_t>(1, minChunk)));
  const int64_t chunk = (n + parts - 1) / parts;
  pool().parallelFor((n + chunk - 1) / chunk, [&](int64_t i) {
    const int64_t b = i * chunk;
    fn(b, std::min(n, b + chunk));
  });
}

#if defined(__x86_64__) || defined(_M_X64)
#define KVCAKE_MODEL_X86 1
const KernelPaths kGemm("model.gemm", {Isa::Avx512, Isa::Avx2, Isa::Scalar});
const KernelPaths kElementwise("model.elementwise", {Isa::Avx2, Isa::Scalar});
#else
const KernelPaths kGemm("model.gemm", {Isa::Scalar});
const KernelPaths kElementwise("model.elementwise", {Isa::Scalar});
#endif

void rmsnormRows(const RmsNormArgs& a, int64_t r0, int64_t r1, Isa isa) {
#ifdef KVCAKE_MODEL_X86
  if (kElementwise.pick(isa) >= Isa::Avx2) return avx2::rmsnormRows(a, r0, r1);
#endif
  scalar::rmsnormRows(a, r0, r1);
}

void siluMulRange(const SiluMulArgs& a, int64_t b, int64_t e, Isa isa) {
#ifdef KVCAKE_MODEL_X86
  if (kElementwise.pick(isa) >= Isa::Avx2) return avx2::siluMulRange(a, b, e);
#endif
  scalar::siluMulRange(a, b, e);
}

using GemmBlockFn = void (*)(const GemmTask&, int64_t, int64_t, int64_t, int64_t);
using FmaLoopFn = double (*)(int64_t);

GemmBlockFn gemmBlockFor(Isa isa) {
  switch (kGemm.pick(isa)) {
#ifdef KVCAKE_MODEL_X86
    case Isa::Avx512Fp16:
    case Isa::Avx512Bf16:
    case Isa::Avx512: return avx512::gemmBlock;
    case Isa::Avx2: return avx2::gemmBlock;
#endif
    default: return scalar::gemmBlock;
  }
}

FmaLoopFn fmaLoopFor(Isa isa) {
  switch (kGemm.pick(isa)) {
#ifdef KVCAKE_MODEL_X86
    case Isa::Avx512Fp16:
    case Isa::Avx512Bf16:
    case Isa::Avx512: return avx512::fmaLoop;
    case Isa::Avx2: return avx2::fmaLoop;
#endif
    default: return scalar::fmaLoop;
  }
}

std::string waitOne(const EventPtr& e) {
  struct Sync {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::string error;
  };
  auto s = std::make_shared<Sync>();
  e->onComplete([s](const std::string& err) {
    std::lock_guard<std::mutex> lk(s->m);
    s->done = true;
    s->error = err;
    s->cv.notify_all();
  });
  std::unique_lock<std::mutex> lk(s->m);
  s->cv.wait(lk, [&] { return s->done; });
  return s->error;
}

class CpuKernelSet final : public KernelSet {
 public:
  CpuKernelSet(Isa isa, GemmPath path) : isa_(isa), path_(path) {}

  void* ptr(const MemoryPtr& m) override { return m ? m->data : nullptr; }
  const void* upload(const void* host, size_t) override { return host; }
  void* scratch(size_t bytes) override {
    scratch_.emplace_back(new float[(bytes + 3) / 4 + 16]);
    return scratch_.back().get();
  }
  void download(void* host, const void* src, size_t bytes) override {
    if (host != src && bytes) std::memcpy(host, src, bytes);
  }

  void gemm(const GemmArgs& a) override { cpu::gemm(a, isa_, path_); }

  void rmsnorm(const RmsNormArgs& a) override {
    parallelRange(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.dim)),
                  [&](int64_t r0, int64_t r1) { rmsnormRows(a, r0, r1, isa_); });
  }

  void ropeTable(const RopeTableArgs& a) override {
    parallelRange(a.tokens, 8, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        for (int32_t i = 0; i < a.half; ++i) {
          const double ang = double(a.positions[t]) * a.invFreq[i];
          a.cos[t * a.half + i] = float(std::cos(ang));
          a.sin[t * a.half + i] = float(std::sin(ang));
        }
    });
  }

  void rope(const RopeArgs& a) override {
    const int half = a.headDim / 2;
    parallelRange(a.tokens, 4, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const float* c = a.cos + t * half;
        const float* s = a.sin + t * half;
        auto rot = [&](float* x) {
          for (int i = 0; i < half; ++i) {
            const float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * c[i] - x1 * s[i];
            x[i + half] = x1 * c[i] + x0 * s[i];
          }
        };
        for (int h = 0; h < a.numHeads; ++h) rot(a.q + t * a.qStride + int64_t(h) * a.headDim);
        if (a.k)
          for (int h = 0; h < a.numKvHeads; ++h) rot(a.k + t * a.kStride + int64_t(h) * a.headDim);
      }
    });
  }

  void siluMul(const SiluMulArgs& a) override {
    parallelRange(a.rows * a.dim, 16384, [&](int64_t b, int64_t e) { siluMulRange(a, b, e, isa_); });
  }

  void embed(const EmbedArgs& a) override {
    const size_t elem = dtypeSize(a.dtype);
    parallelRange(a.tokens, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const void* row = static_cast<const char*>(a.table) + size_t(int64_t(a.ids[t]) * a.hidden) * elem;
        cpu::convertElements(row, a.dtype, a.out + t * a.hidden, DType::F32, a.hidden, isa_);
      }
    });
  }

  void gather(const GatherArgs& a) override {
    for (int64_t i = 0; i < a.count; ++i) {
      const float* s = a.src + int64_t(a.rows[i]) * a.dim;
      float* d = a.dst + i * a.dim;
      if (a.addend) {
        const float* x = a.addend + int64_t(a.rows[i]) * a.dim;
        for (int64_t j = 0; j < a.dim; ++j) d[j] = s[j] + x[j];
      } else {
        std::memcpy(d, s, size_t(a.dim) * 4);
      }
    }
  }

  void convert(const ConvertArgs& a) override {
    parallelRange(a.rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, a.cols)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t sr = a.gather ? a.gather[r] : r;
        const int64_t dr = a.scatter ? a.scatter[r] : r;
        const void* src = static_cast<const char*>(a.src) + size_t(sr * a.srcStride) * dtypeSize(a.srcType);
        void* dst = static_cast<char*>(a.dst) + size_t(dr * a.dstStride) * dtypeSize(a.dstType);
        cpu::convertElements(src, a.srcType, dst, a.dstType, a.cols, isa_);
      }
    });
  }

  void add(const AddArgs& a) override {
    parallelRange(a.n, 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) a.out[i] = a.a[i] + a.b[i];
    });
  }

  void fill(const FillArgs& a) override {
    parallelRange(a.numel, 65536, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) storeElem(a.data, i, a.dtype, float(uniformAt(a.seed, uint64_t(i), a.low, a.high)));
    });
  }

  void append(const AttnAppendArgs& a) override {
    AppendArgs x{a.layout, a.pool, a.k, a.v, a.hostSlots, a.numTokens};
    if (a.numTokens > 0) appendKV(x, pool());
  }

  void decode(const AttnArgs& a) override {
    if (a.batch == 0) return;
    DecodeArgs x{a.layout,    a.pool,          a.q,     a.out,      a.hostTables, a.tableStride,
                 a.hostContextLens, a.batch, a.numHeads, a.scale};
    decodeAttention(x, pool(), isa_);
  }

  void prefill(const AttnArgs& a) override {
    if (a.batch == 0) return;
    PrefillArgs x{a.layout,      a.pool,      a.q,          a.out,          a.hostQStartLoc, a.hostTables,
                  a.tableStride, a.hostContextLens, a.batch, a.numHeads, a.scale};
    prefillAttention(x, pool(), isa_);
  }

  void wait(const Deps& deps) override {
    for (const auto& d : deps) {
      const std::string e = waitOne(d);
      if (!e.empty()) throw Error("an op it waits for failed: " + e);
    }
  }

  void signal(const EventPtr& marker) override {
    static_cast<CompletionEvent*>(marker.get())->complete("");
  }

 private:
  Isa isa_;
  GemmPath path_;
  std::vector<std::unique_ptr<float[]>> scratch_;
};

}  // namespace

GemmPath modelGemmPath() {
  const char* s = std::getenv("KVCAKE_CPU_GEMM");
  if (!s || !*s || std::strcmp(s, "own") == 0) return GemmPath::Own;
  if (std::strcmp(s, "openblas") == 0) {
    if (!openblasLinked())
      throw Error("KVCAKE_CPU_GEMM=openblas: this kvcake binary was built without OpenBLAS (install "
                  "libopenblas-serial-dev and rebuild)");
    return GemmPath::Openblas;
  }
  throw Error(std::string("KVCAKE_CPU_GEMM must be own or openblas, got '") + s + "'");
}

std::unique_ptr<KernelSet> createCpuKernelSet(Isa isa, GemmPath path) {
  return std::make_unique<CpuKernelSet>(isa, path);
}

void gemm(const GemmArgs& g, Isa isa, GemmPath path) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.impl == 2 || (g.impl == 0 && path == GemmPath::Openblas && g.m >= 32)) return gemmOpenblas(g, pool(), isa);
  const GemmBlockFn fn = gemmBlockFor(isa);
  const GemmTask t{g.a, g.lda, g.w, int32_t(g.wType), g.bias, g.out, g.ldo, g.k};
  const int64_t threads = pool().size();
  // Small m (decode): split the weight rows only, into enough chunks to balance the
  // threads; each chunk streams its rows of w once for all m rows of a.
  // Larger m: 128 x 16 output blocks: a 4-row tile of w stays in L1 while up to 128 rows
  // of a pass by (measured best among 8..256-row blocks; the bench tracks it).
  const int64_t mc = g.m <= 8 ? g.m : 128;
  int64_t nc = 16;
  if (g.m <= 8) nc = std::max<int64_t>(8, (g.n + threads * 8 - 1) / (threads * 8) / 8 * 8);
  const int64_t mBlocks = (g.m + mc - 1) / mc, nBlocks = (g.n + nc - 1) / nc;
  pool().parallelFor(mBlocks * nBlocks, [&](int64_t i) {
    const int64_t mb = i % mBlocks, nb = i / mBlocks;
    const int64_t m0 = mb * mc, n0 = nb * nc;
    fn(t, m0, std::min(g.m, m0 + mc), n0, std::min(g.n, n0 + nc));
  });
}

Isa gemmIsa(Isa isa) { return kGemm.pick(isa); }

std::string gemmPathName(Isa isa) {
  const Isa level = gemmIsa(isa);
  return std::string(isaName(level)) + (level >= Isa::Avx512 ? " (dot-16)" : " (dot-8)");
}

void convertElements(const void* src, DType st, void* dst, DType dt, int64_t n, Isa isa) {
  if (n <= 0) return;
  if (st == dt) {
    std::memcpy(dst, src, size_t(n) * dtypeSize(st));
    return;
  }
#ifdef KVCAKE_MODEL_X86
  if (kElementwise.pick(isa) >= Isa::Avx2) return avx2::convert(src, st, dst, dt, n);
#endif
  scalar::convert(src, st, dst, dt, n);
}

double fmaPeakGflops(Isa isa, double seconds) {
  const FmaLoopFn loop = fmaLoopFor(isa);
  const int threads = pool().size();
  // Calibrate the iteration count on one thread, then run all threads at once.
  int64_t iters = 1 << 16;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    loop(iters);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > seconds / 8 || iters > (int64_t(1) << 34)) {
      iters = int64_t(double(iters) * seconds / std::max(s, 1e-9));
      break;
    }
    iters *= 4;
  }
  std::vector<double> flops(size_t(threads), 0.0);
  const auto t0 = std::chrono::steady_clock::now();
  pool().parallelFor(threads, [&](int64_t i) { flops[size_t(i)] = loop(iters); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / s / 1e9;
}

}  // namespace kvcake::cpu
