// A dense tensor (queries, new K/V rows, attention outputs) as a JS object. Like a pool,
// release() drops only the JS reference; in-flight ops keep the memory alive.
#pragma once
#include "napi/common.h"

namespace kvcake::napi {

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  // Checked unwrap (see common.h).
  static TensorWrap* Unwrap(Napi::Object o);

  static Napi::Object Make(Napi::Env env, std::shared_ptr<Backend> backend, Tensor t);
  static Tensor From(const Napi::Value& v, const Backend* owner, const std::string& name);

 private:
  Napi::Value DTypeName(const Napi::CallbackInfo& info);
  Napi::Value Numel(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value TierName(const Napi::CallbackInfo& info);
  Napi::Value Released(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);

  std::shared_ptr<Backend> backend_;
  Tensor tensor_;
  Tier tier_ = Tier::Device;
};

}  // namespace kvcake::napi
