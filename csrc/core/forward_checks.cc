// The model runner's argument checks: the config and weights at creation, and each step
// before anything is issued (a bad step throws and touches nothing).
#include <sstream>
#include <string>

#include "common/error.h"
#include "core/forward.h"
#include "core/model_ops.h"
#include "core/validate.h"

namespace kvcake {

namespace {

template <typename... T>
[[noreturn]] void fail(const T&... parts) {
  throwArgParts(parts...);
}

void checkWeight(const std::string& name, const Tensor& t, int64_t rows, int64_t cols, bool fp32Only,
                 const std::string& shape) {
  const char* o = "createModelRunner";
  if (!t.mem || !t.mem->data) fail(o, ": ", name, " is missing or has been released");
  if (fp32Only && t.dtype != DType::F32) fail(o, ": ", name, " must be fp32, got ", dtypeName(t.dtype));
  if (t.numel != rows * cols)
    fail(o, ": ", name, " has ", t.numel, " elements but ", shape, " needs ", rows * cols);
}

std::string dims(const char* a, int64_t x) {
  std::ostringstream s;
  s << "[" << a << " " << x << "]";
  return s.str();
}

}  // namespace

ModelRunner::ModelRunner(ModelConfig c, ModelWeights w) : config_(c), weights_(std::move(w)) {
  const char* o = "createModelRunner";
  auto pos = [&](const char* name, int64_t v, int64_t max) {
    if (v < 1 || v > max) fail(o, ": config.", name, " = ", v, " is out of range [1, ", max, "]");
  };
  pos("hiddenSize", c.hidden, int64_t(1) << 20);
  pos("intermediateSize", c.intermediate, int64_t(1) << 22);
  pos("numLayers", c.numLayers, 1024);
  pos("numHeads", c.numHeads, Limits::kMaxHeads);
  pos("numKvHeads", c.numKvHeads, Limits::kMaxKvHeads);
  pos("vocabSize", c.vocab, int64_t(1) << 24);
  if (!isSupportedHeadDim(c.headDim))
    fail(o, ": config.headDim ", c.headDim, " is not supported by the attention kernels (64, 80, 96, 128, 256)");
  if (c.numHeads % c.numKvHeads != 0)
    fail(o, ": config.numHeads ", c.numHeads, " is not a multiple of numKvHeads ", c.numKvHeads);
  if (!(c.eps > 0.f)) fail(o, ": config.rmsNormEps must be > 0, got ", c.eps);
  validateRopeScaling(o, c.scaling, c.theta);
  if (int64_t(weights_.layers.size()) != c.numLayers)
    fail(o, ": weights.layers has ", weights_.layers.size(), " entries but config.numLayers is ", c.numLayers);
  const int64_t H = c.hidden, I = c.intermediate;
  checkWeight("weights.embed", weights_.embed, c.vocab, H, false, dims("vocabSize", c.vocab) + dims("hiddenSize", H));
  checkWeight("weights.finalNorm", weights_.finalNorm, 1, H, true, dims("hiddenSize", H));
  if (weights_.lmHead.mem)
    checkWeight("weights.lmHead", weights_.lmHead, c.vocab, H, false, dims("vocabSize", c.vocab) + dims("hiddenSize", H));
  for (int32_t l = 0; l < c.numLayers; ++l) {
    const LayerWeights& lw = weights_.layers[size_t(l)];
    const std::string p = "weights.layers[" + std::to_string(l) + "].";
    const std::string qkvRows = "[(numHeads + 2 x numKvHeads) x headDim " + std::to_string(c.qkvSize()) + "]";
    checkWeight(p + "inputNorm", lw.inputNorm, 1, H, true, dims("hiddenSize", H));
    checkWeight(p + "qkv", lw.qkv, c.qkvSize(), H, false, qkvRows + dims("hiddenSize", H));
    if (lw.qkvBias.mem) checkWeight(p + "qkvBias", lw.qkvBias, 1, c.qkvSize(), true, qkvRows);
    checkWeight(p + "o", lw.o, H, c.qSize(), false, dims("hiddenSize", H) + dims("numHeads x headDim", c.qSize()));
    checkWeight(p + "postNorm", lw.postNorm, 1, H, true, dims("hiddenSize", H));
    checkWeight(p + "gateUp", lw.gateUp, 2 * I, H, false, dims("2 x intermediateSize", 2 * I) + dims("hiddenSize", H));
    checkWeight(p + "down", lw.down, H, I, false, dims("hiddenSize", H) + dims("intermediateSize", I));
  }
  invFreq_ = ropeInvFreq(c.headDim, c.theta, c.scaling);
}

void ModelRunner::validate(const ForwardStep& s) const {
  const char* o = "forward";
  const ModelConfig& c = config_;
  if (released_) fail(o, ": the model runner has been released");
  if (!s.pool.mem || !s.pool.mem->data) fail(o, ": pool has been released");
  const KVLayout& kv = s.pool.layout;
  if (s.pool.mem->tier != Tier::Device) fail(o, ": pool must be a device-tier pool");
  if (kv.numKvHeads != c.numKvHeads || kv.headDim != c.headDim)
    fail(o, ": pool has numKvHeads ", kv.numKvHeads, ", headDim ", kv.headDim, " but the model has numKvHeads ",
         c.numKvHeads, ", headDim ", c.headDim);
  const int64_t T = int64_t(s.tokens.size());
  const int64_t L = c.numLayers;
  if (T < 1) fail(o, ": tokens is empty");
  if (T > Limits::kMaxBatch * 16) fail(o, ": tokens has ", T, " entries, more than the limit ", Limits::kMaxBatch * 16);
  if (int64_t(s.positions.size()) != T) fail(o, ": positions has ", s.positions.size(), " entries but tokens has ", T);
  for (int64_t i = 0; i < T; ++i)
    if (s.tokens[size_t(i)] < 0 || s.tokens[size_t(i)] >= c.vocab)
      fail(o, ": tokens[", i, "] = ", s.tokens[size_t(i)], " is out of range [0, ", c.vocab, ")");
  const int64_t B = int64_t(s.contextLens.size());
  if (B < 1) fail(o, ": contextLens is empty");
  if (int64_t(s.qStartLoc.size()) != B + 1)
    fail(o, ": qStartLoc has ", s.qStartLoc.size(), " entries but contextLens.length + 1 = ", B + 1);
  if (s.qStartLoc[0] != 0) fail(o, ": qStartLoc[0] must be 0, got ", s.qStartLoc[0]);
  if (s.qStartLoc[size_t(B)] != T) fail(o, ": qStartLoc[", B, "] = ", s.qStartLoc[size_t(B)], " must equal tokens.length ", T);
  if (s.tableStride < 1) fail(o, ": tableStride must be >= 1, got ", s.tableStride);
  const int64_t S = s.tableStride;
  if (int64_t(s.blockTables.size()) != L * B * S)
    fail(o, ": blockTables has ", s.blockTables.size(), " entries but numLayers ", L, " x batch ", B, " x tableStride ", S,
         " needs ", L * B * S);
  if (int64_t(s.slotMapping.size()) != L * T)
    fail(o, ": slotMapping has ", s.slotMapping.size(), " entries but numLayers ", L, " x tokens ", T, " needs ", L * T);
  const int64_t bs = kv.blockSize;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t q0 = s.qStartLoc[size_t(b)], q1 = s.qStartLoc[size_t(b + 1)];
    if (q1 < q0)
      fail(o, ": qStartLoc must be non-decreasing, but qStartLoc[", b + 1, "] = ", q1, " < qStartLoc[", b, "] = ", q0);
    const int64_t ctx = s.contextLens[size_t(b)];
    if (ctx < q1 - q0)
      fail(o, ": item ", b, " has ", q1 - q0, " tokens but contextLens[", b, "] = ", ctx,
           "; contextLens counts the step's own tokens");
    if (ctx > Limits::kMaxContext) fail(o, ": contextLens[", b, "] = ", ctx, " exceeds the limit ", Limits::kMaxContext);
    const int64_t blocks = (ctx + bs - 1) / bs;
    if (blocks > S) fail(o, ": contextLens[", b, "] = ", ctx, " needs ", blocks, " blocks but tableStride is ", S);
    for (int64_t i = q0; i < q1; ++i) {
      const int64_t want = ctx - (q1 - q0) + (i - q0);
      if (s.positions[size_t(i)] != want)
        fail(o, ": positions[", i, "] = ", s.positions[size_t(i)], " but item ", b, " places that token at cache position ",
             want, " (contextLens[", b, "] - its token count + ", i - q0, ")");
    }
    for (int64_t l = 0; l < L; ++l) {
      const int32_t* row = &s.blockTables[size_t((l * B + b) * S)];
      for (int64_t j = 0; j < blocks; ++j)
        if (row[j] < 0 || row[j] >= kv.numBlocks)
          fail(o, ": blockTables[", l, "][", b, "][", j, "] = ", row[j], " is out of range [0, ", kv.numBlocks,
               ") for this pool");
      // A written slot must be the one attention will read for that position, or the
      // layer would attend to stale KV.
      for (int64_t i = q0; i < q1; ++i) {
        const int32_t slot = s.slotMapping[size_t(l * T + i)];
        if (slot < 0) continue;
        const int64_t p = s.positions[size_t(i)];
        const int64_t want = int64_t(row[p / bs]) * bs + p % bs;
        if (slot != want)
          fail(o, ": slotMapping[", l, "][", i, "] = ", slot, " but blockTables[", l, "][", b, "] puts position ", p,
               " at slot ", want, " (use -1 to skip writing a token)");
      }
    }
  }
  const int64_t R = int64_t(s.logitsRows.size());
  for (int64_t r = 0; r < R; ++r)
    if (s.logitsRows[size_t(r)] < 0 || s.logitsRows[size_t(r)] >= T)
      fail(o, ": logitsRows[", r, "] = ", s.logitsRows[size_t(r)], " is out of range [0, ", T, ")");
  validateSampling(o, s.sampling, R);
  if (!s.waitBeforeLayer.empty() && int64_t(s.waitBeforeLayer.size()) != L)
    fail(o, ": waitBeforeLayer has ", s.waitBeforeLayer.size(), " entries but numLayers is ", L);
  std::vector<int32_t> stage;
  // Copies that run on the compute queue (device to device), directly or through `after`:
  // on a backend whose compute queue is the thread running the step they start only once
  // the step ends, so one of them gating a layer of this step would wait forever.
  std::vector<char> onCompute;
  for (size_t i = 0; i < s.copies.size(); ++i) {
    const LayerCopy& cp = s.copies[i];
    try {
      validateCopy(cp.op);
    } catch (const ArgError& e) {
      // validateCopy names itself "copyBlocks: ..."; say which copy of the step it was.
      std::string m = e.what();
      const std::string head = "copyBlocks: ";
      if (m.rfind(head, 0) == 0) m = m.substr(head.size());
      fail(o, ": copies[", i, "]: ", m);
    }
    if (cp.afterLayer < -1 || cp.afterLayer >= L) fail(o, ": copies[", i, "].afterLayer = ", cp.afterLayer, " is out of range [-1, ", L, ")");
    if (cp.beforeLayer < -1 || cp.beforeLayer >= L) fail(o, ": copies[", i, "].beforeLayer = ", cp.beforeLayer, " is out of range [-1, ", L, ")");
    int32_t st = cp.afterLayer;
    bool compute = cp.op.src.mem->tier == Tier::Device && cp.op.dst.mem->tier == Tier::Device;
    for (size_t j = 0; j < cp.after.size(); ++j) {
      const int32_t d = cp.after[j];
      if (d < 0 || size_t(d) >= i) fail(o, ": copies[", i, "].after[", j, "] = ", d, " must name an earlier copy of this step, in [0, ", i, ")");
      st = std::max(st, stage[size_t(d)]);
      compute = compute || onCompute[size_t(d)];
    }
    if (cp.beforeLayer >= 0 && cp.beforeLayer <= st)
      fail(o, ": copies[", i, "] gates layer ", cp.beforeLayer, " but can start only after layer ", st);
    if (cp.beforeLayer >= 0 && compute)
      fail(o, ": copies[", i, "] gates layer ", cp.beforeLayer,
           " but is (or waits for) a device to device copy, which runs on the compute queue after the step; "
           "copy between device blocks in an earlier step");
    stage.push_back(st);
    onCompute.push_back(compute ? 1 : 0);
  }
}

}  // namespace kvcake
