#include "core/forward.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "core/completion_event.h"
#include "core/model_ops.h"
#include "core/validate.h"

namespace kvcake {

namespace {

// Byte offsets of the step's activations in the runner's workspace.
struct Layout {
  size_t resid, h, t, qkv, qA, kA, vA, oA, attnF, gu, act, cos, sin, hR, logits, total;
};

Layout plan(const ModelConfig& c, int64_t T, int64_t R, DType kv) {
  Layout L{};
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off += stagingBytes(bytes);
    return at;
  };
  const size_t kvb = dtypeSize(kv);
  L.resid = take(size_t(T * c.hidden) * 4);
  L.h = take(size_t(T * c.hidden) * 4);
  L.t = take(size_t(T * c.hidden) * 4);
  L.qkv = take(size_t(T * c.qkvSize()) * 4);
  L.qA = take(size_t(T * c.qSize()) * kvb);
  L.kA = take(size_t(T * c.kvSize()) * kvb);
  L.vA = take(size_t(T * c.kvSize()) * kvb);
  L.oA = take(size_t(T * c.qSize()) * kvb);
  L.attnF = take(size_t(T * c.qSize()) * 4);
  L.gu = take(size_t(T * 2 * int64_t(c.intermediate)) * 4);
  L.act = take(size_t(T * c.intermediate) * 4);
  L.cos = take(size_t(T * (c.headDim / 2)) * 4);
  L.sin = take(size_t(T * (c.headDim / 2)) * 4);
  L.hR = take(size_t(std::max<int64_t>(R, 1) * c.hidden) * 4);
  L.logits = take(size_t(std::max<int64_t>(R, 1) * c.vocab) * 4);
  L.total = off;
  return L;
}

// The step's attention batches, built on the host at issue time: decode items (qLen 1)
// first, then prefill items, in the order of the step; `perm[j]` is the token whose query
// is attention row j (identity when the step is already ordered that way).
struct AttnPlan {
  std::vector<int32_t> perm;
  bool identity = true;
  int32_t decodeRows = 0;
  std::vector<int32_t> dCtx, dTables;  // [Bd], [L][Bd][stride]
  std::vector<int32_t> pCtx, pTables, pStart;  // [Bp], [L][Bp][stride], [Bp + 1]
  int32_t bd = 0, bp = 0;
  // Every item is of one kind: that kernel reads the step's own tables and lengths.
  bool allDecode = false, allPrefill = false;
};

AttnPlan planAttention(const ForwardStep& s, int32_t L) {
  AttnPlan p;
  const int32_t B = int32_t(s.contextLens.size());
  const int32_t S = s.tableStride;
  std::vector<int32_t> dItems, pItems;
  for (int32_t b = 0; b < B; ++b) {
    const int32_t q = s.qStartLoc[b + 1] - s.qStartLoc[b];
    if (q == 1) dItems.push_back(b);
    else if (q > 1) pItems.push_back(b);
  }
  p.bd = int32_t(dItems.size());
  p.bp = int32_t(pItems.size());
  for (int32_t b : dItems) p.perm.push_back(s.qStartLoc[b]);
  p.decodeRows = p.bd;
  p.pStart.push_back(0);
  for (int32_t b : pItems) {
    for (int32_t t = s.qStartLoc[b]; t < s.qStartLoc[b + 1]; ++t) p.perm.push_back(t);
    p.pStart.push_back(p.pStart.back() + (s.qStartLoc[b + 1] - s.qStartLoc[b]));
  }
  for (size_t j = 0; j < p.perm.size(); ++j)
    if (p.perm[j] != int32_t(j)) p.identity = false;
  if (p.perm.size() != s.tokens.size()) p.identity = false;  // zero-length items are never rows
  auto tables = [&](const std::vector<int32_t>& items, std::vector<int32_t>& out, std::vector<int32_t>& ctx) {
    out.resize(size_t(L) * items.size() * size_t(S));
    for (int32_t l = 0; l < L; ++l)
      for (size_t i = 0; i < items.size(); ++i)
        std::memcpy(&out[(size_t(l) * items.size() + i) * S],
                    &s.blockTables[(size_t(l) * B + size_t(items[i])) * S], size_t(S) * 4);
    for (int32_t b : items) ctx.push_back(s.contextLens[b]);
  };
  p.allDecode = p.bd == B;
  p.allPrefill = p.bp == B;
  if (!p.allDecode) tables(dItems, p.dTables, p.dCtx);
  if (!p.allPrefill) tables(pItems, p.pTables, p.pCtx);
  return p;
}

}  // namespace

