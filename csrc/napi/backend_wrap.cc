#include "napi/backend_wrap.h"

#include <cmath>
#include <cstring>

#include "core/validate.h"
#include "napi/event_wrap.h"
#include "napi/pool_wrap.h"
#include "napi/tensor_wrap.h"

namespace kvcake::napi {

namespace {

constexpr napi_type_tag kTag = {0x6b76636b65ee0004ULL, 0x3b4c5d6e7f8091a2ULL};
constexpr int64_t kMaxNumel = int64_t(1) << 40;

Napi::Value field(const Napi::Object& o, const char* key) { return o.Get(key); }

// Decode and prefill share these arguments.
template <typename Op>
void readAttention(Op& op, const Napi::Object& a, const Backend* owner, const char* opName) {
  const std::string p = std::string(opName) + ": ";
  op.pool = PoolWrap::From(field(a, "pool"), owner, p + "pool");
  op.q = TensorWrap::From(field(a, "q"), owner, p + "q");
  op.out = TensorWrap::From(field(a, "out"), owner, p + "out");
  op.blockTables = toInt32Vector(field(a, "blockTables"), p + "blockTables");
  op.tableStride = int32_t(toInt(field(a, "tableStride"), p + "tableStride", 1, INT32_MAX));
  op.contextLens = toInt32Vector(field(a, "contextLens"), p + "contextLens");
  op.batch = int32_t(op.contextLens.size());
  op.numHeads = int32_t(toInt(field(a, "numHeads"), p + "numHeads", 1, Limits::kMaxHeads));
  Napi::Value s = field(a, "scale");
  if (s.IsUndefined() || s.IsNull()) {
    op.scale = 0.f;  // 1/sqrt(headDim)
  } else {
    const double d = toFinite(s, p + "scale");
    // Also what survives the float conversion: 1e-50 would become 0 (the default) and
    // 1e39 infinity.
    if (!(d > 0) || !(float(d) > 0.f) || !std::isfinite(float(d)))
      rangeError(a.Env(), p + "scale must be a positive finite number (or left out for 1/sqrt(headDim)), got " +
                              describe(s));
    op.scale = float(d);
  }
}

// A backend's allocation failure (capacity, out of memory), named after the call.
MemoryPtr allocate(Backend& be, size_t bytes, Tier tier, const char* fn, const char* what) {
  try {
    return be.allocate(bytes, tier, what);
  } catch (const std::bad_alloc&) {
    throw Error(std::string(fn) + ": out of memory allocating a " + what + " of " + std::to_string(bytes) + " bytes");
  } catch (const Error& e) {
    throw Error(std::string(fn) + ": " + e.what());
  }
}

// Raw pool access runs on the queue that last writes that tier in a typical step: compute
// for the device tier (appends), d2h for the host tier (offloads).
Queue poolQueue(const Pool& p) { return p.mem->tier == Tier::Device ? Queue::Compute : Queue::DeviceToHost; }

// [firstBlock, firstBlock + numBlocks) checked against the pool.
void checkBlockRange(Napi::Env env, const char* op, const Pool& p, int64_t first, int64_t count) {
  if (count > p.layout.numBlocks - first)
    rangeError(env, std::string(op) + ": blocks [" + std::to_string(first) + ", " + std::to_string(first + count) +
                        ") exceed the pool's " + std::to_string(p.layout.numBlocks) + " blocks");
}

}  // namespace

Napi::Function BackendWrap::Init(Napi::Env env) {
  return DefineClass(env, "Backend",
                     {InstanceAccessor<&BackendWrap::Name>("name"),
                      InstanceAccessor<&BackendWrap::DeviceName>("deviceName"),
                      InstanceMethod<&BackendWrap::LiveBytes>("liveBytes"),
                      InstanceMethod<&BackendWrap::CreatePool>("createPool"),
                      InstanceMethod<&BackendWrap::CreateTensor>("createTensor"),
                      InstanceMethod<&BackendWrap::Append>("append"),
                      InstanceMethod<&BackendWrap::Decode>("decode"),
                      InstanceMethod<&BackendWrap::Prefill>("prefill"),
                      InstanceMethod<&BackendWrap::CopyBlocks>("copyBlocks"),
                      InstanceMethod<&BackendWrap::Write>("write"),
                      InstanceMethod<&BackendWrap::Read>("read"),
                      InstanceMethod<&BackendWrap::ReadPool>("readPool"),
                      InstanceMethod<&BackendWrap::WritePool>("writePool"),
                      InstanceMethod<&BackendWrap::Info>("info"),
                      InstanceMethod<&BackendWrap::Reference>("reference")});
}

BackendWrap::BackendWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BackendWrap>(info) {
  info.This().As<Napi::Object>().TypeTag(&kTag);
}

BackendWrap* BackendWrap::Unwrap(Napi::Object o) { return checkedUnwrap<BackendWrap>(o, kTag, "Backend"); }

Napi::Object BackendWrap::Make(Napi::Env env, std::unique_ptr<Backend> backend) {
  AddonData& data = addonData(env);
  Napi::Object obj = data.backendCtor.New({});
  auto be = std::shared_ptr<Backend>(std::move(backend));
  data.lifetime->track(be);  // shut down with this environment (event_wrap.h)
  Unwrap(obj)->backend_ = std::move(be);
  return obj;
}

std::shared_ptr<Backend> BackendWrap::Shared(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addonData(env).backendCtor.Value()))
    typeError(env, name + " must be a Backend");
  BackendWrap* w = Unwrap(v.As<Napi::Object>());
  if (!w->backend_) typeError(env, name + " must be a Backend created by createBackend");
  return w->backend_;
}

