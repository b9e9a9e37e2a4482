#include "napi/model_ops_wrap.h"

#include <cmath>

#include "core/model_ops.h"
#include "core/sampler.h"
#include "cpu/isa.h"
#include "cpu/model_kernels.h"
#include "napi/backend_wrap.h"
#include "napi/event_wrap.h"
#include "napi/model_runner_wrap.h"
#include "napi/tensor_wrap.h"

namespace kvcake::napi {

namespace {

constexpr int64_t kMaxDim = int64_t(1) << 31;

struct Call {
  std::shared_ptr<Backend> be;
  Napi::Object args;
  Deps deps;
};

Call begin(const Napi::CallbackInfo& info, const std::string& op) {
  Call c;
  c.be = BackendWrap::Shared(info[0], op + ": backend");
  c.args = toObject(info[1], op + ": arguments");
  c.deps = toDeps(info[2], c.be.get(), op + ": waitFor");
  return c;
}

Tensor tensorArg(const Call& c, const std::string& op, const char* key) {
  return TensorWrap::From(c.args.Get(key), c.be.get(), op + ": " + key);
}

int64_t dimArg(const Call& c, const std::string& op, const char* key, int64_t min = 1) {
  return toInt(c.args.Get(key), op + ": " + key, min, kMaxDim);
}

float epsArg(const Call& c, const std::string& op) {
  Napi::Value v = c.args.Get("eps");
  return v.IsUndefined() ? 1e-6f : float(toFinite(v, op + ": eps"));
}

template <typename Issue>
Napi::Value run(const Napi::CallbackInfo& info, const char* op, Issue&& issue) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Call c = begin(info, op);
    return EventWrap::Make(env, issue(c), c.be.get());
  });
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return run(info, "gemm", [&](Call& c) {
    GemmOp op;
    op.a = tensorArg(c, "gemm", "a");
    op.w = tensorArg(c, "gemm", "w");
    op.bias = optionalTensor(c.args.Get("bias"), c.be.get(), "gemm: bias");
    op.out = tensorArg(c, "gemm", "out");
    op.m = dimArg(c, "gemm", "m");
    op.n = dimArg(c, "gemm", "n");
    op.k = dimArg(c, "gemm", "k");
    Napi::Value impl = c.args.Get("impl");
    if (!impl.IsUndefined()) {
      const std::string v = impl.IsString() ? impl.As<Napi::String>().Utf8Value() : "";
      if (v == "own") op.impl = 1;
      else if (v == "openblas") op.impl = 2;
      else if (v != "auto") rangeError(info.Env(), "gemm: impl must be 'auto', 'own' or 'openblas'");
      if (op.impl != 0 && std::string(c.be->name()) != "cpu") rangeError(info.Env(), "gemm: impl '" + v + "' is a cpu option");
      if (op.impl == 2 && !c.be->opsInfo().blasLoaded)
        rangeError(info.Env(), "gemm: impl 'openblas' needs a kvcake binary built with OpenBLAS (libopenblas-serial-dev)");
    }
    validateGemm(op);
    return issueGemm(*c.be, std::move(op), c.deps);
  });
}

Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  return run(info, "rmsnorm", [&](Call& c) {
    RmsNormOp op;
    op.x = tensorArg(c, "rmsnorm", "x");
    op.weight = tensorArg(c, "rmsnorm", "weight");
    op.out = tensorArg(c, "rmsnorm", "out");
    op.residual = optionalTensor(c.args.Get("residual"), c.be.get(), "rmsnorm: residual");
    op.rows = dimArg(c, "rmsnorm", "rows");
    op.dim = dimArg(c, "rmsnorm", "dim");
    op.eps = epsArg(c, "rmsnorm");
    validateRmsNorm(op);
    return issueRmsNorm(*c.be, std::move(op), c.deps);
  });
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  return run(info, "rope", [&](Call& c) {
    RopeOp op;
    op.q = tensorArg(c, "rope", "q");
    op.k = optionalTensor(c.args.Get("k"), c.be.get(), "rope: k");
    op.positions = toInt32Vector(c.args.Get("positions"), "rope: positions");
    op.numHeads = int32_t(dimArg(c, "rope", "numHeads"));
    op.numKvHeads = op.k.mem ? int32_t(dimArg(c, "rope", "numKvHeads")) : 0;
    op.headDim = int32_t(dimArg(c, "rope", "headDim"));
    op.theta = toFinite(c.args.Get("theta"), "rope: theta");
    op.scaling = toScaling(c.args.Get("scaling"), "rope: scaling");
    validateRope(op);
    return issueRope(*c.be, std::move(op), c.deps);
  });
}

Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  return run(info, "siluMul", [&](Call& c) {
    SiluMulOp op;
    op.x = tensorArg(c, "siluMul", "x");
    op.out = tensorArg(c, "siluMul", "out");
    op.rows = dimArg(c, "siluMul", "rows");
    op.dim = dimArg(c, "siluMul", "dim");
    validateSiluMul(op);
    return issueSiluMul(*c.be, std::move(op), c.deps);
  });
}

