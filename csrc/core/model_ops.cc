// The standalone model ops, each one compute-queue item on the backend's kernel set. The
// forward runner uses the same kernels inside one item per step (core/forward.cc).
#include "core/model_ops.h"

#include <cstring>

namespace kvcake {

namespace {

template <typename Op, typename Body>
EventPtr issue(Backend& be, const char* what, Op op, const Deps& deps, size_t uploadBytes, size_t scratchBytes,
               Body body, std::function<void()> finish = nullptr) {
  auto o = std::make_shared<Op>(std::move(op));
  ComputeOp c;
  c.what = what;
  c.keep = o;
  c.uploadBytes = uploadBytes;
  c.scratchBytes = scratchBytes;
  c.body = [o, body](KernelSet& k) { body(k, *o); };
  c.finish = std::move(finish);
  return be.compute(std::move(c), deps);
}

float* f32(KernelSet& k, const Tensor& t) { return static_cast<float*>(k.ptr(t.mem)); }

}  // namespace

EventPtr issueGemm(Backend& be, GemmOp op, const Deps& deps) {
  return issue(be, "gemm", std::move(op), deps, 0, 0, [](KernelSet& k, const GemmOp& o) {
    GemmArgs g;
    g.a = f32(k, o.a);
    g.lda = o.k;
    g.w = k.ptr(o.w.mem);
    g.wType = o.w.dtype;
    g.bias = o.bias.mem ? f32(k, o.bias) : nullptr;
    g.out = f32(k, o.out);
    g.ldo = o.n;
    g.m = o.m;
    g.n = o.n;
    g.k = o.k;
    g.impl = o.impl;
    k.gemm(g);
  });
}

EventPtr issueRmsNorm(Backend& be, RmsNormOp op, const Deps& deps) {
  return issue(be, "rmsnorm", std::move(op), deps, 0, 0, [](KernelSet& k, const RmsNormOp& o) {
    RmsNormArgs a;
    a.x = f32(k, o.x);
    a.xStride = o.dim;
    a.residual = o.residual.mem ? f32(k, o.residual) : nullptr;
    a.weight = f32(k, o.weight);
    a.out = f32(k, o.out);
    a.outStride = o.dim;
    a.rows = o.rows;
    a.dim = o.dim;
    a.eps = o.eps;
    k.rmsnorm(a);
  });
}

EventPtr issueRope(Backend& be, RopeOp op, const Deps& deps) {
  const size_t T = op.positions.size(), half = size_t(op.headDim / 2);
  const size_t up = stagingBytes(T * 4) + stagingBytes(half * 8);
  const size_t scr = 2 * stagingBytes(T * half * 4);
  return issue(be, "rope", std::move(op), deps, up, scr, [](KernelSet& k, const RopeOp& o) {
    const int64_t T = int64_t(o.positions.size());
    const int32_t half = o.headDim / 2;
    const std::vector<double> inv = ropeInvFreq(o.headDim, o.theta, o.scaling);
    auto invHost = std::make_shared<std::vector<double>>(inv);
    RopeTableArgs t;
    t.positions = static_cast<const int32_t*>(k.upload(o.positions.data(), size_t(T) * 4));
    // CPU uploads return the host pointer: keep the copy alive for the whole body.
    t.invFreq = static_cast<const double*>(k.upload(invHost->data(), size_t(half) * 8));
    t.cos = static_cast<float*>(k.scratch(size_t(T * half) * 4));
    t.sin = static_cast<float*>(k.scratch(size_t(T * half) * 4));
    t.tokens = T;
    t.half = half;
    k.ropeTable(t);
    RopeArgs r;
    r.q = f32(k, o.q);
    r.qStride = int64_t(o.numHeads) * o.headDim;
    r.k = o.k.mem ? f32(k, o.k) : nullptr;
    r.kStride = int64_t(o.numKvHeads) * o.headDim;
    r.numHeads = o.numHeads;
    r.numKvHeads = o.k.mem ? o.numKvHeads : 0;
    r.headDim = o.headDim;
    r.cos = t.cos;
    r.sin = t.sin;
    r.tokens = T;
    k.rope(r);
  });
}

EventPtr issueSiluMul(Backend& be, SiluMulOp op, const Deps& deps) {
  return issue(be, "siluMul", std::move(op), deps, 0, 0, [](KernelSet& k, const SiluMulOp& o) {
    k.siluMul(SiluMulArgs{f32(k, o.x), f32(k, o.out), o.rows, o.dim});
  });
}

EventPtr issueEmbed(Backend& be, EmbedOp op, const Deps& deps) {
  const size_t up = stagingBytes(op.ids.size() * 4);
  return issue(be, "embed", std::move(op), deps, up, 0, [](KernelSet& k, const EmbedOp& o) {
    EmbedArgs a;
    a.table = k.ptr(o.table.mem);
    a.dtype = o.table.dtype;
    a.ids = static_cast<const int32_t*>(k.upload(o.ids.data(), o.ids.size() * 4));
    a.out = f32(k, o.out);
    a.tokens = int64_t(o.ids.size());
    a.hidden = o.hidden;
    k.embed(a);
  });
}

EventPtr issueAdd(Backend& be, AddOp op, const Deps& deps) {
  return issue(be, "add", std::move(op), deps, 0, 0, [](KernelSet& k, const AddOp& o) {
    k.add(AddArgs{f32(k, o.a), f32(k, o.b), f32(k, o.out), o.n});
  });
}

EventPtr issueLogits(Backend& be, LogitsOp op, const Deps& deps) {
  const size_t R = op.rows.size();
  const size_t up = stagingBytes(R * 4);
  const size_t scr = stagingBytes(R * size_t(op.hiddenSize) * 4);
  return issue(be, "logits", std::move(op), deps, up, scr, [](KernelSet& k, const LogitsOp& o) {
    const int64_t R = int64_t(o.rows.size());
    float* h = static_cast<float*>(k.scratch(size_t(R * o.hiddenSize) * 4));
    GatherArgs g;
    g.src = f32(k, o.hidden);
    g.rows = static_cast<const int32_t*>(k.upload(o.rows.data(), size_t(R) * 4));
    g.dst = h;
    g.count = R;
    g.dim = o.hiddenSize;
    k.gather(g);
    RmsNormArgs n;
    n.x = h;
    n.xStride = o.hiddenSize;
    n.weight = f32(k, o.norm);
    n.out = h;
    n.outStride = o.hiddenSize;
    n.rows = R;
    n.dim = o.hiddenSize;
    n.eps = o.eps;
    k.rmsnorm(n);
    GemmArgs m;
    m.a = h;
    m.lda = o.hiddenSize;
    m.w = k.ptr(o.lmHead.mem);
    m.wType = o.lmHead.dtype;
    m.out = f32(k, o.out);
    m.ldo = o.vocab;
    m.m = R;
    m.n = o.vocab;
    m.k = o.hiddenSize;
    k.gemm(m);
  });
}

EventPtr issueSample(Backend& be, SampleOp op, std::shared_ptr<SampleResult> result, const Deps& deps) {
  // The logits come to host memory (pinned on CUDA) and are sampled there.
  const size_t bytes = size_t(op.rows * op.vocab) * 4;
  MemoryPtr host = be.allocate(bytes, Tier::Host, "sampling buffer");
  auto o = std::make_shared<SampleOp>(std::move(op));
  ComputeOp c;
  c.what = "sample";
  c.keep = o;
  c.body = [o, host, bytes](KernelSet& k) { k.download(host->data, k.ptr(o->logits.mem), bytes); };
  c.finish = [o, host, result] {
    result->tokenIds.resize(size_t(o->rows));
    result->logprobs.resize(size_t(o->rows));
    SamplingParams p = o->params;
    p.resize(o->rows);
    sampleRows(static_cast<const float*>(host->data), o->rows, o->vocab, p, result->tokenIds.data(),
               result->logprobs.data());
  };
  return be.compute(std::move(c), deps);
}

EventPtr issueFill(Backend& be, FillOp op, const Deps& deps) {
  return issue(be, "fillUniform", std::move(op), deps, 0, 0, [](KernelSet& k, const FillOp& o) {
    k.fill(FillArgs{k.ptr(o.t.mem), o.t.dtype, o.t.numel, o.low, o.high, o.seed});
  });
}

}  // namespace kvcake
