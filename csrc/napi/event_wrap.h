// The event -> Promise glue, and the one place that makes completions safe against the JS
// environment going away.
//
// A native op returns an Event (JS: EventWrap) whose `promise` settles when the op
// completes. Completion is learnt on a native thread (a CPU queue worker, a CUDA completion
// thread). Every op's completion reaches JS through EventWrap::Make and nothing else, so
// what follows covers every op, including ones added later, as long as they return
// EventWrap::Make(...).
//
// Lifetime rules (EnvLifetime, one per environment: the main thread and each worker):
//   - One thread-safe function per environment carries completions to its JS thread. A
//     native thread posts through EnvLifetime::post, which holds a mutex and checks that
//     the environment is still alive while it calls napi_call_threadsafe_function; the
//     environment marks itself dead under that mutex, so no thread touches the
//     thread-safe function after Node has freed it. A completion for a dead environment is
//     dropped on the native thread (there is no promise left to settle).
//   - The thread-safe function is referenced (keeps the event loop alive) only while ops
//     of this environment are in flight, so a pending op keeps Node alive until it settles.
//   - An environment cleanup hook (worker.terminate(), process.exit() or an uncaught
//     exception in a worker, the main thread's normal exit) marks the environment dead,
//     then shuts down every backend the environment created: ops not yet started complete
//     with an error without running, running ones finish, and the backend's threads are
//     joined before the environment's memory goes. Memory still referenced by JS objects
//     is freed by their finalizers afterwards, with no thread left to race them.
//   - The main thread's process.exit() runs no cleanup hooks; an atexit handler marks every
//     environment dead instead, so queue threads still finishing ops during exit() post
//     nothing.
#pragma once
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "napi/common.h"

namespace kvcake::napi {

struct Settlement;

class EnvLifetime {
 public:
  // Creates the environment's thread-safe function and registers its cleanup hook.
  static std::shared_ptr<EnvLifetime> create(Napi::Env env);
  ~EnvLifetime();

  // Any thread: hands a finished op to the JS thread, or drops it if the environment is
  // gone. Takes ownership of s.
  void post(Settlement* s);
  // JS thread: an op was issued / has settled (refs the event loop while any is pending).
  void opIssued();
  void opSettled();
  // JS thread: remember a backend, to shut it down with the environment.
  void track(const std::shared_ptr<Backend>& backend);
  bool alive();
  // Any thread: no completion reaches JS after this returns.
  void markDead();

 private:
  EnvLifetime() = default;
  static void onCleanup(void* self);
  static void settle(napi_env env, napi_value, void* context, void* data);

  std::mutex m_;
  bool alive_ = true;
  napi_env env_ = nullptr;
  napi_threadsafe_function tsfn_ = nullptr;
  int64_t inFlight_ = 0;  // JS thread only
  std::vector<std::weak_ptr<Backend>> backends_;  // JS thread only
  std::shared_ptr<EnvLifetime>* hookRef_ = nullptr;
};

class EventWrap : public Napi::ObjectWrap<EventWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit EventWrap(const Napi::CallbackInfo& info);
  // Checked unwrap (see common.h): `this` and arguments must really be Events.
  static EventWrap* Unwrap(Napi::Object o);

  // Wraps `event` for JS. `result` (optional) builds the resolved value on the JS thread.
  static Napi::Object Make(Napi::Env env, EventPtr event, const Backend* owner,
                           std::function<Napi::Value(Napi::Env)> result = nullptr);

  EventPtr event() const { return event_; }
  const Backend* owner() const { return owner_; }

 private:
  Napi::Value Ready(const Napi::CallbackInfo& info);

  EventPtr event_;
  const Backend* owner_ = nullptr;
};

// waitFor: undefined/null or an array of EventWraps issued by `owner`.
Deps toDeps(const Napi::Value& v, const Backend* owner, const std::string& name);

}  // namespace kvcake::napi
