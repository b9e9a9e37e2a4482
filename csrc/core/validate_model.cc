// Argument checks of the model ops (core/model_ops.h), in the style of core/validate.cc:
// every message names the op, the argument, the value and the limit.
#include <cmath>
#include <sstream>
#include <string>

#include "common/error.h"
#include "core/model_ops.h"

namespace kvcake {

namespace {

template <typename... T>
[[noreturn]] void fail(const T&... parts) {
  throwArgParts(parts...);
}

constexpr int64_t kMaxDim = int64_t(1) << 31;

void checkDim(const char* op, const char* name, int64_t v, int64_t min = 1) {
  if (v < min || v > kMaxDim) fail(op, ": ", name, " = ", v, " is out of range [", min, ", ", kMaxDim, "]");
}

void checkLive(const char* op, const char* name, const Tensor& t) {
  if (!t.mem || !t.mem->data) fail(op, ": ", name, " has been released");
  if (t.mem->bytes < size_t(t.numel) * dtypeSize(t.dtype))
    fail(op, ": ", name, " memory is smaller than its ", t.numel, " elements");
}

// `what` describes the shape in the message, e.g. "[m 3][k 4]".
void checkNumel(const char* op, const char* name, const Tensor& t, int64_t need, const std::string& what) {
  if (t.numel < need) fail(op, ": ", name, " has ", t.numel, " elements but ", what, " needs ", need);
}

void checkFp32(const char* op, const char* name, const Tensor& t) {
  checkLive(op, name, t);
  if (t.dtype != DType::F32) fail(op, ": ", name, " must be fp32, got ", dtypeName(t.dtype));
}

std::string shape(std::initializer_list<std::pair<const char*, int64_t>> dims) {
  std::ostringstream s;
  for (const auto& d : dims) s << "[" << d.first << " " << d.second << "]";
  return s.str();
}

void checkEps(const char* op, float eps) {
  if (!(eps > 0.f) || !std::isfinite(eps)) fail(op, ": eps must be a positive finite number, got ", eps);
}

}  // namespace

void validateGemm(const GemmOp& op) {
  const char* o = "gemm";
  checkDim(o, "m", op.m);
  checkDim(o, "n", op.n);
  checkDim(o, "k", op.k);
  checkFp32(o, "a", op.a);
  checkNumel(o, "a", op.a, op.m * op.k, shape({{"m", op.m}, {"k", op.k}}));
  checkLive(o, "w", op.w);
  checkNumel(o, "w", op.w, op.n * op.k, shape({{"n", op.n}, {"k", op.k}}));
  if (op.bias.mem) {
    checkFp32(o, "bias", op.bias);
    checkNumel(o, "bias", op.bias, op.n, shape({{"n", op.n}}));
  }
  checkFp32(o, "out", op.out);
  checkNumel(o, "out", op.out, op.m * op.n, shape({{"m", op.m}, {"n", op.n}}));
  if (op.out.mem == op.a.mem) fail(o, ": out must be a different tensor from a");
  if (op.out.mem == op.w.mem) fail(o, ": out must be a different tensor from w");
}

void validateRmsNorm(const RmsNormOp& op) {
  const char* o = "rmsnorm";
  checkDim(o, "rows", op.rows);
  checkDim(o, "dim", op.dim);
  checkEps(o, op.eps);
  const std::string sh = shape({{"rows", op.rows}, {"dim", op.dim}});
  checkFp32(o, "x", op.x);
  checkNumel(o, "x", op.x, op.rows * op.dim, sh);
  checkFp32(o, "weight", op.weight);
  checkNumel(o, "weight", op.weight, op.dim, shape({{"dim", op.dim}}));
  checkFp32(o, "out", op.out);
  checkNumel(o, "out", op.out, op.rows * op.dim, sh);
  if (op.residual.mem) {
    checkFp32(o, "residual", op.residual);
    checkNumel(o, "residual", op.residual, op.rows * op.dim, sh);
    if (op.residual.mem == op.x.mem || op.residual.mem == op.out.mem)
      fail(o, ": residual must be a different tensor from x and out");
  }
}

void validateRopeScaling(const char* o, const RopeScaling& s, double theta) {
  if (!(theta > 1.0) || !std::isfinite(theta)) fail(o, ": theta must be a finite number > 1, got ", theta);
  if (!s.llama3) return;
  if (!(s.factor >= 1.0) || !std::isfinite(s.factor)) fail(o, ": scaling.factor must be a finite number >= 1, got ", s.factor);
  if (!(s.lowFreqFactor > 0.0) || !std::isfinite(s.lowFreqFactor))
    fail(o, ": scaling.lowFreqFactor must be a positive finite number, got ", s.lowFreqFactor);
  if (!(s.highFreqFactor > s.lowFreqFactor) || !std::isfinite(s.highFreqFactor))
    fail(o, ": scaling.highFreqFactor ", s.highFreqFactor, " must be greater than lowFreqFactor ", s.lowFreqFactor);
  if (!(s.originalMax >= 1.0) || !std::isfinite(s.originalMax))
    fail(o, ": scaling.originalMaxPositionEmbeddings must be >= 1, got ", s.originalMax);
}

void validateRope(const RopeOp& op) {
  const char* o = "rope";
  const int64_t T = int64_t(op.positions.size());
  if (T < 1) fail(o, ": positions is empty");
  if (op.headDim < 2 || op.headDim > Limits::kMaxHeadDim || op.headDim % 2 != 0)
    fail(o, ": headDim ", op.headDim, " must be even and in [2, ", Limits::kMaxHeadDim, "]");
  if (op.numHeads < 1 || op.numHeads > Limits::kMaxHeads)
    fail(o, ": numHeads ", op.numHeads, " is out of range [1, ", Limits::kMaxHeads, "]");
  validateRopeScaling(o, op.scaling, op.theta);
  for (int64_t i = 0; i < T; ++i)
    if (op.positions[size_t(i)] < 0 || op.positions[size_t(i)] >= Limits::kMaxContext)
      fail(o, ": positions[", i, "] = ", op.positions[size_t(i)], " is out of range [0, ", Limits::kMaxContext, ")");
  checkFp32(o, "q", op.q);
  checkNumel(o, "q", op.q, T * op.numHeads * op.headDim,
             shape({{"tokens", T}, {"numHeads", op.numHeads}, {"headDim", op.headDim}}));
  if (op.k.mem) {
    if (op.numKvHeads < 1 || op.numKvHeads > Limits::kMaxKvHeads)
      fail(o, ": numKvHeads ", op.numKvHeads, " is out of range [1, ", Limits::kMaxKvHeads, "]");
    checkFp32(o, "k", op.k);
    checkNumel(o, "k", op.k, T * op.numKvHeads * op.headDim,
               shape({{"tokens", T}, {"numKvHeads", op.numKvHeads}, {"headDim", op.headDim}}));
    if (op.k.mem == op.q.mem) fail(o, ": k must be a different tensor from q");
  }
}

void validateSiluMul(const SiluMulOp& op) {
  const char* o = "siluMul";
  checkDim(o, "rows", op.rows);
  checkDim(o, "dim", op.dim);
  checkFp32(o, "x", op.x);
  checkNumel(o, "x", op.x, op.rows * 2 * op.dim, shape({{"rows", op.rows}, {"2 x dim", 2 * op.dim}}));
  checkFp32(o, "out", op.out);
  checkNumel(o, "out", op.out, op.rows * op.dim, shape({{"rows", op.rows}, {"dim", op.dim}}));
  if (op.out.mem == op.x.mem) fail(o, ": out must be a different tensor from x");
}

void validateEmbed(const EmbedOp& op) {
  const char* o = "embed";
  checkDim(o, "vocab", op.vocab);
  checkDim(o, "hidden", op.hidden);
  const int64_t T = int64_t(op.ids.size());
  if (T < 1) fail(o, ": ids is empty");
  checkLive(o, "table", op.table);
  checkNumel(o, "table", op.table, op.vocab * op.hidden, shape({{"vocab", op.vocab}, {"hidden", op.hidden}}));
  checkFp32(o, "out", op.out);
  checkNumel(o, "out", op.out, T * op.hidden, shape({{"tokens", T}, {"hidden", op.hidden}}));
  for (int64_t i = 0; i < T; ++i)
    if (op.ids[size_t(i)] < 0 || op.ids[size_t(i)] >= op.vocab)
      fail(o, ": ids[", i, "] = ", op.ids[size_t(i)], " is out of range [0, ", op.vocab, ")");
}

void validateAdd(const AddOp& op) {
  const char* o = "add";
  checkDim(o, "n", op.n);
  const std::string sh = shape({{"n", op.n}});
  checkFp32(o, "a", op.a);
  checkNumel(o, "a", op.a, op.n, sh);
  checkFp32(o, "b", op.b);
  checkNumel(o, "b", op.b, op.n, sh);
  checkFp32(o, "out", op.out);
  checkNumel(o, "out", op.out, op.n, sh);
}

void validateLogits(const LogitsOp& op) {
  const char* o = "logits";
  checkDim(o, "numTokens", op.numTokens);
  checkDim(o, "hiddenSize", op.hiddenSize);
  checkDim(o, "vocab", op.vocab);
  checkEps(o, op.eps);
  const int64_t R = int64_t(op.rows.size());
  if (R < 1) fail(o, ": rows is empty");
  checkFp32(o, "hidden", op.hidden);
  checkNumel(o, "hidden", op.hidden, op.numTokens * op.hiddenSize,
             shape({{"numTokens", op.numTokens}, {"hiddenSize", op.hiddenSize}}));
  checkFp32(o, "norm", op.norm);
  checkNumel(o, "norm", op.norm, op.hiddenSize, shape({{"hiddenSize", op.hiddenSize}}));
  checkLive(o, "lmHead", op.lmHead);
  checkNumel(o, "lmHead", op.lmHead, op.vocab * op.hiddenSize, shape({{"vocab", op.vocab}, {"hiddenSize", op.hiddenSize}}));
  checkFp32(o, "out", op.out);
  checkNumel(o, "out", op.out, R * op.vocab, shape({{"rows", R}, {"vocab", op.vocab}}));
  for (int64_t i = 0; i < R; ++i)
    if (op.rows[size_t(i)] < 0 || op.rows[size_t(i)] >= op.numTokens)
      fail(o, ": rows[", i, "] = ", op.rows[size_t(i)], " is out of range [0, ", op.numTokens, ")");
}

void validateSampling(const char* o, const SamplingParams& p, int64_t rows) {
  auto len = [&](const char* name, size_t n) {
    if (n != 0 && int64_t(n) != rows) fail(o, ": sampling.", name, " has ", n, " entries but there are ", rows, " rows");
  };
  len("temperature", p.temperature.size());
  len("topK", p.topK.size());
  len("topP", p.topP.size());
  len("seed", p.seed.size());
  len("counter", p.counter.size());
  for (size_t i = 0; i < p.temperature.size(); ++i)
    if (!(p.temperature[i] >= 0.f) || !std::isfinite(p.temperature[i]))
      fail(o, ": sampling.temperature[", i, "] = ", p.temperature[i], " must be a finite number >= 0 (0 = greedy)");
  for (size_t i = 0; i < p.topK.size(); ++i)
    if (p.topK[i] < 0) fail(o, ": sampling.topK[", i, "] = ", p.topK[i], " must be >= 0 (0 = off)");
  for (size_t i = 0; i < p.topP.size(); ++i)
    if (!(p.topP[i] > 0.f && p.topP[i] <= 1.f))
      fail(o, ": sampling.topP[", i, "] = ", p.topP[i], " is out of range (0, 1]");
  for (size_t i = 0; i < p.counter.size(); ++i)
    if (p.counter[i] < 0) fail(o, ": sampling.counter[", i, "] = ", p.counter[i], " must be >= 0");
}

void validateSample(const SampleOp& op) {
  const char* o = "sample";
  checkDim(o, "rows", op.rows);
  checkDim(o, "vocab", op.vocab);
  checkFp32(o, "logits", op.logits);
  checkNumel(o, "logits", op.logits, op.rows * op.vocab, shape({{"rows", op.rows}, {"vocab", op.vocab}}));
  validateSampling(o, op.params, op.rows);
}

void validateFill(const FillOp& op) {
  const char* o = "fillUniform";
  checkLive(o, "tensor", op.t);
  if (!std::isfinite(op.low) || !std::isfinite(op.high) || !(op.low <= op.high))
    fail(o, ": low ", op.low, " and high ", op.high, " must be finite with low <= high");
}

void validateLoadFile(const LoadFileOp& op) {
  const char* o = "loadTensor";
  checkLive(o, "tensor", op.dst);
  if (op.path.empty()) fail(o, ": path is empty");
  if (op.numel < 1) fail(o, ": numel must be >= 1, got ", op.numel);
  if (op.dstOffset < 0 || op.dstOffset > op.dst.numel || op.numel > op.dst.numel - op.dstOffset)
    fail(o, ": ", op.numel, " elements at dstOffset ", op.dstOffset, " do not fit the tensor's ", op.dst.numel,
         " elements");
  const uint64_t bytes = uint64_t(op.numel) * dtypeSize(op.srcType);
  if (op.fileOffset > (uint64_t(1) << 62) || bytes > (uint64_t(1) << 62) - op.fileOffset)
    fail(o, ": fileOffset ", op.fileOffset, " + ", bytes, " bytes overflows");
}

}  // namespace kvcake
