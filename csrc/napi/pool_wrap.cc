#include "napi/pool_wrap.h"

namespace kvcake::napi {

namespace {
constexpr napi_type_tag kTag = {0x6b76636b65ee0002ULL, 0x1c2d3e4f50617283ULL};
}  // namespace

Napi::Function PoolWrap::Init(Napi::Env env) {
  return DefineClass(env, "Pool",
                     {InstanceAccessor<&PoolWrap::Layout>("layout"), InstanceAccessor<&PoolWrap::Bytes>("bytes"),
                      InstanceAccessor<&PoolWrap::BlockBytes>("blockBytes"),
                      InstanceAccessor<&PoolWrap::TierName>("tier"),
                      InstanceAccessor<&PoolWrap::Released>("released"),
                      InstanceMethod<&PoolWrap::Release>("release")});
}

PoolWrap::PoolWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PoolWrap>(info) {
  info.This().As<Napi::Object>().TypeTag(&kTag);
}

PoolWrap* PoolWrap::Unwrap(Napi::Object o) { return checkedUnwrap<PoolWrap>(o, kTag, "Pool"); }

Napi::Object PoolWrap::Make(Napi::Env env, std::shared_ptr<Backend> backend, Pool pool) {
  Napi::Object obj = addonData(env).poolCtor.New({});
  PoolWrap* w = Unwrap(obj);
  w->backend_ = std::move(backend);
  w->tier_ = pool.mem->tier;
  w->pool_ = std::move(pool);
  return obj;
}

Pool PoolWrap::From(const Napi::Value& v, const Backend* owner, const std::string& name) {
  Napi::Env env = v.Env();
  if (!isTagged(v, kTag)) typeError(env, name + " must be a Pool created by createPool, got " + describe(v));
  PoolWrap* w = Unwrap(v.As<Napi::Object>());
  if (!w->backend_) typeError(env, name + " must be a Pool created by createPool");
  if (w->backend_.get() != owner) rangeError(env, name + " belongs to a different backend");
  if (!w->pool_.mem) throw Napi::Error::New(env, name + " has been released");
  return w->pool_;
}

Napi::Value PoolWrap::Layout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const KVLayout& l = pool_.layout;
  Napi::Object o = Napi::Object::New(env);
  o.Set("numBlocks", l.numBlocks);
  o.Set("numKvHeads", l.numKvHeads);
  o.Set("headDim", l.headDim);
  o.Set("blockSize", l.blockSize);
  o.Set("dtype", dtypeName(l.dtype));
  o.Set("headStride", double(l.headStride()));
  o.Set("kvStride", double(l.kvStride()));
  o.Set("blockStride", double(l.blockStride()));
  o.Set("blockBytes", double(l.blockBytes()));
  return o;
}

Napi::Value PoolWrap::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(pool_.layout.poolBytes()));
}
Napi::Value PoolWrap::BlockBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(pool_.layout.blockBytes()));
}
Napi::Value PoolWrap::TierName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), tierName(tier_)); }
Napi::Value PoolWrap::Released(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !pool_.mem);
}
Napi::Value PoolWrap::Release(const Napi::CallbackInfo& info) {
  pool_.mem.reset();
  return info.Env().Undefined();
}

}  // namespace kvcake::napi
