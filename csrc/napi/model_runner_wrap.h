// The forward runner as a JS class, constructed from JS:
//   new ModelRunner(backend, config, weights)
//   runner.forward(step, waitFor) -> { work: Event (resolves { tokenIds, logprobs, logits? }),
//                                      appended: Event[numLayers], copies: Event[] }
//   runner.release()
#pragma once
#include "core/forward.h"
#include "napi/common.h"

namespace kvcake::napi {

class ModelRunnerWrap : public Napi::ObjectWrap<ModelRunnerWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ModelRunnerWrap(const Napi::CallbackInfo& info);
  // Checked: a method called on anything but a ModelRunner is a TypeError.
  static ModelRunnerWrap* Unwrap(Napi::Object o);

 private:
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Released(const Napi::CallbackInfo& info);

  std::shared_ptr<Backend> backend_;
  std::shared_ptr<ModelRunner> runner_;
};

}  // namespace kvcake::napi
