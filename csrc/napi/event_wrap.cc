#include "napi/event_wrap.h"

#include <algorithm>
#include <cstdlib>

namespace kvcake::napi {

// What a finished op hands to the JS thread: its promise, how to build the resolved
// value, and the error it ended with ("" on success).
struct Settlement {
  napi_deferred deferred = nullptr;
  std::function<Napi::Value(Napi::Env)> result;
  std::string error;
};

namespace {

constexpr napi_type_tag kEventTag = {0x6b76636b65ee0001ULL, 0x9d1f2c3b4a5e6071ULL};

// Every environment's lifetime, for the atexit handler. Leaked on purpose: it must still
// exist while static destructors run.
struct Registry {
  std::mutex m;
  std::vector<std::weak_ptr<EnvLifetime>> all;
};
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

void markAllDeadAtExit() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.m);
  for (auto& w : r.all)
    if (auto l = w.lock()) l->markDead();
}

void finalizeTsfn(napi_env, void* data, void*) {
  // Called before Node frees the thread-safe function (on release, or at teardown).
  auto* ref = static_cast<std::shared_ptr<EnvLifetime>*>(data);
  (*ref)->markDead();
  delete ref;
}

}  // namespace

std::shared_ptr<EnvLifetime> EnvLifetime::create(Napi::Env env) {
  static std::once_flag atexitOnce;
  std::call_once(atexitOnce, [] { std::atexit(markAllDeadAtExit); });

  std::shared_ptr<EnvLifetime> self(new EnvLifetime());
  self->env_ = env;
  napi_value name;
  NAPI_THROW_IF_FAILED(env, napi_create_string_utf8(env, "kvcake.completions", NAPI_AUTO_LENGTH, &name), nullptr);
  auto* finalizeRef = new std::shared_ptr<EnvLifetime>(self);
  napi_status st = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, finalizeRef, finalizeTsfn,
                                                   self.get(), settle, &self->tsfn_);
  if (st != napi_ok) {
    delete finalizeRef;
    NAPI_THROW_IF_FAILED(env, st, nullptr);
  }
  // Referenced only while ops are in flight (opIssued / opSettled).
  napi_unref_threadsafe_function(env, self->tsfn_);
  // Registered after the thread-safe function, so it runs before Node's own cleanup of it
  // (hooks run last-in first-out); the finalizer above covers the other order too.
  self->hookRef_ = new std::shared_ptr<EnvLifetime>(self);
  st = napi_add_env_cleanup_hook(env, onCleanup, self->hookRef_);
  if (st != napi_ok) {
    delete self->hookRef_;
    self->hookRef_ = nullptr;
    NAPI_THROW_IF_FAILED(env, st, nullptr);
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.m);
  r.all.erase(std::remove_if(r.all.begin(), r.all.end(), [](const auto& w) { return w.expired(); }), r.all.end());
  r.all.push_back(self);
  return self;
}

EnvLifetime::~EnvLifetime() = default;

void EnvLifetime::post(Settlement* s) {
  {
    std::lock_guard<std::mutex> lk(m_);
    // Holding m_ across the call is what makes it safe: markDead waits for it, and after
    // that no thread reaches the thread-safe function. With an unlimited queue the call
    // never blocks.
    if (alive_ && tsfn_ && napi_call_threadsafe_function(tsfn_, s, napi_tsfn_nonblocking) == napi_ok) return;
  }
  delete s;  // no environment left to settle it in
}

void EnvLifetime::markDead() {
  std::lock_guard<std::mutex> lk(m_);
  alive_ = false;
  tsfn_ = nullptr;
}

bool EnvLifetime::alive() {
  std::lock_guard<std::mutex> lk(m_);
  return alive_;
}

void EnvLifetime::opIssued() {
  if (inFlight_++ == 0) {
    std::lock_guard<std::mutex> lk(m_);
    if (tsfn_) napi_ref_threadsafe_function(env_, tsfn_);
  }
}

void EnvLifetime::opSettled() {
  if (--inFlight_ == 0) {
    std::lock_guard<std::mutex> lk(m_);
    if (tsfn_) napi_unref_threadsafe_function(env_, tsfn_);
  }
}

void EnvLifetime::track(const std::shared_ptr<Backend>& backend) {
  backends_.erase(std::remove_if(backends_.begin(), backends_.end(), [](const auto& w) { return w.expired(); }),
                  backends_.end());
  backends_.push_back(backend);
}

