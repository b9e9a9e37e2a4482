// The optional OpenBLAS path of the model GEMM (KVCAKE_CPU_GEMM=openblas, many-row calls
// only): the serial OpenBLAS archive linked statically, run on kvcake's thread pool with
// the output's columns split across threads, one cblas_sgemm per chunk. 16-bit weights are
// widened to fp32 one chunk of rows at a time into a per-call buffer. Faster than the own
// kernels where only AVX2 is available, but not batch invariant: OpenBLAS picks kernels
// and blocking by shape, so a row's bits may change with the batch it shares.
#include "cpu/gemm_blas.h"

#include <algorithm>
#include <memory>
#include <string>

#include "common/error.h"
#include "cpu/model_kernels.h"

#ifdef KVCAKE_WITH_OPENBLAS
extern "C" {
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
char* openblas_get_corename(void);
char* openblas_get_config(void);
}
#endif

namespace kvcake::cpu {

bool openblasLinked() {
#ifdef KVCAKE_WITH_OPENBLAS
  return true;
#else
  return false;
#endif
}

std::string openblasName() {
#ifdef KVCAKE_WITH_OPENBLAS
  std::string cfg = openblas_get_config();
  const auto sp = cfg.find(' ', 9);  // "OpenBLAS 0.3.21 ..."
  return cfg.substr(0, sp) + " (" + openblas_get_corename() + " kernels, static, serial)";
#else
  return "";
#endif
}

void gemmOpenblas(const GemmArgs& g, ThreadPool& pool, Isa isa) {
#ifdef KVCAKE_WITH_OPENBLAS
  // Weight rows per task: few tasks (each cblas_sgemm packs all of a again), but enough to
  // balance the threads.
  const int64_t kChunk = std::min<int64_t>(1024, std::max<int64_t>(64, (g.n + 2 * pool.size() - 1) / (2 * pool.size()) / 16 * 16));
  const int64_t tasks = (g.n + kChunk - 1) / kChunk;
  pool.parallelFor(tasks, [&](int64_t i) {
    const int64_t n0 = i * kChunk, n = std::min(kChunk, g.n - n0);
    const float* w = nullptr;
    std::unique_ptr<float[]> wide;
    const size_t elem = dtypeSize(g.wType);
    const void* src = static_cast<const char*>(g.w) + size_t(n0 * g.k) * elem;
    if (g.wType == DType::F32) {
      w = static_cast<const float*>(src);
    } else {
      wide.reset(new float[size_t(n * g.k)]);
      convertElements(src, g.wType, wide.get(), DType::F32, n * g.k, isa);
      w = wide.get();
    }
    float* out = g.out + n0;
    // Row-major out[m][n] = a[m][k] . w[n][k]^T (101 = row major, 111 = no trans, 112 = trans).
    cblas_sgemm(101, 111, 112, int(g.m), int(n), int(g.k), 1.f, g.a, int(g.lda), w, int(g.k), 0.f, out, int(g.ldo));
    if (g.bias)
      for (int64_t r = 0; r < g.m; ++r)
        for (int64_t j = 0; j < n; ++j) out[r * g.ldo + j] += g.bias[n0 + j];
  });
#else
  (void)g;
  (void)pool;
  (void)isa;
  throw Error("gemm: this kvcake binary was built without OpenBLAS (install libopenblas-serial-dev and rebuild)");
#endif
}

}  // namespace kvcake::cpu