MemoryPtr ModelRunner::workspace(Backend& be, size_t bytes) {
  std::lock_guard<std::mutex> lk(m_);
  // The previous workspace stays alive while steps that use it are in flight (they hold
  // it); a larger step swaps in a larger one.
  if (!workspace_ || workspace_->bytes < bytes) {
    workspace_.reset();
    workspace_ = be.allocate(bytes + bytes / 4, Tier::Device, "model workspace");
  }
  return workspace_;
}

MemoryPtr ModelRunner::logitsBuffer(Backend& be, size_t bytes) {
  std::lock_guard<std::mutex> lk(m_);
  // Reused only when no step in flight still holds it (its finish step reads it on another
  // thread); pinned allocations are slow on CUDA, so a steady decode loop keeps one.
  if (!hostLogits_ || hostLogits_.use_count() > 1 || hostLogits_->bytes < bytes)
    hostLogits_ = be.allocate(bytes, Tier::Host, "logits buffer");
  return hostLogits_;
}

void ModelRunner::release() {
  std::lock_guard<std::mutex> lk(m_);
  released_ = true;
  weights_ = ModelWeights{};
  workspace_.reset();
  hostLogits_.reset();
}

namespace {

// The step's copies while it runs: which are issued (their real events), and placeholders the
// caller got for those not issued yet (CPU issues them later, from the compute queue thread).
struct StepCopies {
  std::mutex m;
  std::vector<EventPtr> issued;
  std::vector<std::shared_ptr<CompletionEvent>> placeholder;
  std::vector<int32_t> stage;
  std::vector<std::vector<size_t>> gates;  // [L]: copies layer l waits for
  // [L]: signalled once layer l's attention is done (its blocks are no longer read), for
  // layers that have copies to issue after them; null elsewhere.
  std::vector<EventPtr> layerDone;
};

// Completes the placeholders of copies a failed step never issued.
struct UnissuedCopies {
  std::shared_ptr<StepCopies> c;
  ~UnissuedCopies() {
    if (!c) return;
    std::lock_guard<std::mutex> lk(c->m);
    for (size_t i = 0; i < c->issued.size(); ++i)
      if (!c->issued[i]) c->placeholder[i]->complete("forward: copies[" + std::to_string(i) + "] not issued: the step failed before it");
  }
};

}  // namespace

