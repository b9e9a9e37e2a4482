// Module entry: registers the classes, the backend factory and CUDA availability.
//   createBackend(kind: 'cpu'|'cuda', { device?, deviceCapacityBytes?, cpuIsa? }) -> Backend
//   cudaInfo() -> { compiledIn, usable, reason }
//   StoreIo, inspectChunkHeader: the prefix store's native I/O (napi/store_io_wrap.h)
#include "cpu/cpu_backend.h"
#include "napi/backend_wrap.h"
#include "napi/event_wrap.h"
#include "napi/model_ops_wrap.h"
#include "napi/pool_wrap.h"
#include "napi/store_io_wrap.h"
#include "napi/tensor_wrap.h"

namespace kvcake::napi {

namespace {

Napi::Value CreateBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsString()) typeError(env, "createBackend: kind must be 'cpu' or 'cuda', got " + describe(info[0]));
    const std::string kind = info[0].As<Napi::String>().Utf8Value();
    Napi::Object opts = info[1].IsUndefined() ? Napi::Object::New(env) : toObject(info[1], "createBackend: options");
    if (kind == "cpu") {
      CpuBackendOptions o;
      Napi::Value cap = opts.Get("deviceCapacityBytes");
      if (!cap.IsUndefined() && !cap.IsNull())
        o.deviceCapacityBytes = toInt(cap, "createBackend: deviceCapacityBytes", 1, int64_t(1) << 53);
      Napi::Value isa = opts.Get("cpuIsa");
      if (!isa.IsUndefined() && !isa.IsNull()) {
        if (!isa.IsString()) typeError(env, "createBackend: cpuIsa must be a string");
        o.isa = isa.As<Napi::String>().Utf8Value();
        if (o.isa.empty()) rangeError(env, "createBackend: cpuIsa must not be empty");
      }
      return BackendWrap::Make(env, createCpuBackend(o));
    }
    if (kind == "cuda") {
      Napi::Value dev = opts.Get("device");
      int index = dev.IsUndefined() || dev.IsNull() ? 0 : int(toInt(dev, "createBackend: device", 0, 1023));
      return BackendWrap::Make(env, createCudaBackend(index));
    }
    rangeError(env, "createBackend: kind must be 'cpu' or 'cuda', got " + describe(info[0]));
  });
}

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::string why;
    const bool usable = cudaUsable(&why);
    Napi::Object o = Napi::Object::New(env);
    o.Set("compiledIn", cudaCompiledIn());
    o.Set("usable", usable);
    o.Set("reason", usable ? std::string() : why);
    return o;
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->lifetime = EnvLifetime::create(env);
  data->backendCtor = Napi::Persistent(BackendWrap::Init(env));
  data->poolCtor = Napi::Persistent(PoolWrap::Init(env));
  data->tensorCtor = Napi::Persistent(TensorWrap::Init(env));
  data->eventCtor = Napi::Persistent(EventWrap::Init(env));
  env.SetInstanceData(data);
  exports.Set("createBackend", Napi::Function::New(env, CreateBackend, "createBackend"));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  registerModelOps(env, exports);
  registerStore(env, exports);
  return exports;
}

}  // namespace

}  // namespace kvcake::napi

static Napi::Object InitKvcake(Napi::Env env, Napi::Object exports) { return kvcake::napi::Init(env, exports); }

NODE_API_MODULE(kvcake, InitKvcake)
