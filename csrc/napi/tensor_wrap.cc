#include "napi/tensor_wrap.h"

namespace kvcake::napi {

namespace {
constexpr napi_type_tag kTag = {0x6b76636b65ee0003ULL, 0x2a3b4c5d6e7f8091ULL};
}  // namespace

Napi::Function TensorWrap::Init(Napi::Env env) {
  return DefineClass(env, "Tensor",
                     {InstanceAccessor<&TensorWrap::DTypeName>("dtype"), InstanceAccessor<&TensorWrap::Numel>("numel"),
                      InstanceAccessor<&TensorWrap::Bytes>("bytes"), InstanceAccessor<&TensorWrap::TierName>("tier"),
                      InstanceAccessor<&TensorWrap::Released>("released"),
                      InstanceMethod<&TensorWrap::Release>("release")});
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  info.This().As<Napi::Object>().TypeTag(&kTag);
}

TensorWrap* TensorWrap::Unwrap(Napi::Object o) { return checkedUnwrap<TensorWrap>(o, kTag, "Tensor"); }

Napi::Object TensorWrap::Make(Napi::Env env, std::shared_ptr<Backend> backend, Tensor t) {
  Napi::Object obj = addonData(env).tensorCtor.New({});
  TensorWrap* w = Unwrap(obj);
  w->backend_ = std::move(backend);
  w->tier_ = t.mem->tier;
  w->tensor_ = std::move(t);
  return obj;
}

Tensor TensorWrap::From(const Napi::Value& v, const Backend* owner, const std::string& name) {
  Napi::Env env = v.Env();
  if (!isTagged(v, kTag)) typeError(env, name + " must be a Tensor created by this backend, got " + describe(v));
  TensorWrap* w = Unwrap(v.As<Napi::Object>());
  if (!w->backend_) typeError(env, name + " must be a Tensor created by this backend");
  if (w->backend_.get() != owner) rangeError(env, name + " belongs to a different backend");
  if (!w->tensor_.mem) throw Napi::Error::New(env, name + " has been released");
  return w->tensor_;
}

Napi::Value TensorWrap::DTypeName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(tensor_.dtype));
}
Napi::Value TensorWrap::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(tensor_.numel));
}
Napi::Value TensorWrap::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(tensor_.numel * int64_t(dtypeSize(tensor_.dtype))));
}
Napi::Value TensorWrap::TierName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), tierName(tier_));
}
Napi::Value TensorWrap::Released(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.mem);
}
Napi::Value TensorWrap::Release(const Napi::CallbackInfo& info) {
  tensor_.mem.reset();
  return info.Env().Undefined();
}

}  // namespace kvcake::napi
