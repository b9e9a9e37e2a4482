// The host side of every backend's event: a completion flag, the error it ended with, and
// the callbacks waiting for it. Backends derive from it (CUDA adds its cudaEvent_t) and
// call complete() once, from whichever thread learns the op has finished.
#pragma once
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"

namespace kvcake {

class CompletionEvent : public Event {
 public:
  void onComplete(std::function<void(const std::string&)> cb) override {
    std::unique_lock<std::mutex> lk(m_);
    if (!done_) {
      cbs_.push_back(std::move(cb));
      return;
    }
    std::string err = error_;
    lk.unlock();
    cb(err);
  }
  bool ready() override {
    std::lock_guard<std::mutex> lk(m_);
    return done_;
  }
  // Callbacks run outside the lock: one of them may release the last reference to memory
  // whose destructor takes other locks.
  void complete(std::string error) {
    std::vector<std::function<void(const std::string&)>> cbs;
    {
      std::lock_guard<std::mutex> lk(m_);
      done_ = true;
      error_ = std::move(error);
      cbs.swap(cbs_);
    }
    for (auto& cb : cbs) cb(error_);
  }
  // The error of a completed event ("" while pending or on success).
  std::string failure() {
    std::lock_guard<std::mutex> lk(m_);
    return done_ ? error_ : std::string();
  }

 private:
  std::mutex m_;
  bool done_ = false;
  std::string error_;
  std::vector<std::function<void(const std::string&)>> cbs_;
};

}  // namespace kvcake
