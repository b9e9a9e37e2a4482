#include "napi/store_io_wrap.h"

#include <cstdio>
#include <cstring>

#include "napi/event_wrap.h"
#include "napi/pool_wrap.h"
#include "store/chunk_io.h"
#include "store/store_validate.h"

namespace kvcake::napi {

namespace {

using store::ChunkSpec;
using store::Digest;

constexpr size_t kMaxPath = 4096;

store::Digest toDigest(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    typeError(env, name + " must be a Uint8Array of 32 bytes");
  auto a = v.As<Napi::Uint8Array>();
  if (a.ByteLength() != 32) rangeError(env, name + " must be 32 bytes, got " + std::to_string(a.ByteLength()));
  Digest d;
  std::memcpy(d.data(), a.Data(), 32);
  return d;
}

ChunkSpec toSpec(const Napi::Value& v, const std::string& op) {
  Napi::Env env = v.Env();
  Napi::Object o = toObject(v, op + ": spec");
  ChunkSpec s;
  s.fingerprint = toDigest(o.Get("fingerprint"), op + ": spec.fingerprint");
  Napi::Value arch = o.Get("architecture");
  if (!arch.IsString()) typeError(env, op + ": spec.architecture must be a string");
  s.architecture = arch.As<Napi::String>().Utf8Value();
  s.numLayers = int32_t(toInt(o.Get("numLayers"), op + ": spec.numLayers", 0, INT32_MAX));
  s.numKvHeads = int32_t(toInt(o.Get("numKvHeads"), op + ": spec.numKvHeads", 0, INT32_MAX));
  s.headDim = int32_t(toInt(o.Get("headDim"), op + ": spec.headDim", 0, INT32_MAX));
  s.blockSize = int32_t(toInt(o.Get("blockSize"), op + ": spec.blockSize", 0, INT32_MAX));
  s.blocksPerLayer = int32_t(toInt(o.Get("blocksPerLayer"), op + ": spec.blocksPerLayer", 0, INT32_MAX));
  s.dtype = toDType(o.Get("dtype"), op + ": spec.dtype");
  store::validateChunkSpec(op.c_str(), s);
  return s;
}

std::string toPath(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsString()) typeError(env, name + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.empty()) rangeError(env, name + " must not be empty");
  if (s.size() > kMaxPath) rangeError(env, name + " is " + std::to_string(s.size()) + " bytes, the limit is " + std::to_string(kMaxPath));
  if (s.find('\0') != std::string::npos) rangeError(env, name + " must not contain NUL characters");
  return s;
}

// Segments of one value, and references that keep their buffers alive until the op has
// settled (released on the JS thread, with the Event's pending state).
using Refs = std::shared_ptr<std::vector<Napi::Reference<Napi::Value>>>;
std::vector<store::Segment> toSegments(const Napi::Value& v, const std::string& name, const Refs& refs) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) typeError(env, name + " must be an array of Uint8Array (Buffer)");
  auto arr = v.As<Napi::Array>();
  std::vector<store::Segment> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    if (!e.IsTypedArray() || e.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      typeError(env, name + "[" + std::to_string(i) + "] must be a Uint8Array (Buffer)");
    auto a = e.As<Napi::Uint8Array>();
    out.push_back(store::Segment{a.Data(), a.ByteLength()});
    refs->push_back(Napi::Reference<Napi::Value>::New(e, 1));
  }
  return out;
}

// The pool argument of a block op, and the backend it belongs to (the Event's owner).
struct PoolArg {
  const Backend* owner = nullptr;
  Pool pool;
};
PoolArg toPool(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addonData(env).poolCtor.Value()))
    typeError(env, name + " must be a Pool created by createPool");
  const Backend* owner = PoolWrap::Unwrap(v.As<Napi::Object>())->owner();
  if (!owner) typeError(env, name + " must be a Pool created by createPool");
  return PoolArg{owner, PoolWrap::From(v, owner, name)};
}

Napi::Object reportObject(Napi::Env env, const store::IoReport& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytes", double(r.bytes));
  o.Set("seconds", r.seconds);
  return o;
}