Napi::Value Embed(const Napi::CallbackInfo& info) {
  return run(info, "embed", [&](Call& c) {
    EmbedOp op;
    op.table = tensorArg(c, "embed", "table");
    op.out = tensorArg(c, "embed", "out");
    op.ids = toInt32Vector(c.args.Get("ids"), "embed: ids");
    op.vocab = dimArg(c, "embed", "vocab");
    op.hidden = dimArg(c, "embed", "hidden");
    validateEmbed(op);
    return issueEmbed(*c.be, std::move(op), c.deps);
  });
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  return run(info, "add", [&](Call& c) {
    AddOp op;
    op.a = tensorArg(c, "add", "a");
    op.b = tensorArg(c, "add", "b");
    op.out = tensorArg(c, "add", "out");
    op.n = dimArg(c, "add", "n");
    validateAdd(op);
    return issueAdd(*c.be, std::move(op), c.deps);
  });
}

Napi::Value Logits(const Napi::CallbackInfo& info) {
  return run(info, "logits", [&](Call& c) {
    LogitsOp op;
    op.hidden = tensorArg(c, "logits", "hidden");
    op.norm = tensorArg(c, "logits", "norm");
    op.lmHead = tensorArg(c, "logits", "lmHead");
    op.out = tensorArg(c, "logits", "out");
    op.rows = toInt32Vector(c.args.Get("rows"), "logits: rows");
    op.numTokens = dimArg(c, "logits", "numTokens");
    op.hiddenSize = dimArg(c, "logits", "hiddenSize");
    op.vocab = dimArg(c, "logits", "vocab");
    op.eps = epsArg(c, "logits");
    validateLogits(op);
    return issueLogits(*c.be, std::move(op), c.deps);
  });
}

Napi::Value Sample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Call c = begin(info, "sample");
    SampleOp op;
    op.logits = tensorArg(c, "sample", "logits");
    op.rows = dimArg(c, "sample", "rows");
    op.vocab = dimArg(c, "sample", "vocab");
    op.params = toSampling(c.args.Get("params"), "sample: params");
    validateSample(op);
    auto result = std::make_shared<SampleResult>();
    EventPtr ev = issueSample(*c.be, std::move(op), result, c.deps);
    return EventWrap::Make(env, ev, c.be.get(), [result](Napi::Env e) -> Napi::Value {
      Napi::Object o = Napi::Object::New(e);
      auto ids = Napi::Int32Array::New(e, result->tokenIds.size());
      std::copy(result->tokenIds.begin(), result->tokenIds.end(), ids.Data());
      auto lp = Napi::Float32Array::New(e, result->logprobs.size());
      std::copy(result->logprobs.begin(), result->logprobs.end(), lp.Data());
      o.Set("tokenIds", ids);
      o.Set("logprobs", lp);
      return o;
    });
  });
}

