// Shared by the binding's files: per-addon data, the C++ -> JS error mapping, and the
// conversions from JS values to op arguments. Every conversion names the argument it
// rejects, so a caller learns which field was wrong without reading native code.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "core/backend.h"

namespace kvcake::napi {

struct AddonData {
  Napi::FunctionReference backendCtor, poolCtor, tensorCtor, eventCtor;
};
inline AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// Runs f, turning core errors into JS errors with the message unchanged: ArgError becomes
// RangeError, anything else Error. Napi errors pass through.
template <typename F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgError& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "kvcake: out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

[[noreturn]] inline void typeError(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] inline void rangeError(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

// An integer in [min, max]: TypeError if not a number, RangeError if NaN, fractional or
// outside the range.
int64_t toInt(const Napi::Value& v, const std::string& name, int64_t min, int64_t max);
// A finite number.
double toFinite(const Napi::Value& v, const std::string& name);
Napi::Object toObject(const Napi::Value& v, const std::string& name);
// An Int32Array, copied (ops own their metadata).
std::vector<int32_t> toInt32Vector(const Napi::Value& v, const std::string& name);
DType toDType(const Napi::Value& v, const std::string& name);
Tier toTier(const Napi::Value& v, const std::string& name);
// The raw bytes of the typed array that carries `dtype` data: Float32Array for fp32,
// Uint16Array for fp16/bf16 (their bit patterns).
struct Bytes {
  const uint8_t* data;
  size_t length;
  int64_t numel;
};
Bytes toDTypeBytes(const Napi::Value& v, DType dtype, const std::string& name);

}  // namespace kvcake::napi