std::function<Napi::Value(Napi::Env)> reportResult(std::shared_ptr<store::IoReport> report, Refs refs = nullptr) {
  return [report, refs](Napi::Env e) -> Napi::Value { return reportObject(e, *report); };
}

std::function<Napi::Value(Napi::Env)> valueResult(std::shared_ptr<store::OwnedBytes> value,
                                                  std::shared_ptr<store::IoReport> report) {
  return [value, report](Napi::Env e) -> Napi::Value {
    Napi::Object o = reportObject(e, *report);
    const size_t n = value->size;
    uint8_t* data = value->release();
    o.Set("value", Napi::Buffer<uint8_t>::New(e, data, n, [](Napi::Env, uint8_t* p) { std::free(p); }));
    return o;
  };
}

std::string hex128(const store::Checksum128& c) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(c.high),
                static_cast<unsigned long long>(c.low));
  return buf;
}

class StoreIoWrap : public Napi::ObjectWrap<StoreIoWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "StoreIo",
                       {InstanceMethod<&StoreIoWrap::ReadFile>("readFile"),
                        InstanceMethod<&StoreIoWrap::Scatter>("scatter"),
                        InstanceMethod<&StoreIoWrap::WriteFile>("writeFile"),
                        InstanceMethod<&StoreIoWrap::Gather>("gather"),
                        InstanceMethod<&StoreIoWrap::ReadValue>("readValue"),
                        InstanceMethod<&StoreIoWrap::WriteValue>("writeValue"),
                        InstanceMethod<&StoreIoWrap::SetReadCap>("setReadCap"),
                        InstanceMethod<&StoreIoWrap::Close>("close"),
                        InstanceMethod<&StoreIoWrap::DropPageCache>("dropPageCache"),
                        InstanceMethod<&StoreIoWrap::ReadPlain>("readPlain"),
                        InstanceAccessor<&StoreIoWrap::ReadCap>("readCap"),
                        InstanceAccessor<&StoreIoWrap::Threads>("threads")});
  }

  // new StoreIo({ threads?, readBytesPerSecond?, readBurstBytes? })
  explicit StoreIoWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StoreIoWrap>(info) {
    Napi::Env env = info.Env();
    guarded(env, [&] {
      Napi::Object o = info[0].IsUndefined() ? Napi::Object::New(env) : toObject(info[0], "StoreIo: options");
      store::ChunkIoOptions opts;
      Napi::Value t = o.Get("threads");
      if (!t.IsUndefined()) opts.threads = int(toInt(t, "StoreIo: threads", 1, 64));
      Napi::Value r = o.Get("readBytesPerSecond");
      if (!r.IsUndefined()) opts.readBytesPerSecond = nonNegative(r, "StoreIo: readBytesPerSecond");
      Napi::Value b = o.Get("readBurstBytes");
      if (!b.IsUndefined()) opts.readBurstBytes = nonNegative(b, "StoreIo: readBurstBytes");
      io_ = std::make_unique<store::ChunkIo>(opts);
    });
  }

 private:
  static double nonNegative(const Napi::Value& v, const std::string& name) {
    const double d = toFinite(v, name);
    if (d < 0) rangeError(v.Env(), name + " must be >= 0, got " + std::to_string(d));
    return d;
  }

  store::ChunkIo& io(Napi::Env env) {
    if (!io_) throw Napi::Error::New(env, "StoreIo has been closed");
    return *io_;
  }

  // readFile(pool, blocks, path, spec, key, waitFor)
  Napi::Value ReadFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      PoolArg p = toPool(info[0], "readFile: pool");
      store::ChunkBlocks dst{p.pool, toInt32Vector(info[1], "readFile: blocks")};
      std::string path = toPath(info[2], "readFile: path");
      ChunkSpec spec = toSpec(info[3], "readFile");
      Digest key = toDigest(info[4], "readFile: key");
      Deps deps = toDeps(info[5], p.owner, "readFile: waitFor");
      store::validateChunkBlocks("readFile", spec, dst.pool, dst.blocks);
      auto report = std::make_shared<store::IoReport>();
      EventPtr ev = cio.readFile(std::move(path), std::move(spec), key, std::move(dst), std::move(deps), report);
      return EventWrap::Make(env, ev, p.owner, reportResult(report));
    });
  }

  // scatter(pool, blocks, segments, spec, key, waitFor)
  Napi::Value Scatter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      PoolArg p = toPool(info[0], "scatter: pool");
      store::ChunkBlocks dst{p.pool, toInt32Vector(info[1], "scatter: blocks")};
      auto refs = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>();
      std::vector<store::Segment> segs = toSegments(info[2], "scatter: segments", refs);
      ChunkSpec spec = toSpec(info[3], "scatter");
      Digest key = toDigest(info[4], "scatter: key");
      Deps deps = toDeps(info[5], p.owner, "scatter: waitFor");
      store::validateChunkBlocks("scatter", spec, dst.pool, dst.blocks);
      auto report = std::make_shared<store::IoReport>();
      EventPtr ev = cio.scatter(std::move(segs), std::move(spec), key, std::move(dst), std::move(deps), report);
      return EventWrap::Make(env, ev, p.owner, reportResult(report, refs));
    });
  }

  // writeFile(pool, blocks, dir, spec, key, waitFor)
  Napi::Value WriteFile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      PoolArg p = toPool(info[0], "writeFile: pool");
      store::ChunkBlocks src{p.pool, toInt32Vector(info[1], "writeFile: blocks")};
      std::string dir = toPath(info[2], "writeFile: dir");
      ChunkSpec spec = toSpec(info[3], "writeFile");
      Digest key = toDigest(info[4], "writeFile: key");
      Deps deps = toDeps(info[5], p.owner, "writeFile: waitFor");
      store::validateChunkBlocks("writeFile", spec, src.pool, src.blocks);
      auto report = std::make_shared<store::IoReport>();
      EventPtr ev = cio.writeFile(std::move(dir), std::move(spec), key, std::move(src), std::move(deps), report);
      return EventWrap::Make(env, ev, p.owner, reportResult(report));
    });
  }

  // gather(pool, blocks, spec, key, waitFor)
  Napi::Value Gather(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      PoolArg p = toPool(info[0], "gather: pool");
      store::ChunkBlocks src{p.pool, toInt32Vector(info[1], "gather: blocks")};
      ChunkSpec spec = toSpec(info[2], "gather");
      Digest key = toDigest(info[3], "gather: key");
      Deps deps = toDeps(info[4], p.owner, "gather: waitFor");
      store::validateChunkBlocks("gather", spec, src.pool, src.blocks);
      auto value = std::make_shared<store::OwnedBytes>();
      auto report = std::make_shared<store::IoReport>();
      EventPtr ev = cio.gather(std::move(spec), key, std::move(src), std::move(deps), value, report);
      return EventWrap::Make(env, ev, p.owner, valueResult(value, report));
    });
  }

  // readValue(path, spec, key)
  Napi::Value ReadValue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      std::string path = toPath(info[0], "readValue: path");
      ChunkSpec spec = toSpec(info[1], "readValue");
      Digest key = toDigest(info[2], "readValue: key");
      auto value = std::make_shared<store::OwnedBytes>();
      auto report = std::make_shared<store::IoReport>();
      EventPtr ev = cio.readValue(std::move(path), std::move(spec), key, value, report);
      return EventWrap::Make(env, ev, nullptr, valueResult(value, report));
    });
  }

  // writeValue(dir, segments, spec, key)
  Napi::Value WriteValue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      std::string dir = toPath(info[0], "writeValue: dir");
      auto refs = std::make_shared<std::vector<Napi::Reference<Napi::Value>>>();
      std::vector<store::Segment> segs = toSegments(info[1], "writeValue: segments", refs);
      ChunkSpec spec = toSpec(info[2], "writeValue");
      Digest key = toDigest(info[3], "writeValue: key");
      auto report = std::make_shared<store::IoReport>();
      EventPtr ev = cio.writeValue(std::move(dir), std::move(segs), std::move(spec), key, report);
      return EventWrap::Make(env, ev, nullptr, reportResult(report, refs));
    });
  }

  // setReadCap(bytesPerSecond, burstBytes): 0 bytesPerSecond removes the cap.
  Napi::Value SetReadCap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      const double rate = nonNegative(info[0], "setReadCap: bytesPerSecond");
      const double burst = info[1].IsUndefined() ? 0 : nonNegative(info[1], "setReadCap: burstBytes");
      cio.setReadCap(rate, burst);
      return env.Undefined();
    });
  }

  // readPlain(path, offset, pool, firstBlock, numBlocks): benchmark baseline, no checks.
  Napi::Value ReadPlain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::ChunkIo& cio = io(env);
      std::string path = toPath(info[0], "readPlain: path");
      const int64_t offset = toInt(info[1], "readPlain: offset", 0, int64_t(1) << 50);
      PoolArg p = toPool(info[2], "readPlain: pool");
      const int64_t first = toInt(info[3], "readPlain: firstBlock", 0, p.pool.layout.numBlocks - 1);
      const int64_t count = toInt(info[4], "readPlain: numBlocks", 1, p.pool.layout.numBlocks - first);
      if (p.pool.mem->tier != Tier::Host) rangeError(env, "readPlain: pool must be a host-tier pool");
      auto report = std::make_shared<store::IoReport>();
      EventPtr ev = cio.readPlain(std::move(path), offset, p.pool, first, count, report);
      return EventWrap::Make(env, ev, p.owner, reportResult(report));
    });
  }

  // dropPageCache(path): synchronous (one fadvise); for benchmarks of cold reads.
  Napi::Value DropPageCache(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      store::dropPageCache(toPath(info[0], "dropPageCache: path"));
      return env.Undefined();
    });
  }

  Napi::Value ReadCap(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), io_ ? io_->readCap() : 0);
  }
  Napi::Value Threads(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), io_ ? io_->threads() : 0);
  }

  // Joins the threads once every queued op has completed (callers await their ops first,
  // so this does not wait on I/O in practice).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    io_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<store::ChunkIo> io_;
};

// inspectChunkHeader(bytes, spec?, key?): the structural checks, and with spec and key the
// checks a load makes, on the first 4096 bytes (no payload checksum).
Napi::Value InspectChunkHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      typeError(env, "inspectChunkHeader: bytes must be a Uint8Array (Buffer)");
    auto a = info[0].As<Napi::Uint8Array>();
    store::HeaderFields h;
    store::Verdict v = store::parseHeader(a.Data(), a.ByteLength(), &h);
    const bool parsed = v.ok();
    if (parsed && !info[1].IsUndefined()) {
      ChunkSpec spec = toSpec(info[1], "inspectChunkHeader");
      Digest key = toDigest(info[2], "inspectChunkHeader: key");
      v = store::checkHeader(h, spec, key);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("ok", v.ok());
    o.Set("fault", store::faultCode(v.fault));
    o.Set("message", v.detail);
    if (parsed) {
      Napi::Object f = Napi::Object::New(env);
      f.Set("version", h.version);
      f.Set("headerBytes", h.headerBytes);
      f.Set("key", store::hex(h.key));
      f.Set("fingerprint", store::hex(h.fingerprint));
      f.Set("architecture", h.architecture);
      f.Set("numLayers", h.numLayers);
      f.Set("numKvHeads", h.numKvHeads);
      f.Set("headDim", h.headDim);
      f.Set("dtype", h.dtype >= 0 && h.dtype <= 2 ? Napi::Value(Napi::String::New(env, dtypeName(DType(h.dtype))))
                                                  : Napi::Value(Napi::Number::New(env, h.dtype)));
      f.Set("blockSize", h.blockSize);
      f.Set("blocksPerLayer", h.blocksPerLayer);
      f.Set("tokens", h.tokens);
      f.Set("blockBytes", double(h.blockBytes));
      f.Set("payloadBytes", double(h.payloadBytes));
      f.Set("payloadChecksum", hex128(h.payloadChecksum));
      o.Set("header", f);
    }
    return o;
  });
}

}  // namespace

void registerStore(Napi::Env env, Napi::Object exports) {
  exports.Set("StoreIo", StoreIoWrap::Init(env));
  exports.Set("inspectChunkHeader", Napi::Function::New(env, InspectChunkHeader, "inspectChunkHeader"));
  exports.Set("chunkHeaderBytes", Napi::Number::New(env, double(store::kHeaderBytes)));
  exports.Set("storeChecksumPath", Napi::String::New(env, store::checksumPath()));
}

}  // namespace kvcake::napi
