// The event -> Promise glue. A native op returns an Event (JS: EventWrap) whose `promise`
// settles when the op completes. Completion arrives on a queue thread; a per-op
// ThreadSafeFunction carries it to the JS thread, so Node's event loop is never blocked
// and libuv's thread pool is not used. The pending ThreadSafeFunction keeps the process
// alive until the op has settled.
#pragma once
#include <functional>

#include "napi/common.h"

namespace kvcake::napi {

class EventWrap : public Napi::ObjectWrap<EventWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit EventWrap(const Napi::CallbackInfo& info);

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