Backend& BackendWrap::backend(Napi::Env env) {
  if (!backend_) typeError(env, "this Backend was not created by createBackend");
  return *backend_;
}

Napi::Value BackendWrap::Name(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), backend(info.Env()).name());
}

Napi::Value BackendWrap::DeviceName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), backend(info.Env()).deviceName());
}

Napi::Value BackendWrap::LiveBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Tier t = toTier(info[0], "liveBytes: tier");
  return Napi::Number::New(env, double(backend(env).liveBytes(t)));
}

// createPool({ numBlocks, numKvHeads, headDim, blockSize, dtype, tier })
Napi::Value BackendWrap::CreatePool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    Napi::Object o = toObject(info[0], "createPool: options");
    KVLayout l;
    l.numBlocks = int32_t(toInt(field(o, "numBlocks"), "createPool: numBlocks", 1, INT32_MAX));
    l.numKvHeads = int32_t(toInt(field(o, "numKvHeads"), "createPool: numKvHeads", 1, Limits::kMaxKvHeads));
    l.headDim = int32_t(toInt(field(o, "headDim"), "createPool: headDim", 1, Limits::kMaxHeadDim));
    l.blockSize = int32_t(toInt(field(o, "blockSize"), "createPool: blockSize", 1, INT32_MAX));
    l.dtype = toDType(field(o, "dtype"), "createPool: dtype");
    Tier tier = toTier(field(o, "tier"), "createPool: tier");
    validatePoolLayout(l);
    Pool p;
    p.layout = l;
    p.mem = allocate(be, size_t(l.poolBytes()), tier, "createPool", "pool");
    return PoolWrap::Make(env, backend_, std::move(p));
  });
}

// createTensor(dtype, numel, tier)
Napi::Value BackendWrap::CreateTensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    Tensor t;
    t.dtype = toDType(info[0], "tensor: dtype");
    t.numel = toInt(info[1], "tensor: numel", 1, kMaxNumel);
    Tier tier = info[2].IsUndefined() ? Tier::Device : toTier(info[2], "tensor: tier");
    t.mem = allocate(be, size_t(t.numel) * dtypeSize(t.dtype), tier, "tensor", "tensor");
    return TensorWrap::Make(env, backend_, std::move(t));
  });
}

