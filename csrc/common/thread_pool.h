// A small fork-join pool for the CPU kernels. Several queues (compute, copies) may call
// parallelFor at the same time: jobs share the workers, and each caller also works on its
// own job, so a caller never waits idle behind another queue's job.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

namespace kvcake {

class ThreadPool {
 public:
  // threads <= 0: KVCAKE_NUM_THREADS if set, else std::thread::hardware_concurrency().
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Number of threads that run a job: the workers plus the calling thread.
  int size() const;

  // Runs fn(i) for every i in [0, n) across the pool and the calling thread; returns when
  // all are done. Pick n so each item is a few microseconds of work or more. The first
  // exception thrown by fn is rethrown here after the remaining items finish.
  void parallelFor(int64_t n, const std::function<void(int64_t)>& fn);

  // The process-wide pool the CPU backend uses.
  static ThreadPool& global();

  // Throws an Error naming KVCAKE_NUM_THREADS or KVCAKE_SPIN_US and its limits when either
  // is set to something the pool cannot use (backend creation calls it, before the pool
  // reads them).
  static void checkEnvironment();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcake
