// The forward runner: a Llama-family decoder (RMSNorm, RoPE, GQA attention over the paged
// KV pool, SwiGLU MLP; optional q/k/v bias; tied or separate lm_head) as ONE compute-queue
// item per step, written once over the backend's kernel set. Per layer it waits natively
// for that layer's loads before touching its KV blocks and signals a marker once its K/V
// are appended, so a caller can overlap offloads with the following layers.
#pragma once
#include <memory>
#include <mutex>
#include <vector>

#include "core/backend.h"
#include "core/kernel_set.h"
#include "core/rope.h"
#include "core/sampler.h"

namespace kvcake {

struct ModelConfig {
  int32_t hidden = 0, intermediate = 0, numLayers = 0, numHeads = 0, numKvHeads = 0, headDim = 0, vocab = 0;
  float eps = 1e-6f;
  double theta = 10000;
  RopeScaling scaling;
  int64_t qSize() const { return int64_t(numHeads) * headDim; }
  int64_t kvSize() const { return int64_t(numKvHeads) * headDim; }
  int64_t qkvSize() const { return qSize() + 2 * kvSize(); }
};

struct LayerWeights {
  Tensor inputNorm, qkv, qkvBias, o, postNorm, gateUp, down;  // qkvBias.mem null = none
};

struct ModelWeights {
  Tensor embed, finalNorm, lmHead;  // lmHead.mem null = tied to embed
  std::vector<LayerWeights> layers;
};

// A copy between pools that the step orders against its layers (the plan contract's
// layer-bound transfers): issued once layer afterLayer's attention is done, so its blocks
// are no longer read (-1: at the step's start), and once the earlier copies in `after` are
// done; layer beforeLayer's append and attention wait for it (-1: none). Copies go to the
// backend's queue for their tiers.
struct LayerCopy {
  CopyOp op;
  int32_t afterLayer = -1;
  int32_t beforeLayer = -1;
  std::vector<int32_t> after;  // indices of earlier copies of this step
  Deps deps;                   // earlier work it waits for as well
};

struct ForwardStep {
  Pool pool;
  std::vector<int32_t> tokens, positions, qStartLoc, contextLens;
  int32_t tableStride = 0;
  std::vector<int32_t> blockTables;  // [L][B][tableStride]
  std::vector<int32_t> slotMapping;  // [L][T]
  std::vector<int32_t> logitsRows;   // [R]
  SamplingParams sampling;
  bool returnLogits = false;
  std::vector<Deps> waitBeforeLayer;  // empty or [L]
  std::vector<LayerCopy> copies;
};

struct ForwardResult {
  std::vector<int32_t> tokenIds;
  std::vector<float> logprobs;
  std::vector<float> logits;  // [R][vocab] when asked for
};

class ModelRunner {
 public:
  // Checks the config and every weight's dtype and size (throws ArgError).
  ModelRunner(ModelConfig config, ModelWeights weights);
  const ModelConfig& config() const { return config_; }

  // Throws ArgError naming the first bad argument.
  void validate(const ForwardStep& step) const;
  // Issues the step (validated). `appended` receives numLayers markers and `copies` one
  // event per step copy; `result` is filled before the returned event completes.
  EventPtr forward(Backend& be, ForwardStep step, const Deps& deps, std::vector<EventPtr>* appended,
                   std::shared_ptr<ForwardResult> result, std::vector<EventPtr>* copies = nullptr);
  // Drops the weights and the workspace (in-flight steps keep what they use).
  void release();
  bool released() const { return released_; }

 private:
  MemoryPtr workspace(Backend& be, size_t bytes);

  ModelConfig config_;
  ModelWeights weights_;
  std::vector<double> invFreq_;
  std::mutex m_;
  MemoryPtr workspace_;
  bool released_ = false;
};

}  // namespace kvcake
