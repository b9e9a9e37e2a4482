// The model's standalone ops as plain structs (what the binding fills from JS), their
// checks (core/validate_model.cc) and their lowering onto a backend's kernel set
// (core/model_ops.cc). Tensors are flat; each op names its dimensions.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/kernel_set.h"
#include "core/rope.h"
#include "core/sampler.h"

namespace kvcake {

struct GemmOp {
  Tensor a, w, bias, out;  // bias.mem null = none
  int64_t m = 0, n = 0, k = 0;
  int32_t impl = 0;  // GemmArgs::impl
};
struct RmsNormOp {
  Tensor x, weight, out, residual;  // residual.mem null = no fused add
  int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
};
struct RopeOp {
  Tensor q, k;  // k.mem null = q only
  std::vector<int32_t> positions;
  int32_t numHeads = 0, numKvHeads = 0, headDim = 0;
  double theta = 10000;
  RopeScaling scaling;
};
struct SiluMulOp {
  Tensor x, out;
  int64_t rows = 0, dim = 0;
};
struct EmbedOp {
  Tensor table, out;
  std::vector<int32_t> ids;
  int64_t vocab = 0, hidden = 0;
};
struct AddOp {
  Tensor a, b, out;
  int64_t n = 0;
};
struct LogitsOp {
  Tensor hidden, norm, lmHead, out;
  std::vector<int32_t> rows;
  int64_t numTokens = 0, hiddenSize = 0, vocab = 0;
  float eps = 1e-6f;
};
struct SampleOp {
  Tensor logits;
  int64_t rows = 0, vocab = 0;
  SamplingParams params;
};
struct FillOp {
  Tensor t;
  double low = 0, high = 0;
  uint64_t seed = 0;
};

void validateGemm(const GemmOp& op);
void validateRmsNorm(const RmsNormOp& op);
void validateRope(const RopeOp& op);
void validateSiluMul(const SiluMulOp& op);
void validateEmbed(const EmbedOp& op);
void validateAdd(const AddOp& op);
void validateLogits(const LogitsOp& op);
void validateSample(const SampleOp& op);
void validateFill(const FillOp& op);
void validateLoadFile(const LoadFileOp& op);
// Shared with the forward runner.
void validateRopeScaling(const char* op, const RopeScaling& s, double theta);
void validateSampling(const char* op, const SamplingParams& p, int64_t rows);

struct SampleResult {
  std::vector<int32_t> tokenIds;
  std::vector<float> logprobs;
};

EventPtr issueGemm(Backend& be, GemmOp op, const Deps& deps);
EventPtr issueRmsNorm(Backend& be, RmsNormOp op, const Deps& deps);
EventPtr issueRope(Backend& be, RopeOp op, const Deps& deps);
EventPtr issueSiluMul(Backend& be, SiluMulOp op, const Deps& deps);
EventPtr issueEmbed(Backend& be, EmbedOp op, const Deps& deps);
EventPtr issueAdd(Backend& be, AddOp op, const Deps& deps);
EventPtr issueLogits(Backend& be, LogitsOp op, const Deps& deps);
// `result` is filled before the event completes.
EventPtr issueSample(Backend& be, SampleOp op, std::shared_ptr<SampleResult> result, const Deps& deps);
EventPtr issueFill(Backend& be, FillOp op, const Deps& deps);

}  // namespace kvcake