// append({ pool, k, v, slotMapping }, waitFor)
Napi::Value BackendWrap::Append(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    Napi::Object a = toObject(info[0], "append: arguments");
    AppendOp op;
    op.pool = PoolWrap::From(field(a, "pool"), &be, "append: pool");
    op.k = TensorWrap::From(field(a, "k"), &be, "append: k");
    op.v = TensorWrap::From(field(a, "v"), &be, "append: v");
    op.slots = toInt32Vector(field(a, "slotMapping"), "append: slotMapping");
    Deps deps = toDeps(info[1], &be, "append: waitFor");
    validateAppend(op);
    return EventWrap::Make(env, be.append(std::move(op), deps), &be);
  });
}

// decode({ pool, q, out, blockTables, tableStride, contextLens, numHeads, scale }, waitFor)
Napi::Value BackendWrap::Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    Napi::Object a = toObject(info[0], "decode: arguments");
    DecodeOp op;
    readAttention(op, a, &be, "decode");
    Deps deps = toDeps(info[1], &be, "decode: waitFor");
    validateDecode(op);
    return EventWrap::Make(env, be.decode(std::move(op), deps), &be);
  });
}

// prefill({ ...decode's arguments, qStartLoc }, waitFor)
Napi::Value BackendWrap::Prefill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    Napi::Object a = toObject(info[0], "prefill: arguments");
    PrefillOp op;
    readAttention(op, a, &be, "prefill");
    op.qStartLoc = toInt32Vector(field(a, "qStartLoc"), "prefill: qStartLoc");
    Deps deps = toDeps(info[1], &be, "prefill: waitFor");
    validatePrefill(op);
    return EventWrap::Make(env, be.prefill(std::move(op), deps), &be);
  });
}

// copyBlocks(src, dst, pairs, waitFor)
Napi::Value BackendWrap::CopyBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    CopyOp op;
    op.src = PoolWrap::From(info[0], &be, "copyBlocks: src");
    op.dst = PoolWrap::From(info[1], &be, "copyBlocks: dst");
    op.pairs = toInt32Vector(info[2], "copyBlocks: pairs");
    Deps deps = toDeps(info[3], &be, "copyBlocks: waitFor");
    validateCopy(op);
    return EventWrap::Make(env, be.copyBlocks(std::move(op), deps), &be);
  });
}

// write(tensor, data, offsetElements, waitFor): on the compute queue, so ops issued after
// it see the data without a waitFor.
Napi::Value BackendWrap::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    const Tensor t = TensorWrap::From(info[0], &be, "write: tensor");
    Bytes b = toDTypeBytes(info[1], t.dtype, "write: data");
    const int64_t offset = info[2].IsUndefined() ? 0 : toInt(info[2], "write: offset", 0, t.numel);
    if (b.numel > t.numel - offset)
      rangeError(env, "write: " + std::to_string(b.numel) + " elements at offset " + std::to_string(offset) +
                          " do not fit the tensor's " + std::to_string(t.numel) + " elements");
    WriteOp op;
    op.dst = t.mem;
    op.offset = size_t(offset) * dtypeSize(t.dtype);
    op.bytes = std::move(b.owned);
    Deps deps = toDeps(info[3], &be, "write: waitFor");
    validateWrite(op);
    return EventWrap::Make(env, be.write(std::move(op), Queue::Compute, deps), &be);
  });
}

// read(tensor, waitFor): on the compute queue; the promise resolves to an ArrayBuffer.
Napi::Value BackendWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    const Tensor t = TensorWrap::From(info[0], &be, "read: tensor");
    ReadOp op;
    op.src = t.mem;
    op.offset = 0;
    op.length = size_t(t.numel) * dtypeSize(t.dtype);
    op.into = std::make_shared<HostBytes>(op.length);  // ops.h: sized by the caller
    Deps deps = toDeps(info[1], &be, "read: waitFor");
    validateRead(op);
    auto into = op.into;
    return EventWrap::Make(env, be.read(std::move(op), Queue::Compute, deps), &be,
                           [into](Napi::Env e) -> Napi::Value { return toArrayBuffer(e, into); });
  });
}