void EnvLifetime::onCleanup(void* arg) {
  auto* ref = static_cast<std::shared_ptr<EnvLifetime>*>(arg);
  std::shared_ptr<EnvLifetime> self = *ref;
  delete ref;
  self->hookRef_ = nullptr;
  // Dead first: completions of the ops cancelled below have no promise to settle.
  napi_threadsafe_function tsfn;
  {
    std::lock_guard<std::mutex> lk(self->m_);
    tsfn = self->tsfn_;
  }
  self->markDead();
  std::vector<std::weak_ptr<Backend>> backends;
  backends.swap(self->backends_);
  for (auto& w : backends)
    if (auto b = w.lock()) b->shutdown();
  if (tsfn) napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
}

void EnvLifetime::settle(napi_env env, napi_value, void* context, void* data) {
  std::unique_ptr<Settlement> s(static_cast<Settlement*>(data));
  // env is null when Node empties the queue of a closing thread-safe function: nothing
  // left to settle, and `context` may already be gone.
  if (env == nullptr || !s) return;
  Napi::Env e(env);
  try {
    if (s->error.empty()) {
      Napi::Value v = s->result ? s->result(e) : e.Undefined();
      napi_resolve_deferred(env, s->deferred, v);
    } else {
      napi_reject_deferred(env, s->deferred, Napi::Error::New(e, s->error).Value());
    }
  } catch (const Napi::Error& err) {
    napi_reject_deferred(env, s->deferred, err.Value());
  } catch (const std::exception& err) {
    napi_value msg, ev;
    napi_create_string_utf8(env, err.what(), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &ev);
    napi_reject_deferred(env, s->deferred, ev);
  } catch (...) {
    napi_value msg, ev;
    napi_create_string_utf8(env, "kvcake: the op's result could not be built", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &ev);
    napi_reject_deferred(env, s->deferred, ev);
  }
  static_cast<EnvLifetime*>(context)->opSettled();
}

Napi::Function EventWrap::Init(Napi::Env env) {
  return DefineClass(env, "Event", {InstanceMethod<&EventWrap::Ready>("ready")});
}

EventWrap::EventWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EventWrap>(info) {
  info.This().As<Napi::Object>().TypeTag(&kEventTag);
}

EventWrap* EventWrap::Unwrap(Napi::Object o) { return checkedUnwrap<EventWrap>(o, kEventTag, "Event"); }

Napi::Value EventWrap::Ready(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), event_ && event_->ready());
}

Napi::Object EventWrap::Make(Napi::Env env, EventPtr event, const Backend* owner,
                             std::function<Napi::Value(Napi::Env)> result) {
  AddonData& data = addonData(env);
  Napi::Object obj = data.eventCtor.New({});
  EventWrap* w = EventWrap::Unwrap(obj);
  w->event_ = event;
  w->owner_ = owner;

  auto s = std::make_unique<Settlement>();
  napi_value promise;
  NAPI_THROW_IF_FAILED(env, napi_create_promise(env, &s->deferred, &promise), Napi::Object());
  obj.Set("promise", Napi::Value(env, promise));
  s->result = std::move(result);
  std::shared_ptr<EnvLifetime> life = data.lifetime;
  life->opIssued();
  Settlement* raw = s.release();
  // Called exactly once, on whichever thread completes the op (or here, if it already has).
  event->onComplete([life, raw](const std::string& error) {
    raw->error = error;
    life->post(raw);
  });
  return obj;
}

Deps toDeps(const Napi::Value& v, const Backend* owner, const std::string& name) {
  Deps deps;
  if (v.IsUndefined() || v.IsNull()) return deps;
  Napi::Env env = v.Env();
  if (!v.IsArray()) typeError(env, name + " must be an array of Work, got " + describe(v));
  auto arr = v.As<Napi::Array>();
  // Element getters are user code: each element is checked as it is read, and nothing
  // read before (pools, tensors) is held by reference, so a getter that releases or
  // reissues them changes nothing already converted.
  const uint32_t n = arr.Length();
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value e = arr.Get(i);
    const std::string at = name + "[" + std::to_string(i) + "]";
    if (!isTagged(e, kEventTag)) typeError(env, at + " is not a Work returned by an op, got " + describe(e));
    EventWrap* w = EventWrap::Unwrap(e.As<Napi::Object>());
    if (!w->event()) typeError(env, at + " is not a Work returned by an op");
    if (w->owner() != owner) rangeError(env, at + " was issued by a different backend");
    deps.push_back(w->event());
  }
  return deps;
}

}  // namespace kvcake::napi
