#include "napi/event_wrap.h"

namespace kvcake::napi {

namespace {

struct Pending {
  Napi::Promise::Deferred deferred;
  std::function<Napi::Value(Napi::Env)> result;
};
struct Outcome {
  std::string error;
};

void settle(Napi::Env env, Napi::Function, Pending* p, Outcome* o) {
  // env is null when the environment is shutting down: nothing left to settle.
  if (env != nullptr) {
    if (o->error.empty()) {
      Napi::Value v = env.Undefined();
      if (p->result) {
        try {
          v = p->result(env);
        } catch (const Napi::Error& e) {
          p->deferred.Reject(e.Value());
          delete o;
          delete p;
          return;
        }
      }
      p->deferred.Resolve(v);
    } else {
      p->deferred.Reject(Napi::Error::New(env, o->error).Value());
    }
  }
  delete o;
  delete p;
}

using Tsfn = Napi::TypedThreadSafeFunction<Pending, Outcome, settle>;

}  // namespace

Napi::Function EventWrap::Init(Napi::Env env) {
  return DefineClass(env, "Event", {InstanceMethod<&EventWrap::Ready>("ready")});
}

EventWrap::EventWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventWrap>(info) {}

Napi::Value EventWrap::Ready(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), event_ && event_->ready());
}

Napi::Object EventWrap::Make(Napi::Env env, EventPtr event, const Backend* owner,
                             std::function<Napi::Value(Napi::Env)> result) {
  Napi::Object obj = addonData(env).eventCtor.New({});
  EventWrap* w = EventWrap::Unwrap(obj);
  w->event_ = event;
  w->owner_ = owner;

  auto* pending = new Pending{Napi::Promise::Deferred::New(env), std::move(result)};
  obj.Set("promise", pending->deferred.Promise());
  Tsfn tsfn = Tsfn::New(env, "kvcake.op", 0, 1, pending);
  event->onComplete([tsfn](const std::string& error) mutable {
    // Unlimited queue: never blocks. Fails only while the environment is closing, when
    // there is no promise left to settle.
    tsfn.BlockingCall(new Outcome{error});
    tsfn.Release();
  });
  return obj;
}

Deps toDeps(const Napi::Value& v, const Backend* owner, const std::string& name) {
  Deps deps;
  if (v.IsUndefined() || v.IsNull()) return deps;
  Napi::Env env = v.Env();
  if (!v.IsArray()) typeError(env, name + " must be an array of Work");
  auto arr = v.As<Napi::Array>();
  Napi::Function ctor = addonData(env).eventCtor.Value();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value e = arr.Get(i);
    const std::string at = name + "[" + std::to_string(i) + "]";
    if (!e.IsObject() || !e.As<Napi::Object>().InstanceOf(ctor)) typeError(env, at + " is not a Work returned by an op");
    EventWrap* w = EventWrap::Unwrap(e.As<Napi::Object>());
    if (!w->event()) typeError(env, at + " is not a Work returned by an op");
    if (w->owner() != owner) rangeError(env, at + " was issued by a different backend");
    deps.push_back(w->event());
  }
  return deps;
}

}  // namespace kvcake::napi