// readPool(pool, firstBlock, numBlocks, waitFor): raw layer-block bytes (the layout of
// KVLayout), for checkpoints and tests. Resolves to an ArrayBuffer.
Napi::Value BackendWrap::ReadPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    const Pool p = PoolWrap::From(info[0], &be, "readPool: pool");
    const int64_t first = toInt(info[1], "readPool: firstBlock", 0, p.layout.numBlocks - 1);
    const int64_t count = toInt(info[2], "readPool: numBlocks", 0, p.layout.numBlocks);
    checkBlockRange(env, "readPool", p, first, count);
    ReadOp op;
    op.src = p.mem;
    op.offset = size_t(first * p.layout.blockBytes());
    op.length = size_t(count * p.layout.blockBytes());
    op.into = std::make_shared<HostBytes>(op.length);  // ops.h: sized by the caller
    Deps deps = toDeps(info[3], &be, "readPool: waitFor");
    validateRead(op);
    auto into = op.into;
    return EventWrap::Make(env, be.read(std::move(op), poolQueue(p), deps), &be,
                           [into](Napi::Env e) -> Napi::Value { return toArrayBuffer(e, into); });
  });
}

// writePool(pool, firstBlock, data, waitFor): data holds whole layer-blocks in the pool's
// dtype (Float32Array for fp32, Uint16Array for fp16/bf16), copied now.
Napi::Value BackendWrap::WritePool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    const Pool p = PoolWrap::From(info[0], &be, "writePool: pool");
    const int64_t first = toInt(info[1], "writePool: firstBlock", 0, p.layout.numBlocks - 1);
    Bytes b = toDTypeBytes(info[2], p.layout.dtype, "writePool: data");
    if (b.numel % p.layout.blockStride() != 0)
      rangeError(env, "writePool: data has " + std::to_string(b.numel) + " elements, not a whole number of blocks of " +
                          std::to_string(p.layout.blockStride()));
    checkBlockRange(env, "writePool", p, first, b.numel / p.layout.blockStride());
    WriteOp op;
    op.dst = p.mem;
    op.offset = size_t(first * p.layout.blockBytes());
    op.bytes = std::move(b.owned);
    Deps deps = toDeps(info[3], &be, "writePool: waitFor");
    validateWrite(op);
    return EventWrap::Make(env, be.write(std::move(op), poolQueue(p), deps), &be);
  });
}

// info(): the backend's own report, as an object of strings.
Napi::Value BackendWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    for (const auto& [k, v] : backend(env).info()) o.Set(k, v);
    return o;
  });
}

// reference({ kind: 'read', pool, blocks } | { kind: 'fma', iterations }, waitFor): benchmark
// reference work on the compute queue; resolves to the bytes read or the flops done.
Napi::Value BackendWrap::Reference(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Backend& be = backend(env);
    Napi::Object a = toObject(info[0], "reference: arguments");
    Napi::Value kind = field(a, "kind");
    const std::string k = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
    ReferenceOp op;
    if (k == "read") {
      op.kind = ReferenceOp::Kind::Read;
      op.pool = PoolWrap::From(field(a, "pool"), &be, "reference: pool");
      op.blocks = toInt32Vector(field(a, "blocks"), "reference: blocks");
    } else if (k == "fma") {
      op.kind = ReferenceOp::Kind::Fma;
      op.iterations = toInt(field(a, "iterations"), "reference: iterations", 1, int64_t(1) << 40);
    } else {
      typeError(env, "reference: kind must be 'read' or 'fma'");
    }
    Deps deps = toDeps(info[1], &be, "reference: waitFor");
    validateReference(op);
    auto result = op.result;
    return EventWrap::Make(env, be.reference(std::move(op), deps), &be,
                           [result](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *result); });
  });
}

}  // namespace kvcake::napi
