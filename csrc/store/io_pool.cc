#include "store/io_pool.h"

#include <atomic>
#include <exception>

#include "core/completion_event.h"

namespace kvcake::store {

struct IoPool::Task {
  const char* what = "";
  std::function<void()> fn;
  std::shared_ptr<CompletionEvent> event;
  std::atomic<int64_t> waiting{0};
  std::mutex m;
  std::string depError;
};

IoPool::IoPool(int threads) {
  if (threads < 1) threads = 1;
  threads_.reserve(size_t(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

IoPool::~IoPool() {
  {
    std::unique_lock<std::mutex> lk(m_);
    idle_.wait(lk, [&] { return pending_ == 0; });
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

EventPtr IoPool::submit(const char* what, Deps deps, std::function<void()> fn) {
  auto t = std::make_shared<Task>();
  t->what = what;
  t->fn = std::move(fn);
  t->event = std::make_shared<CompletionEvent>();
  {
    std::lock_guard<std::mutex> lk(m_);
    ++pending_;
  }
  EventPtr ev = t->event;
  std::vector<EventPtr> live;
  for (auto& d : deps)
    if (d) live.push_back(std::move(d));
  if (live.empty()) {
    ready(std::move(t));
    return ev;
  }
  // One extra count held while registering, so a dep that completes during the loop
  // cannot queue the task before every callback is in place.
  t->waiting.store(int64_t(live.size()) + 1);
  auto arrive = [this](const std::shared_ptr<Task>& task) {
    if (task->waiting.fetch_sub(1) == 1) ready(task);
  };
  for (auto& d : live) {
    d->onComplete([task = t, arrive](const std::string& err) {
      if (!err.empty()) {
        std::lock_guard<std::mutex> lk(task->m);
        if (task->depError.empty()) task->depError = err;
      }
      arrive(task);
    });
  }
  arrive(t);
  return ev;
}

void IoPool::ready(std::shared_ptr<Task> t) {
  {
    std::lock_guard<std::mutex> lk(m_);
    queue_.push_back(std::move(t));
  }
  cv_.notify_one();
}

void IoPool::loop() {
  for (;;) {
    std::shared_ptr<Task> t;
    {
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      t = std::move(queue_.front());
      queue_.pop_front();
    }
    std::string error;
    {
      std::lock_guard<std::mutex> lk(t->m);
      if (!t->depError.empty()) error = std::string(t->what) + " skipped: an op it waits for failed: " + t->depError;
    }
    if (error.empty()) {
      try {
        t->fn();
      } catch (const std::exception& e) {
        error = e.what();
      } catch (...) {
        error = std::string(t->what) + " failed with an unknown error";
      }
    }
    // The task's captures hold pool memory: drop them before the caller hears of it.
    t->fn = nullptr;
    auto ev = std::move(t->event);
    t.reset();
    ev->complete(std::move(error));
    finished();
  }
}

void IoPool::finished() {
  std::lock_guard<std::mutex> lk(m_);
  if (--pending_ == 0) idle_.notify_all();
}

}  // namespace kvcake::store
