// A backend as a JS object: allocation (pools, tensors), the ops, tensor upload/download.
// Each op converts its JS arguments (metadata copied now), validates them (core/validate)
// and returns an Event whose promise settles when the op completes.
#pragma once
#include "napi/common.h"

namespace kvcake::napi {

class BackendWrap : public Napi::ObjectWrap<BackendWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit BackendWrap(const Napi::CallbackInfo& info);
  // Checked unwrap (see common.h).
  static BackendWrap* Unwrap(Napi::Object o);

  static Napi::Object Make(Napi::Env env, std::unique_ptr<Backend> backend);
  // The backend behind a JS Backend object (TypeError naming `name` otherwise).
  static std::shared_ptr<Backend> Shared(const Napi::Value& v, const std::string& name);

 private:
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value DeviceName(const Napi::CallbackInfo& info);
  Napi::Value LiveBytes(const Napi::CallbackInfo& info);
  Napi::Value CreatePool(const Napi::CallbackInfo& info);
  Napi::Value CreateTensor(const Napi::CallbackInfo& info);
  Napi::Value Append(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Prefill(const Napi::CallbackInfo& info);
  Napi::Value CopyBlocks(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadPool(const Napi::CallbackInfo& info);
  Napi::Value WritePool(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Reference(const Napi::CallbackInfo& info);

  Backend& backend(Napi::Env env);

  // Shared with every pool and tensor it allocated, so it outlives them.
  std::shared_ptr<Backend> backend_;
};

}  // namespace kvcake::napi
