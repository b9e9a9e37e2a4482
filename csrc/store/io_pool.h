// The prefix store's own native threads. Store reads and writes block on the file system
// (and may sleep under a bandwidth cap), so they run neither on libuv's pool (Node's fs and
// dns would queue behind them) nor on a backend's queues (a slow disk would stall the
// offloads and loads the scheduler plans on them).
//
// Unlike a backend queue, the pool is not in order: chunks are independent, and several
// reads in flight are what a store needs to reach its bandwidth. A task whose deps are not
// yet complete does not hold a thread: it is queued when the last one completes.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/backend.h"

namespace kvcake::store {

class IoPool {
 public:
  explicit IoPool(int threads);
  // Waits for every submitted task (including those still waiting for deps), then joins.
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  // Runs fn on a pool thread after every dep completed. If a dep failed, fn is skipped and
  // the event fails with "<what> skipped: an op it waits for failed: ..."; if fn throws,
  // the event fails with the exception's message.
  EventPtr submit(const char* what, Deps deps, std::function<void()> fn);

  int threads() const { return int(threads_.size()); }

 private:
  struct Task;
  void ready(std::shared_ptr<Task> t);
  void loop();
  void finished();

  std::mutex m_;
  std::condition_variable cv_, idle_;
  std::deque<std::shared_ptr<Task>> queue_;
  int64_t pending_ = 0;  // submitted, not yet completed
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace kvcake::store
