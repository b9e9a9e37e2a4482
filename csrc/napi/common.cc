#include "napi/common.h"

#include <cmath>

namespace kvcake::napi {

int64_t toInt(const Napi::Value& v, const std::string& name, int64_t min, int64_t max) {
  Napi::Env env = v.Env();
  if (!v.IsNumber()) typeError(env, name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d) rangeError(env, name + " must be an integer, got " + std::to_string(d));
  if (d < double(min) || d > double(max))
    rangeError(env, name + " = " + std::to_string(int64_t(d)) + " is out of range [" + std::to_string(min) + ", " +
                        std::to_string(max) + "]");
  return int64_t(d);
}

double toFinite(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsNumber()) typeError(env, name + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) rangeError(env, name + " must be a finite number");
  return d;
}

Napi::Object toObject(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray()) typeError(v.Env(), name + " must be an object");
  return v.As<Napi::Object>();
}

std::vector<int32_t> toInt32Vector(const Napi::Value& v, const std::string& name) {
  Napi::Env env = v.Env();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    typeError(env, name + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

DType toDType(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) typeError(v.Env(), name + " must be 'fp32', 'fp16' or 'bf16'");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "fp32") return DType::F32;
  if (s == "fp16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  rangeError(v.Env(), name + " must be 'fp32', 'fp16' or 'bf16', got '" + s + "'");
}

Tier toTier(const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) typeError(v.Env(), name + " must be 'device' or 'host'");
  const std::string s = v.As<Napi::String>().Utf8Value();
  if (s == "device") return Tier::Device;
  if (s == "host") return Tier::Host;
  rangeError(v.Env(), name + " must be 'device' or 'host', got '" + s + "'");
}

Bytes toDTypeBytes(const Napi::Value& v, DType dtype, const std::string& name) {
  Napi::Env env = v.Env();
  const napi_typedarray_type want = dtype == DType::F32 ? napi_float32_array : napi_uint16_array;
  const char* wantName = dtype == DType::F32 ? "a Float32Array" : "a Uint16Array (fp16/bf16 bit patterns)";
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
    typeError(env, name + " must be " + wantName + " for " + dtypeName(dtype) + " data");
  auto a = v.As<Napi::TypedArray>();
  const uint8_t* base = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  return Bytes{base, a.ByteLength(), int64_t(a.ElementLength())};
}

}  // namespace kvcake::napi