EventPtr ModelRunner::forward(Backend& be, ForwardStep step, const Deps& deps, std::vector<EventPtr>* appended,
                              std::shared_ptr<ForwardResult> result, std::vector<EventPtr>* copiesOut) {
  const ModelConfig c = config_;
  const int64_t T = int64_t(step.tokens.size());
  const int64_t R = int64_t(step.logitsRows.size());
  const DType kvType = step.pool.layout.dtype;
  const Layout lay = plan(c, T, R, kvType);
  MemoryPtr ws = workspace(be, lay.total);
  MemoryPtr hostLogits = R > 0 ? logitsBuffer(be, size_t(R * c.vocab) * 4) : nullptr;

  struct State {
    ForwardStep step;
    AttnPlan attn;
    ModelWeights weights;
    MemoryPtr ws, hostLogits;
    std::vector<double> invFreq;
  };
  auto st = std::make_shared<State>();
  st->attn = planAttention(step, c.numLayers);
  st->step = std::move(step);
  st->weights = weights_;
  st->ws = ws;
  st->hostLogits = hostLogits;
  st->invFreq = invFreq_;

  ComputeOp op;
  op.what = "forward";
  op.keep = st;
  for (int32_t l = 0; l < c.numLayers; ++l) op.markers.push_back(be.createMarker());
  if (appended) *appended = op.markers;
  const auto& a = st->attn;
  const size_t L = size_t(c.numLayers);
  op.uploadBytes = stagingBytes(size_t(T) * 4) * 2 + stagingBytes(size_t(L * T) * 4) +
                   stagingBytes(a.perm.size() * 4) + stagingBytes(a.dTables.size() * 4) +
                   stagingBytes(a.pTables.size() * 4) + stagingBytes(a.dCtx.size() * 4) +
                   stagingBytes(st->step.blockTables.size() * 4) + stagingBytes(st->step.contextLens.size() * 4) +
                   stagingBytes(a.pCtx.size() * 4) + stagingBytes(a.pStart.size() * 4) +
                   stagingBytes(size_t(R) * 4) + stagingBytes(st->invFreq.size() * 8);
  auto copies = std::make_shared<StepCopies>();
  const size_t nCopies = st->step.copies.size();
  copies->issued.resize(nCopies);
  copies->gates.resize(size_t(c.numLayers));
  copies->layerDone.resize(size_t(c.numLayers));
  for (size_t i = 0; i < nCopies; ++i) {
    copies->placeholder.push_back(std::make_shared<CompletionEvent>());
    const LayerCopy& cp = st->step.copies[i];
    int32_t stg = cp.afterLayer;
    for (int32_t d : cp.after) stg = std::max(stg, copies->stage[size_t(d)]);
    copies->stage.push_back(stg);
    if (cp.beforeLayer >= 0) copies->gates[size_t(cp.beforeLayer)].push_back(i);
    if (cp.afterLayer >= 0 && !copies->layerDone[size_t(cp.afterLayer)]) {
      copies->layerDone[size_t(cp.afterLayer)] = be.createMarker();
      op.markers.push_back(copies->layerDone[size_t(cp.afterLayer)]);
    }
  }
  std::vector<EventPtr> markers(op.markers.begin(), op.markers.begin() + c.numLayers);
  Backend* bep = &be;
  // Issues the copies of one stage, in index order, on their tiers' queues. A copy after
  // layer l starts once that layer's attention is done: it may overwrite blocks the layer
  // reads (a staging set the next host layer reloads into).
  auto issueStage = [st, copies, bep](int32_t stage) {
    for (size_t i = 0; i < copies->stage.size(); ++i) {
      if (copies->stage[i] != stage) continue;
      LayerCopy& cp = st->step.copies[i];
      Deps d = cp.deps;
      if (cp.afterLayer >= 0) d.push_back(copies->layerDone[size_t(cp.afterLayer)]);
      {
        std::lock_guard<std::mutex> lk(copies->m);
        for (int32_t j : cp.after) d.push_back(copies->issued[size_t(j)]);
      }
      EventPtr ev = bep->copyBlocks(cp.op, d);
      auto ph = copies->placeholder[i];
      ev->onComplete([ph](const std::string& err) { ph->complete(err); });
      std::lock_guard<std::mutex> lk(copies->m);
      copies->issued[i] = ev;
    }
  };
  auto gate = [copies](KernelSet& k, int32_t layer) {
    Deps d;
    {
      std::lock_guard<std::mutex> lk(copies->m);
      for (size_t i : copies->gates[size_t(layer)]) d.push_back(copies->issued[i]);
    }
    if (!d.empty()) k.wait(d);
  };
  op.body = [st, c, lay, T, R, markers, copies, issueStage, gate](KernelSet& k) {
    UnissuedCopies unissued{copies};
    if (!copies->stage.empty()) issueStage(-1);
    const ForwardStep& s = st->step;
    const AttnPlan& a = st->attn;
    const ModelWeights& w = st->weights;
    char* base = static_cast<char*>(k.ptr(st->ws));
    auto F = [&](size_t off) { return reinterpret_cast<float*>(base + off); };
    auto up = [&](const std::vector<int32_t>& v) -> const int32_t* {
      return v.empty() ? nullptr : static_cast<const int32_t*>(k.upload(v.data(), v.size() * 4));
    };
    const int64_t H = c.hidden, I = c.intermediate, Q = c.qSize(), KV = c.kvSize(), QKV = c.qkvSize();
    const int32_t L = c.numLayers, half = c.headDim / 2;
    const KVLayout& kvl = s.pool.layout;
    const DType kvType = kvl.dtype;
    const size_t kvb = dtypeSize(kvType);
    const int32_t* dTokens = up(s.tokens);
    const int32_t* dPositions = up(s.positions);
    const int32_t* dSlots = up(s.slotMapping);
    const int32_t* dPerm = a.identity ? nullptr : up(a.perm);
    const bool whole = a.allDecode || a.allPrefill;
    const int32_t* dTables = whole ? up(s.blockTables) : nullptr;
    const int32_t* dCtx = whole ? up(s.contextLens) : nullptr;
    const int32_t* dDTables = a.allDecode ? dTables : up(a.dTables);
    const int32_t* dPTables = a.allPrefill ? dTables : up(a.pTables);
    const int32_t* dDCtx = a.allDecode ? dCtx : up(a.dCtx);
    const int32_t* dPCtx = a.allPrefill ? dCtx : up(a.pCtx);
    const int32_t* dPStart = up(a.pStart);
    const int32_t* hDTables = a.allDecode ? s.blockTables.data() : a.dTables.data();
    const int32_t* hPTables = a.allPrefill ? s.blockTables.data() : a.pTables.data();
    const int32_t* hDCtx = a.allDecode ? s.contextLens.data() : a.dCtx.data();
    const int32_t* hPCtx = a.allPrefill ? s.contextLens.data() : a.pCtx.data();
    const int32_t* dRows = up(s.logitsRows);
    const double* dInv = static_cast<const double*>(k.upload(st->invFreq.data(), st->invFreq.size() * 8));
    void* pool = k.ptr(s.pool.mem);
    const float scale = effectiveScale(0.f, c.headDim);
    const int64_t rowsA = int64_t(a.perm.size());

    auto gemm = [&](const float* x, const Tensor& wt, const Tensor* bias, float* out, int64_t n, int64_t kdim) {
      GemmArgs g;
      g.a = x;
      g.lda = kdim;
      g.w = k.ptr(wt.mem);
      g.wType = wt.dtype;
      g.bias = bias && bias->mem ? static_cast<const float*>(k.ptr(bias->mem)) : nullptr;
      g.out = out;
      g.ldo = n;
      g.m = T;
      g.n = n;
      g.k = kdim;
      k.gemm(g);
    };
    auto norm = [&](const float* x, float* residual, const Tensor& weight, float* out, int64_t rows) {
      RmsNormArgs n;
      n.x = x;
      n.xStride = H;
      n.residual = residual;
      n.weight = static_cast<const float*>(k.ptr(weight.mem));
      n.out = out;
      n.outStride = H;
      n.rows = rows;
      n.dim = H;
      n.eps = c.eps;
      k.rmsnorm(n);
    };

    k.embed(EmbedArgs{k.ptr(w.embed.mem), w.embed.dtype, dTokens, F(lay.resid), T, H});
    k.ropeTable(RopeTableArgs{dPositions, dInv, F(lay.cos), F(lay.sin), T, half});

    for (int32_t l = 0; l < L; ++l) {
      const LayerWeights& lw = w.layers[size_t(l)];
      if (l == 0) norm(F(lay.resid), nullptr, lw.inputNorm, F(lay.h), T);
      else norm(F(lay.t), F(lay.resid), lw.inputNorm, F(lay.h), T);
      gemm(F(lay.h), lw.qkv, &lw.qkvBias, F(lay.qkv), QKV, H);
      RopeArgs r;
      r.q = F(lay.qkv);
      r.qStride = QKV;
      r.k = F(lay.qkv) + Q;
      r.kStride = QKV;
      r.numHeads = c.numHeads;
      r.numKvHeads = c.numKvHeads;
      r.headDim = c.headDim;
      r.cos = F(lay.cos);
      r.sin = F(lay.sin);
      r.tokens = T;
      k.rope(r);
      // Queries to the pool's dtype in attention order; K and V in token order.
      ConvertArgs cv;
      cv.srcType = DType::F32;
      cv.srcStride = QKV;
      cv.dstType = kvType;
      cv.src = F(lay.qkv);
      cv.dst = base + lay.qA;
      cv.dstStride = Q;
      cv.rows = rowsA;
      cv.cols = Q;
      cv.gather = dPerm;
      k.convert(cv);
      cv.gather = nullptr;
      cv.rows = T;
      cv.cols = KV;
      cv.dstStride = KV;
      cv.src = F(lay.qkv) + Q;
      cv.dst = base + lay.kA;
      k.convert(cv);
      cv.src = F(lay.qkv) + Q + KV;
      cv.dst = base + lay.vA;
      k.convert(cv);

      if (!s.waitBeforeLayer.empty()) k.wait(s.waitBeforeLayer[size_t(l)]);
      gate(k, l);
      AttnAppendArgs ap;
      ap.layout = kvl;
      ap.pool = pool;
      ap.k = base + lay.kA;
      ap.v = base + lay.vA;
      ap.slots = dSlots + int64_t(l) * T;
      ap.hostSlots = s.slotMapping.data() + int64_t(l) * T;
      ap.numTokens = int32_t(T);
      k.append(ap);
      k.signal(markers[size_t(l)]);

      AttnArgs at;
      at.layout = kvl;
      at.pool = pool;
      at.tableStride = s.tableStride;
      at.numHeads = c.numHeads;
      at.scale = scale;
      if (a.bd > 0) {
        at.q = base + lay.qA;
        at.out = base + lay.oA;
        const size_t toff = size_t(l) * size_t(a.bd) * size_t(s.tableStride);
        at.hostTables = hDTables + toff;
        at.tables = dDTables + toff;
        at.hostContextLens = hDCtx;
        at.contextLens = dDCtx;
        at.batch = a.bd;
        k.decode(at);
      }
      if (a.bp > 0) {
        at.q = base + lay.qA + size_t(a.decodeRows) * size_t(Q) * kvb;
        at.out = base + lay.oA + size_t(a.decodeRows) * size_t(Q) * kvb;
        const size_t toff = size_t(l) * size_t(a.bp) * size_t(s.tableStride);
        at.hostTables = hPTables + toff;
        at.tables = dPTables + toff;
        at.hostContextLens = hPCtx;
        at.contextLens = dPCtx;
        at.hostQStartLoc = a.pStart.data();
        at.qStartLoc = dPStart;
        at.batch = a.bp;
        k.prefill(at);
      }
      if (copies->layerDone[size_t(l)]) {
        k.signal(copies->layerDone[size_t(l)]);
        issueStage(l);
      }
      ConvertArgs back;
      back.src = base + lay.oA;
      back.srcType = kvType;
      back.srcStride = Q;
      back.dst = F(lay.attnF);
      back.dstType = DType::F32;
      back.dstStride = Q;
      back.rows = rowsA;
      back.cols = Q;
      back.scatter = dPerm;
      k.convert(back);
      gemm(F(lay.attnF), lw.o, nullptr, F(lay.t), H, Q);
      norm(F(lay.t), F(lay.resid), lw.postNorm, F(lay.h), T);
      gemm(F(lay.h), lw.gateUp, nullptr, F(lay.gu), 2 * I, H);
      k.siluMul(SiluMulArgs{F(lay.gu), F(lay.act), T, I});
      gemm(F(lay.act), lw.down, nullptr, F(lay.t), H, I);
    }
    if (R == 0) return;
    // The last residual add and the final norm only for the rows that emit a token.
    k.gather(GatherArgs{F(lay.resid), F(lay.t), dRows, F(lay.hR), R, H});
    norm(F(lay.hR), nullptr, w.finalNorm, F(lay.hR), R);
    const Tensor& head = w.lmHead.mem ? w.lmHead : w.embed;
    GemmArgs g;
    g.a = F(lay.hR);
    g.lda = H;
    g.w = k.ptr(head.mem);
    g.wType = head.dtype;
    g.out = F(lay.logits);
    g.ldo = c.vocab;
    g.m = R;
    g.n = c.vocab;
    g.k = H;
    k.gemm(g);
    k.download(st->hostLogits->data, F(lay.logits), size_t(R * c.vocab) * 4);
  };
  op.finish = [st, c, R, result] {
    if (R == 0) return;
    const float* logits = static_cast<const float*>(st->hostLogits->data);
    SamplingParams p = st->step.sampling;
    p.resize(R);
    result->tokenIds.resize(size_t(R));
    result->logprobs.resize(size_t(R));
    sampleRows(logits, R, c.vocab, p, result->tokenIds.data(), result->logprobs.data());
    if (st->step.returnLogits) result->logits.assign(logits, logits + R * c.vocab);
  };
  EventPtr ev = be.compute(std::move(op), deps);
  if (copiesOut) {
    // The real event where the copy is already issued (CUDA issues the whole step during
    // this call), else its placeholder, completed when the copy completes.
    std::lock_guard<std::mutex> lk(copies->m);
    copiesOut->clear();
    for (size_t i = 0; i < nCopies; ++i) copiesOut->push_back(copies->issued[i] ? copies->issued[i] : EventPtr(copies->placeholder[i]));
  }
  return ev;
}

}  // namespace kvcake
