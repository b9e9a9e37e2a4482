// A KV pool as a JS object. release() drops the JS side's reference; ops already issued
// keep the memory alive until they finish (they hold the Memory's shared_ptr).
#pragma once
#include "napi/common.h"

namespace kvcake::napi {

class PoolWrap : public Napi::ObjectWrap<PoolWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit PoolWrap(const Napi::CallbackInfo& info);
  // Checked unwrap (see common.h).
  static PoolWrap* Unwrap(Napi::Object o);

  static Napi::Object Make(Napi::Env env, std::shared_ptr<Backend> backend, Pool pool);
  // The pool behind a JS value, checked to be a live pool of `owner`.
  static Pool From(const Napi::Value& v, const Backend* owner, const std::string& name);

 private:
  Napi::Value Layout(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value BlockBytes(const Napi::CallbackInfo& info);
  Napi::Value TierName(const Napi::CallbackInfo& info);
  Napi::Value Released(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);

  std::shared_ptr<Backend> backend_;
  Pool pool_;
  Tier tier_ = Tier::Device;
};

}  // namespace kvcake::napi
