#include "napi/common.h"

#include <cmath>
#include <cstring>

namespace kvcake::napi {

namespace {

// JS's own spelling of a number or BigInt (shortest round trip: 1e-7, 1e+300, -0 as 0).
// Coercing a primitive runs no user code.
std::string jsSpelling(const Napi::Value& v) {
  napi_value s;
  if (napi_coerce_to_string(v.Env(), v, &s) != napi_ok) return "?";
  return Napi::String(v.Env(), s).Utf8Value();
}

const char* typedArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "typed array";
  }
}

struct TypedView {
  napi_typedarray_type type;
  size_t length;
  const uint8_t* data;  // already at the view's byte offset; null when detached or empty
};

// The view's own data pointer, from the typed array itself: unlike the ArrayBuffer's, it
// is there for views over a SharedArrayBuffer too.
bool typedView(const Napi::Value& v, TypedView* out) {
  if (!v.IsTypedArray()) return false;
  void* data = nullptr;
  napi_value buffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(v.Env(), v, &out->type, &out->length, &data, &buffer, &offset) != napi_ok) return false;
  out->data = static_cast<const uint8_t*>(data);
  if (out->data == nullptr) out->length = 0;
  return true;
}

size_t elementBytes(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    default: return 8;
  }
}

}  // namespace

bool isTagged(const Napi::Value& v, const napi_type_tag& tag) {
  napi_valuetype t;
  if (napi_typeof(v.Env(), v, &t) != napi_ok || (t != napi_object && t != napi_function)) return false;
  bool ok = false;
  return napi_check_object_type_tag(v.Env(), v, &tag, &ok) == napi_ok && ok;
}

std::string describe(const Napi::Value& v) {
  napi_valuetype t;
  if (napi_typeof(v.Env(), v, &t) != napi_ok) return "an unknown value";
  switch (t) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return v.As<Napi::Boolean>().Value() ? "true" : "false";
    case napi_number: return jsSpelling(v);
    case napi_bigint: return jsSpelling(v) + "n";
    case napi_string: {
      std::string s = v.As<Napi::String>().Utf8Value();
      if (s.size() > 40) {
        size_t cut = 37;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole UTF-8 characters
        s = s.substr(0, cut) + "...";
      }
      return "'" + s + "'";
    }
    case napi_symbol: return "a symbol";
    case napi_function: return "a function";
    case napi_external: return "an external value";
    default: break;
  }
  TypedView tv;
  if (typedView(v, &tv)) {
    const std::string n = typedArrayName(tv.type);
    return std::string(n[0] == 'I' || n[0] == 'U' ? "an " : "a ") + n + " of length " + std::to_string(tv.length);
  }
  if (v.IsArray()) return "an array";
  if (v.IsArrayBuffer()) return "an ArrayBuffer";
  if (v.IsPromise()) return "a Promise";
  return "an object";
}

int64_t toInt(const Napi::Value& v, const std::string& name, int64_t min, int64_t max) {
  Napi::Env env = v.Env();
  if (!v.IsNumber()) typeError(env, name + " must be a number, got " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d) rangeError(env, name + " must be an integer, got " + describe(v));
  if (d < double(min) || d > double(max))
    rangeError(env, name + " = " + describe(v) + " is out of range [" + std::to_string(min) + ", " +
                        std::to_string(max) + "]");
  return int64_t(d);
}

double toFinite(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsNumber()) typeError(env, name + " must be a number, got " + describe(v));
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) rangeError(env, name + " must be a finite number, got " + describe(v));
  return d;
}

Napi::Object toObject(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray() || v.IsFunction())
    typeError(v.Env(), name + " must be an object, got " + describe(v));
  return v.As<Napi::Object>();
}

std::vector<int32_t> toInt32Vector(const Napi::Value& v, const std::string& name) {
  TypedView tv;
  if (!typedView(v, &tv) || tv.type != napi_int32_array)
    typeError(v.Env(), name + " must be an Int32Array, got " + describe(v));
  std::vector<int32_t> out(tv.length);
  if (tv.length) std::memcpy(out.data(), tv.data, tv.length * sizeof(int32_t));
  return out;
}

DType toDType(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) typeError(v.Env(), name + " must be 'fp32', 'fp16' or 'bf16', got " + describe(v));
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "fp32") return DType::F32;
  if (s == "fp16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  rangeError(v.Env(), name + " must be 'fp32', 'fp16' or 'bf16', got " + describe(v));
}

Tier toTier(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) typeError(v.Env(), name + " must be 'device' or 'host', got " + describe(v));
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "device") return Tier::Device;
  if (s == "host") return Tier::Host;
  rangeError(v.Env(), name + " must be 'device' or 'host', got " + describe(v));
}

Bytes toDTypeBytes(const Napi::Value& v, DType dtype, const std::string& name) {
  const napi_typedarray_type want = dtype == DType::F32 ? napi_float32_array : napi_uint16_array;
  const char* wantName = dtype == DType::F32 ? "a Float32Array" : "a Uint16Array (fp16/bf16 bit patterns)";
  TypedView tv;
  if (!typedView(v, &tv) || tv.type != want)
    typeError(v.Env(), name + " must be " + wantName + " for " + dtypeName(dtype) + " data, got " + describe(v));
  const size_t n = tv.length * elementBytes(tv.type);
  auto bytes = std::make_shared<HostBytes>(n);
  if (n) std::memcpy(bytes->data(), tv.data, n);
  const uint8_t* data = bytes->data();
  return Bytes{data, n, int64_t(tv.length), std::move(bytes)};
}

Napi::Value toArrayBuffer(Napi::Env env, std::shared_ptr<HostBytes> bytes) {
  const size_t n = bytes ? bytes->size() : 0;
  if (n > 0) {
    auto* hold = new std::shared_ptr<HostBytes>(bytes);
    napi_value ab;
    const napi_status st = napi_create_external_arraybuffer(
        env, bytes->data(), n,
        [](napi_env e, void*, void* hint) {
          auto* h = static_cast<std::shared_ptr<HostBytes>*>(hint);
          int64_t ignored;
          napi_adjust_external_memory(e, -int64_t((*h)->size()), &ignored);
          delete h;
        },
        hold, &ab);
    if (st == napi_ok) {
      int64_t ignored;
      napi_adjust_external_memory(env, int64_t(n), &ignored);
      return Napi::Value(env, ab);
    }
    delete hold;
    // A runtime without external buffers (V8 sandbox) reports it as an error; copy instead.
    napi_value pending;
    bool isPending = false;
    if (napi_is_exception_pending(env, &isPending) == napi_ok && isPending) napi_get_and_clear_last_exception(env, &pending);
  }
  auto buf = Napi::ArrayBuffer::New(env, n);
  if (n) std::memcpy(buf.Data(), bytes->data(), n);
  return buf;
}

}  // namespace kvcake::napi
