#include "common/thread_pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kvcake {

namespace {
struct Job {
  const std::function<void(int64_t)>* fn;
  int64_t n;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex m;
  std::condition_variable cv;
  std::exception_ptr error;  // guarded by m

  // Claims and runs items until none are left. Returns after the last claim.
  void work() {
    for (;;) {
      int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m);
        if (!error) error = std::current_exception();
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> lk(m);
        cv.notify_all();
      }
    }
  }
};
}  // namespace

struct ThreadPool::Impl {
  std::vector<std::thread> workers;
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Job>> jobs;
  bool stop = false;

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return stop || !jobs.empty(); });
        if (stop) return;
        job = jobs.front();
        // A job whose items are all claimed leaves the queue; its owner waits on `done`.
        if (job->next.load(std::memory_order_relaxed) >= job->n) {
          jobs.pop_front();
          continue;
        }
      }
      job->work();
    }
  }
};

static int defaultThreads() {
  if (const char* s = std::getenv("KVCAKE_NUM_THREADS")) {
    int v = std::atoi(s);
    if (v > 0) return v;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

ThreadPool::ThreadPool(int threads) : impl_(new Impl) {
  int total = threads > 0 ? threads : defaultThreads();
  for (int i = 0; i < total - 1; ++i) impl_->workers.emplace_back([this] { impl_->loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(impl_->m);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->workers) t.join();
}

int ThreadPool::size() const { return int(impl_->workers.size()) + 1; }

void ThreadPool::parallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n == 1 || impl_->workers.empty()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  {
    std::lock_guard<std::mutex> lk(impl_->m);
    impl_->jobs.push_back(job);
  }
  impl_->cv.notify_all();
  job->work();
  {
    std::unique_lock<std::mutex> lk(job->m);
    job->cv.wait(lk, [&] { return job->done.load(std::memory_order_acquire) >= job->n; });
  }
  {
    // Drop it from the queue if no worker did (all items may have been run here).
    std::lock_guard<std::mutex> lk(impl_->m);
    for (auto it = impl_->jobs.begin(); it != impl_->jobs.end(); ++it)
      if (*it == job) { impl_->jobs.erase(it); break; }
  }
  if (job->error) std::rethrow_exception(job->error);
}

ThreadPool& ThreadPool::global() {
  // Leaked on purpose: worker threads must not be joined during static destruction,
  // which can run while a native queue thread is still finishing.
  static ThreadPool* pool = new ThreadPool(0);
  return *pool;
}

}  // namespace kvcake