Napi::Value FillUniform(const Napi::CallbackInfo& info) {
  return run(info, "fillUniform", [&](Call& c) {
    FillOp op;
    op.t = tensorArg(c, "fillUniform", "tensor");
    op.low = toFinite(c.args.Get("low"), "fillUniform: low");
    op.high = toFinite(c.args.Get("high"), "fillUniform: high");
    op.seed = uint64_t(toInt(c.args.Get("seed"), "fillUniform: seed", 0, (int64_t(1) << 53) - 1));
    validateFill(op);
    return issueFill(*c.be, std::move(op), c.deps);
  });
}

Napi::Value LoadTensor(const Napi::CallbackInfo& info) {
  return run(info, "loadTensor", [&](Call& c) {
    LoadFileOp op;
    op.dst = tensorArg(c, "loadTensor", "tensor");
    Napi::Value path = c.args.Get("path");
    if (!path.IsString()) typeError(info.Env(), "loadTensor: path must be a string");
    op.path = path.As<Napi::String>().Utf8Value();
    op.fileOffset = uint64_t(toInt(c.args.Get("fileOffset"), "loadTensor: fileOffset", 0, (int64_t(1) << 53) - 1));
    op.numel = toInt(c.args.Get("numel"), "loadTensor: numel", 1, int64_t(1) << 40);
    op.srcType = toDType(c.args.Get("srcDtype"), "loadTensor: srcDtype");
    Napi::Value off = c.args.Get("dstOffset");
    op.dstOffset = off.IsUndefined() ? 0 : toInt(off, "loadTensor: dstOffset", 0, int64_t(1) << 40);
    validateLoadFile(op);
    return c.be->loadFile(std::move(op), c.deps);
  });
}

Napi::Object blasObject(Napi::Env env, const OpsInfo& i);

Napi::Value OpsInfoFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto be = BackendWrap::Shared(info[0], "opsInfo: backend");
    const OpsInfo i = be->opsInfo();
    Napi::Object o = Napi::Object::New(env);
    o.Set("backend", be->name());
    if (!i.isa.empty()) {
      o.Set("isa", i.isa);
      o.Set("isaForced", i.isaForced);
    }
    o.Set("gemm", i.gemm);
    o.Set("batchInvariant", i.batchInvariant);
    if (std::string(be->name()) == "cpu") o.Set("openblas", i.blasLoaded ? Napi::Value(Napi::String::New(env, i.blasPath)) : env.Null());
    if (std::string(be->name()) == "cuda") o.Set("cublas", blasObject(env, i));
    return o;
  });
}

Napi::Object blasObject(Napi::Env env, const OpsInfo& i) {
  Napi::Object b = Napi::Object::New(env);
  b.Set("loaded", i.blasLoaded);
  b.Set("path", i.blasPath);
  auto arr = Napi::Array::New(env, i.blasSearched.size());
  for (size_t k = 0; k < i.blasSearched.size(); ++k) arr.Set(uint32_t(k), i.blasSearched[k]);
  b.Set("searched", arr);
  b.Set("error", i.blasError);
  return b;
}

// cublasInfo() -> { loaded, path, searched, error }: no backend or GPU needed.
Napi::Value CublasInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return blasObject(env, cublasStatus()); });
}

// fmaPeak(isa?, seconds?) -> GFLOP/s of the CPU thread pool (benchmarks' peak reference),
// at the level the GEMM runs under `isa` (default: KVCAKE_CPU_ISA, else the best level).
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::string name;
    if (info[0].IsString()) {
      name = info[0].As<Napi::String>().Utf8Value();
      if (name.empty()) rangeError(env, "fmaPeak: isa must not be empty");
    } else if (!info[0].IsUndefined()) {
      typeError(env, "fmaPeak: isa must be a string, got " + describe(info[0]));
    }
    const cpu::Isa isa = cpu::resolveIsa(name, "fmaPeak: isa");
    const double seconds = info[1].IsUndefined() ? 0.2 : toFinite(info[1], "fmaPeak: seconds");
    return Napi::Number::New(env, cpu::fmaPeakGflops(isa, std::min(std::max(seconds, 0.01), 5.0)));
  });
}

}  // namespace

