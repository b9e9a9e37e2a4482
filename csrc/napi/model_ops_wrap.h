// The model's standalone ops and the forward runner, as module functions and a class:
//   ops:    gemm, rmsnorm, rope, siluMul, embed, add, logits, sample, fillUniform,
//           loadTensor — each (backend, args, waitFor) -> Event; opsInfo(backend) -> object
//   class:  ModelRunner(backend, config, weights) with forward(step, waitFor) and release()
#pragma once
#include "core/rope.h"
#include "core/sampler.h"
#include "napi/common.h"

namespace kvcake::napi {

void registerModelOps(Napi::Env env, Napi::Object exports);

// Conversions shared by the op and runner bindings.
std::vector<float> toFloat32Vector(const Napi::Value& v, const std::string& name);
std::vector<double> toFloat64Vector(const Napi::Value& v, const std::string& name);
// Optional tensor: undefined/null gives an empty Tensor.
Tensor optionalTensor(const Napi::Value& v, const Backend* owner, const std::string& name);
RopeScaling toScaling(const Napi::Value& v, const std::string& name);
// SamplingParams from { temperature?, topK?, topP?, seed?, counter? } (undefined = defaults).
SamplingParams toSampling(const Napi::Value& v, const std::string& name);

}  // namespace kvcake::napi
