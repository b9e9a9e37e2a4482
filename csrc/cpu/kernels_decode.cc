#include <cmath>
#include <vector>

#include "cpu/dtype_cvt.h"
#include "cpu/kernels.h"

namespace kvcake::cpu {

void decodeAttention(const DecodeArgs& a, ThreadPool& pool) {
  const KVLayout& L = a.layout;
  const int D = L.headDim;
  const int group = a.numHeads / L.numKvHeads;
  pool.parallelFor(int64_t(a.batch) * a.numHeads, [&](int64_t task) {
    const int64_t b = task / a.numHeads;
    const int h = int(task % a.numHeads);
    const int kvh = h / group;
    const int64_t qOff = (b * a.numHeads + h) * D;
    const int64_t n = a.contextLens[b];
    std::vector<float> q(D), acc(D, 0.f);
    for (int d = 0; d < D; ++d) q[d] = loadElem(a.q, qOff + d, L.dtype);
    float m = -INFINITY, l = 0.f;
    for (int64_t p = 0; p < n; ++p) {
      const int64_t block = a.blockTables[b * a.tableStride + p / L.blockSize];
      const int tok = int(p % L.blockSize);
      const int64_t ko = L.offset(block, 0, kvh, tok), vo = L.offset(block, 1, kvh, tok);
      float s = 0.f;
      for (int d = 0; d < D; ++d) s += q[d] * loadElem(a.pool, ko + d, L.dtype);
      s *= a.scale;
      const float mNew = std::max(m, s);
      const float corr = std::exp(m - mNew), w = std::exp(s - mNew);
      l = l * corr + w;
      for (int d = 0; d < D; ++d) acc[d] = acc[d] * corr + w * loadElem(a.pool, vo + d, L.dtype);
      m = mNew;
    }
    const float inv = l > 0.f ? 1.f / l : 0.f;
    for (int d = 0; d < D; ++d) storeElem(a.out, qOff + d, L.dtype, acc[d] * inv);
  });
}

}  // namespace kvcake::cpu
