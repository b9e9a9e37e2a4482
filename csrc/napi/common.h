// Shared by the binding's files: per-addon data, the C++ -> JS error mapping, checked
// unwrapping of the binding's objects, and the conversions from JS values to op
// arguments. Every conversion names the argument it rejects and says what it got, printed
// as the caller wrote it (1e-7, 1e+300, 12n, null), so a caller learns which field was
// wrong without reading native code. New ops should take their arguments through these
// helpers, so they reject bad input in the same words.
//
// Native entry points do not rely on lib/backend.ts having checked anything: every value
// is converted here, and every conversion that reads JS (a property getter, an array
// element getter, a Proxy trap) may run user code, so nothing is held by reference across
// one: pools and tensors are copied out (their shared_ptr keeps the memory), typed-array
// bytes are copied at once.
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

class EnvLifetime;

struct AddonData {
  Napi::FunctionReference backendCtor, poolCtor, tensorCtor, eventCtor;
  std::shared_ptr<EnvLifetime> lifetime;
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

// Whether v is an object carrying `tag` (set by one of the binding's constructors).
bool isTagged(const Napi::Value& v, const napi_type_tag& tag);
// node-addon-api calls T::Unwrap on `this` before every instance method and accessor; each
// class hides ObjectWrap::Unwrap with one that calls this, so a method called on the wrong
// object (pool.release.call(tensor), an object with a Pool prototype) throws a TypeError
// instead of reading another class's memory.
template <typename T>
T* checkedUnwrap(const Napi::Object& o, const napi_type_tag& tag, const char* className) {
  if (!isTagged(o, tag))
    typeError(o.Env(), std::string("kvcake: a ") + className + " method was called on an object that is not a " +
                           className);
  return Napi::ObjectWrap<T>::Unwrap(o);
}

// How a rejected value is shown in messages: numbers as JS prints them, BigInts with
// their n, short strings quoted, everything else by kind. Runs no user code.
std::string describe(const Napi::Value& v);

// An integer in [min, max]: TypeError if not a number, RangeError if NaN, fractional or
// outside the range.
int64_t toInt(const Napi::Value& v, const std::string& name, int64_t min, int64_t max);
// A finite number.
double toFinite(const Napi::Value& v, const std::string& name);
Napi::Object toObject(const Napi::Value& v, const std::string& name);
// An Int32Array (over an ArrayBuffer or a SharedArrayBuffer), copied (ops own their
// metadata).
std::vector<int32_t> toInt32Vector(const Napi::Value& v, const std::string& name);
DType toDType(const Napi::Value& v, const std::string& name);
Tier toTier(const Napi::Value& v, const std::string& name);
// A copy of the typed array that carries `dtype` data: Float32Array for fp32, Uint16Array
// for fp16/bf16 (their bit patterns), over an ArrayBuffer or a SharedArrayBuffer.
struct Bytes {
  const uint8_t* data;  // into `owned`: valid as long as it is
  size_t length;
  int64_t numel;
  std::shared_ptr<HostBytes> owned;
};
Bytes toDTypeBytes(const Napi::Value& v, DType dtype, const std::string& name);

// An ArrayBuffer over `bytes` without a copy (freed when JS collects it; V8 is told its
// size so collection keeps pace), or a copy where external buffers are not allowed.
Napi::Value toArrayBuffer(Napi::Env env, std::shared_ptr<HostBytes> bytes);

}  // namespace kvcake::napi