RopeScaling toScaling(const Napi::Value& v, const std::string& name) {
  RopeScaling s;
  if (v.IsUndefined() || v.IsNull()) return s;
  Napi::Object o = toObject(v, name);
  Napi::Value type = o.Get("type");
  if (!type.IsString() || type.As<Napi::String>().Utf8Value() != "llama3")
    rangeError(v.Env(), name + ".type must be 'llama3' (the only rope scaling supported)");
  s.llama3 = true;
  s.factor = toFinite(o.Get("factor"), name + ".factor");
  s.lowFreqFactor = toFinite(o.Get("lowFreqFactor"), name + ".lowFreqFactor");
  s.highFreqFactor = toFinite(o.Get("highFreqFactor"), name + ".highFreqFactor");
  s.originalMax = toFinite(o.Get("originalMaxPositionEmbeddings"), name + ".originalMaxPositionEmbeddings");
  return s;
}

std::vector<float> toFloat32Vector(const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    typeError(v.Env(), name + " must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

std::vector<double> toFloat64Vector(const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    typeError(v.Env(), name + " must be a Float64Array");
  auto a = v.As<Napi::Float64Array>();
  return std::vector<double>(a.Data(), a.Data() + a.ElementLength());
}

Tensor optionalTensor(const Napi::Value& v, const Backend* owner, const std::string& name) {
  if (v.IsUndefined() || v.IsNull()) return Tensor{};
  return TensorWrap::From(v, owner, name);
}

SamplingParams toSampling(const Napi::Value& v, const std::string& name) {
  SamplingParams p;
  if (v.IsUndefined() || v.IsNull()) return p;
  Napi::Object o = toObject(v, name);
  auto has = [&](const char* k) {
    Napi::Value x = o.Get(k);
    return !x.IsUndefined() && !x.IsNull();
  };
  if (has("temperature")) p.temperature = toFloat32Vector(o.Get("temperature"), name + ".temperature");
  if (has("topK")) p.topK = toInt32Vector(o.Get("topK"), name + ".topK");
  if (has("topP")) p.topP = toFloat32Vector(o.Get("topP"), name + ".topP");
  if (has("counter")) p.counter = toInt32Vector(o.Get("counter"), name + ".counter");
  if (has("seed")) {
    const std::vector<double> s = toFloat64Vector(o.Get("seed"), name + ".seed");
    p.seed.resize(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (!(s[i] >= 0) || s[i] > 9007199254740991.0 || std::trunc(s[i]) != s[i])
        rangeError(v.Env(), name + ".seed[" + std::to_string(i) + "] = " + std::to_string(s[i]) +
                                " must be an integer in [0, 2^53)");
      p.seed[i] = uint64_t(s[i]);
    }
  }
  return p;
}

void registerModelOps(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  ops.Set("rmsnorm", Napi::Function::New(env, RmsNorm, "rmsnorm"));
  ops.Set("rope", Napi::Function::New(env, Rope, "rope"));
  ops.Set("siluMul", Napi::Function::New(env, SiluMul, "siluMul"));
  ops.Set("embed", Napi::Function::New(env, Embed, "embed"));
  ops.Set("add", Napi::Function::New(env, Add, "add"));
  ops.Set("logits", Napi::Function::New(env, Logits, "logits"));
  ops.Set("sample", Napi::Function::New(env, Sample, "sample"));
  ops.Set("fillUniform", Napi::Function::New(env, FillUniform, "fillUniform"));
  ops.Set("loadTensor", Napi::Function::New(env, LoadTensor, "loadTensor"));
  ops.Set("info", Napi::Function::New(env, OpsInfoFn, "opsInfo"));
  ops.Set("fmaPeak", Napi::Function::New(env, FmaPeak, "fmaPeak"));
  ops.Set("cublasInfo", Napi::Function::New(env, CublasInfo, "cublasInfo"));
  exports.Set("modelOps", ops);
  exports.Set("ModelRunner", ModelRunnerWrap::Init(env));
}

}  // namespace kvcake::napi
