#include "napi/model_runner_wrap.h"

#include <algorithm>

#include "napi/backend_wrap.h"
#include "napi/event_wrap.h"
#include "napi/model_ops_wrap.h"
#include "napi/pool_wrap.h"
#include "napi/tensor_wrap.h"

namespace kvcake::napi {

namespace {

constexpr napi_type_tag kTag = {0x6b76636b65ee0010ULL, 0x4d5e6f708192a3b4ULL};

int32_t cfgInt(const Napi::Object& o, const char* key, int64_t max) {
  return int32_t(toInt(o.Get(key), std::string("createModelRunner: config.") + key, 1, max));
}

Tensor weight(const Napi::Object& o, const char* key, const Backend* be, const std::string& prefix, bool optional) {
  Napi::Value v = o.Get(key);
  if (optional && (v.IsUndefined() || v.IsNull())) return Tensor{};
  return TensorWrap::From(v, be, "createModelRunner: " + prefix + key);
}

}  // namespace

Napi::Function ModelRunnerWrap::Init(Napi::Env env) {
  return DefineClass(env, "ModelRunner",
                     {InstanceMethod<&ModelRunnerWrap::Forward>("forward"),
                      InstanceMethod<&ModelRunnerWrap::Release>("release"),
                      InstanceAccessor<&ModelRunnerWrap::Released>("released")});
}

ModelRunnerWrap* ModelRunnerWrap::Unwrap(Napi::Object o) { return checkedUnwrap<ModelRunnerWrap>(o, kTag, "ModelRunner"); }

ModelRunnerWrap::ModelRunnerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelRunnerWrap>(info) {
  info.This().As<Napi::Object>().TypeTag(&kTag);
  Napi::Env env = info.Env();
  guarded(env, [&] {
    backend_ = BackendWrap::Shared(info[0], "createModelRunner: backend");
    const Backend* be = backend_.get();
    Napi::Object c = toObject(info[1], "createModelRunner: config");
    ModelConfig cfg;
    cfg.hidden = cfgInt(c, "hiddenSize", int64_t(1) << 20);
    cfg.intermediate = cfgInt(c, "intermediateSize", int64_t(1) << 22);
    cfg.numLayers = cfgInt(c, "numLayers", 1024);
    cfg.numHeads = cfgInt(c, "numHeads", Limits::kMaxHeads);
    cfg.numKvHeads = cfgInt(c, "numKvHeads", Limits::kMaxKvHeads);
    cfg.headDim = cfgInt(c, "headDim", Limits::kMaxHeadDim);
    cfg.vocab = cfgInt(c, "vocabSize", int64_t(1) << 24);
    cfg.eps = float(toFinite(c.Get("rmsNormEps"), "createModelRunner: config.rmsNormEps"));
    cfg.theta = toFinite(c.Get("ropeTheta"), "createModelRunner: config.ropeTheta");
    cfg.scaling = toScaling(c.Get("ropeScaling"), "createModelRunner: config.ropeScaling");
    Napi::Object w = toObject(info[2], "createModelRunner: weights");
    ModelWeights mw;
    mw.embed = weight(w, "embed", be, "weights.", false);
    mw.finalNorm = weight(w, "finalNorm", be, "weights.", false);
    mw.lmHead = weight(w, "lmHead", be, "weights.", true);
    Napi::Value layers = w.Get("layers");
    if (!layers.IsArray()) typeError(env, "createModelRunner: weights.layers must be an array");
    auto arr = layers.As<Napi::Array>();
    for (uint32_t l = 0; l < arr.Length(); ++l) {
      const std::string p = "weights.layers[" + std::to_string(l) + "].";
      Napi::Object lo = toObject(arr.Get(l), "createModelRunner: " + p.substr(0, p.size() - 1));
      LayerWeights lw;
      lw.inputNorm = weight(lo, "inputNorm", be, p, false);
      lw.qkv = weight(lo, "qkv", be, p, false);
      lw.qkvBias = weight(lo, "qkvBias", be, p, true);
      lw.o = weight(lo, "o", be, p, false);
      lw.postNorm = weight(lo, "postNorm", be, p, false);
      lw.gateUp = weight(lo, "gateUp", be, p, false);
      lw.down = weight(lo, "down", be, p, false);
      mw.layers.push_back(std::move(lw));
    }
    runner_ = std::make_shared<ModelRunner>(cfg, std::move(mw));
    return 0;
  });
}

Napi::Value ModelRunnerWrap::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!runner_ || runner_->released()) throw Napi::Error::New(env, "forward: the model runner has been released");
    Backend* be = backend_.get();
    Napi::Object a = toObject(info[0], "forward: step");
    ForwardStep s;
    s.pool = PoolWrap::From(a.Get("pool"), be, "forward: pool");
    s.tokens = toInt32Vector(a.Get("tokens"), "forward: tokens");
    s.positions = toInt32Vector(a.Get("positions"), "forward: positions");
    s.qStartLoc = toInt32Vector(a.Get("qStartLoc"), "forward: qStartLoc");
    s.contextLens = toInt32Vector(a.Get("contextLens"), "forward: contextLens");
    s.tableStride = int32_t(toInt(a.Get("tableStride"), "forward: tableStride", 1, INT32_MAX));
    s.blockTables = toInt32Vector(a.Get("blockTables"), "forward: blockTables");
    s.slotMapping = toInt32Vector(a.Get("slotMapping"), "forward: slotMapping");
    s.logitsRows = toInt32Vector(a.Get("logitsRows"), "forward: logitsRows");
    s.sampling = toSampling(a.Get("sampling"), "forward: sampling");
    Napi::Value rl = a.Get("returnLogits");
    s.returnLogits = rl.IsBoolean() && rl.As<Napi::Boolean>().Value();
    Napi::Value wb = a.Get("waitBeforeLayer");
    if (!wb.IsUndefined() && !wb.IsNull()) {
      if (!wb.IsArray()) typeError(env, "forward: waitBeforeLayer must be an array (one wait list per layer)");
      auto arr = wb.As<Napi::Array>();
      for (uint32_t l = 0; l < arr.Length(); ++l)
        s.waitBeforeLayer.push_back(toDeps(arr.Get(l), be, "forward: waitBeforeLayer[" + std::to_string(l) + "]"));
    }
    Napi::Value cv = a.Get("copies");
    if (!cv.IsUndefined() && !cv.IsNull()) {
      if (!cv.IsArray()) typeError(env, "forward: copies must be an array");
      auto arr = cv.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        const std::string p = "forward: copies[" + std::to_string(i) + "]";
        Napi::Object co = toObject(arr.Get(i), p);
        LayerCopy cp;
        cp.op.src = PoolWrap::From(co.Get("src"), be, p + ".src");
        cp.op.dst = PoolWrap::From(co.Get("dst"), be, p + ".dst");
        cp.op.pairs = toInt32Vector(co.Get("pairs"), p + ".pairs");
        Napi::Value al = co.Get("afterLayer"), bl = co.Get("beforeLayer"), af = co.Get("after");
        if (!al.IsUndefined()) cp.afterLayer = int32_t(toInt(al, p + ".afterLayer", -1, INT32_MAX));
        if (!bl.IsUndefined()) cp.beforeLayer = int32_t(toInt(bl, p + ".beforeLayer", -1, INT32_MAX));
        if (!af.IsUndefined() && !af.IsNull()) cp.after = toInt32Vector(af, p + ".after");
        cp.deps = toDeps(co.Get("waitFor"), be, p + ".waitFor");
        s.copies.push_back(std::move(cp));
      }
    }
    Deps deps = toDeps(info[1], be, "forward: waitFor");
    runner_->validate(s);
    auto result = std::make_shared<ForwardResult>();
    std::vector<EventPtr> appended, copies;
    EventPtr ev = runner_->forward(*be, std::move(s), deps, &appended, result, &copies);
    Napi::Object out = Napi::Object::New(env);
    out.Set("work", EventWrap::Make(env, ev, be, [result](Napi::Env e) -> Napi::Value {
      Napi::Object o = Napi::Object::New(e);
      auto ids = Napi::Int32Array::New(e, result->tokenIds.size());
      std::copy(result->tokenIds.begin(), result->tokenIds.end(), ids.Data());
      auto lp = Napi::Float32Array::New(e, result->logprobs.size());
      std::copy(result->logprobs.begin(), result->logprobs.end(), lp.Data());
      o.Set("tokenIds", ids);
      o.Set("logprobs", lp);
      if (!result->logits.empty()) {
        auto lg = Napi::Float32Array::New(e, result->logits.size());
        std::copy(result->logits.begin(), result->logits.end(), lg.Data());
        o.Set("logits", lg);
      }
      return o;
    }));
    auto arr = Napi::Array::New(env, appended.size());
    for (size_t l = 0; l < appended.size(); ++l) arr.Set(uint32_t(l), EventWrap::Make(env, appended[l], be));
    out.Set("appended", arr);
    auto carr = Napi::Array::New(env, copies.size());
    for (size_t i = 0; i < copies.size(); ++i) carr.Set(uint32_t(i), EventWrap::Make(env, copies[i], be));
    out.Set("copies", carr);
    return out;
  });
}

Napi::Value ModelRunnerWrap::Release(const Napi::CallbackInfo& info) {
  if (runner_) runner_->release();
  return info.Env().Undefined();
}

Napi::Value ModelRunnerWrap::Released(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !runner_ || runner_->released());
}

}  // namespace kvcake::napi
