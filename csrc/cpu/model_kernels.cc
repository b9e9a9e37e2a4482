#include "cpu/model_kernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/error.h"
#include "common/thread_pool.h"
#include "core/completion_event.h"
#include "core/rng.h"
#include "cpu/dtype_cvt.h"
#include "cpu/gemm.h"
#include "cpu/gemm_blas.h"
#include "cpu/kernels.h"
#include "cpu/simd.h"

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

// Sum of squares of a row with 8 explicit lanes and a fixed tree, so it vectorizes without
// reassociation and gives the same bits for a row whatever else is in the batch.
float sumSquares(const float* x, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  for (int l = 0; i < n; ++i, ++l) lanes[l] = std::fma(x[i], x[i], lanes[l]);
  float s4[4];
  for (int l = 0; l < 4; ++l) s4[l] = lanes[l] + lanes[l + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

void normRow(const float* x, const float* w, float* out, int64_t dim, float eps) {
  const float inv = 1.f / std::sqrt(sumSquares(x, dim) / float(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) out[i] = (x[i] * inv) * w[i];
}

// silu(x) = x * sigmoid(x); sigmoid through 2^(-|x| log2 e) <= 1, the range exp2Neg covers.
inline __m256 silu8(__m256 x) {
  const __m256 absx = _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
  const __m256 t = simd::exp2Neg(_mm256_mul_ps(absx, _mm256_set1_ps(-simd::kLog2e)));
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 inv = _mm256_div_ps(one, _mm256_add_ps(one, t));
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  const __m256 sig = _mm256_blendv_ps(inv, _mm256_mul_ps(t, inv), neg);
  return _mm256_mul_ps(x, sig);
}

inline float silu1(float x) {
  const float t = simd::exp2Scalar(-std::fabs(x) * simd::kLog2e);
  const float inv = 1.f / (1.f + t);
  return x * (x < 0.f ? t * inv : inv);
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
    parallelRange(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.dim)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* x = a.x + r * a.xStride;
        float* out = a.out + r * a.outStride;
        if (a.residual) {
          float* res = a.residual + r * a.dim;
          for (int64_t i = 0; i < a.dim; ++i) res[i] += x[i];
          normRow(res, a.weight, out, a.dim, a.eps);
        } else {
          normRow(x, a.weight, out, a.dim, a.eps);
        }
      }
    });
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
    parallelRange(a.rows * a.dim, 16384, [&](int64_t b, int64_t e) {
      int64_t i = b;
      while (i < e) {
        const int64_t r = i / a.dim, c = i - r * a.dim;
        const int64_t end = std::min(e, (r + 1) * a.dim);
        const float* g = a.x + r * 2 * a.dim;
        const float* u = g + a.dim;
        float* o = a.out + r * a.dim;
        int64_t j = c;
        const int64_t stop = end - r * a.dim;
        for (; j + 8 <= stop; j += 8)
          _mm256_storeu_ps(o + j, _mm256_mul_ps(silu8(_mm256_loadu_ps(g + j)), _mm256_loadu_ps(u + j)));
        for (; j < stop; ++j) o[j] = silu1(g[j]) * u[j];
        i = end;
      }
    });
  }

  void embed(const EmbedArgs& a) override {
    parallelRange(a.tokens, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row = int64_t(a.ids[t]) * a.hidden;
        float* o = a.out + t * a.hidden;
        for (int64_t i = 0; i < a.hidden; ++i) o[i] = loadElem(a.table, row + i, a.dtype);
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
        const int64_t so = sr * a.srcStride, dof = dr * a.dstStride;
        if (a.srcType == a.dstType) {
          std::memcpy(static_cast<char*>(a.dst) + dof * dtypeSize(a.dstType),
                      static_cast<const char*>(a.src) + so * dtypeSize(a.srcType), size_t(a.cols) * dtypeSize(a.srcType));
        } else {
          for (int64_t c = 0; c < a.cols; ++c) storeElem(a.dst, dof + c, a.dstType, loadElem(a.src, so + c, a.srcType));
        }
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

Isa modelIsa(bool* forced) {
  const char* s = std::getenv("KVCAKE_CPU_ISA");
  if (!s || !*s) {
    if (forced) *forced = false;
    return bestIsa() >= Isa::Avx512 ? bestIsa() : Isa::Avx2;
  }
  Isa want;
  if (!parseIsa(s, &want))
    throw Error(std::string("KVCAKE_CPU_ISA must be one of scalar, avx2, avx512, avx512bf16, got '") + s + "'");
  if (!isaSupported(want))
    throw Error(std::string("KVCAKE_CPU_ISA=") + s + " is not supported by this CPU (it has: " + featureList() + ")");
  if (want == Isa::Scalar)
    throw Error("KVCAKE_CPU_ISA=scalar: this build's CPU kernels need avx2 (the x86-64 baseline kvcake is compiled for)");
  if (forced) *forced = true;
  return want;
}

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
  if (g.impl == 2 || (g.impl == 0 && path == GemmPath::Openblas && g.m >= 32)) return gemmOpenblas(g, pool());
  auto* fn = isa >= Isa::Avx512 ? gemmBlockAvx512 : gemmBlockAvx2;
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

double fmaPeakGflops(Isa isa, double seconds) {
  auto* loop = isa >= Isa::Avx512 ? fmaLoopAvx512 : fmaLoopAvx2;
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
