// The model's elementwise kernels that profit from a vector path (RMSNorm, SiLU-and-multiply,
// dtype conversion), written once against `Vec` (vec_*.h) and compiled once per ISA level,
// as attention_impl.h is: model_kernels_<level>.cc defines KVCAKE_CPU_NS, includes the
// standard and project headers, switches the target on, includes its vec_*.h and then this
// file, so everything here lives in that level's namespace. The other model kernels (RoPE,
// embedding gathers, adds, fills) are plain loops in model_kernels.cc at the baseline.
//
// Results depend on the level only through rounding (the AVX2 multiply-adds are fused, the
// scalar ones are not), never on the rows beside a row: a row's RMSNorm is a sum of squares
// in 8 explicit lanes with a fixed tree, whatever the batch (batch invariance).
#pragma once

namespace kvcake::cpu::KVCAKE_CPU_NS {

namespace {

using MF = Vec::F;
constexpr float kModelLog2e = 1.4426950408889634f;
static_assert(Vec::kLanes == 8, "the model's elementwise kernels are written for 8 lanes");

// Sum of squares of a row with 8 explicit lanes and a fixed tree, so it vectorizes without
// reassociation and gives the same bits for a row whatever else is in the batch. The tail
// goes through the same lanes, zero-padded.
float sumSquares(const float* x, int64_t n) {
  MF acc = Vec::zero();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const MF v = Vec::load(x + i);
    acc = Vec::fmadd(v, v, acc);
  }
  if (i < n) {
    float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(t, x + i, size_t(n - i) * sizeof(float));
    const MF v = Vec::load(t);
    acc = Vec::fmadd(v, v, acc);
  }
  float lanes[8];
  Vec::store(lanes, acc);
  float s4[4];
  for (int l = 0; l < 4; ++l) s4[l] = lanes[l] + lanes[l + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

void normRow(const float* x, const float* w, float* out, int64_t dim, float eps) {
  const float inv = 1.f / std::sqrt(sumSquares(x, dim) / float(dim) + eps);
  for (int64_t i = 0; i < dim; ++i) out[i] = (x[i] * inv) * w[i];
}

// silu(x) = x * sigmoid(x); sigmoid through 2^(-|x| log2 e) <= 1, the range Vec::exp2 covers
// exactly (arguments below -126 give 0).
inline MF silu(MF x) {
  const MF t = Vec::exp2(Vec::mul(Vec::abs(x), Vec::set1(-kModelLog2e)));
  const MF one = Vec::set1(1.f);
  const MF inv = Vec::div(one, Vec::add(one, t));
  return Vec::mul(x, Vec::selectNeg(x, Vec::mul(t, inv), inv));
}

inline float silu1(float x) {
  const float e = -std::fabs(x) * kModelLog2e;
  const float t = e < -126.f ? 0.f : std::exp2(e);
  const float inv = 1.f / (1.f + t);
  return x * (x < 0.f ? t * inv : inv);
}

template <DType S, DType D>
void convertTyped(const void* src, void* dst, int64_t n) {
  constexpr size_t kS = S == DType::F32 ? 4 : 2, kD = D == DType::F32 ? 4 : 2;
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) Vec::template storeT<D>(d + i * kD, Vec::template loadT<S>(s + i * kS));
  for (; i < n; ++i) storeElem(dst, i, D, loadElem(src, i, S));
}

template <DType S>
void convertFrom(const void* src, void* dst, DType dt, int64_t n) {
  switch (dt) {
    case DType::F32: return convertTyped<S, DType::F32>(src, dst, n);
    case DType::F16: return convertTyped<S, DType::F16>(src, dst, n);
    default: return convertTyped<S, DType::BF16>(src, dst, n);
  }
}

}  // namespace

void rmsnormRows(const RmsNormArgs& a, int64_t r0, int64_t r1) {
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
}

void siluMulRange(const SiluMulArgs& a, int64_t b, int64_t e) {
  int64_t i = b;
  while (i < e) {
    const int64_t r = i / a.dim, c = i - r * a.dim;
    const int64_t end = std::min(e, (r + 1) * a.dim);
    const float* g = a.x + r * 2 * a.dim;
    const float* u = g + a.dim;
    float* o = a.out + r * a.dim;
    int64_t j = c;
    const int64_t stop = end - r * a.dim;
    for (; j + 8 <= stop; j += 8) Vec::store(o + j, Vec::mul(silu(Vec::load(g + j)), Vec::load(u + j)));
    for (; j < stop; ++j) o[j] = silu1(g[j]) * u[j];
    i = end;
  }
}

void convert(const void* src, DType st, void* dst, DType dt, int64_t n) {
  switch (st) {
    case DType::F32: return convertFrom<DType::F32>(src, dst, dt, n);
    case DType::F16: return convertFrom<DType::F16>(src, dst, dt, n);
    default: return convertFrom<DType::BF16>(src, dst, dt, n);
  }
}

}  // namespace kvcake::cpu::KVCAKE_CPU_NS
