#include "common/thread_pool.h"

#include "common/error.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace kvcake {

namespace {

// Waking a sleeping thread costs 15-65 us on a virtual machine (measured on a 2-vCPU VM: a
// fork-join over two 100 us items took 153 us instead of 100). With KVCAKE_SPIN_US > 0 a
// thread about to sleep first spins that long for what it waits on: the next job for a
// worker, the last item for a caller. Off by default: where several queues' fork-joins
// share fewer cores than threads (LayerKV's copies beside compute on two cores), a spinner
// holds a core the thread it waits for needs, and on a 2-vCPU VM engine step times then
// departed from the fitted cost model.
constexpr long kDefaultSpinUs = 0, kMaxSpinUs = 100000, kMaxThreads = 4096;

// An integer environment variable within [lo, hi]: the value, or `fallback` when unset;
// throws an Error naming it and its limits otherwise.
long envInt(const char* name, long lo, long hi, long fallback, const char* unit) {
  const char* s = std::getenv(name);
  if (!s || !*s) return fallback;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    throw Error(std::string(name) + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                " (" + unit + "), got '" + s + "'");
  return v;
}

// Read once; backend creation has already checked it (checkEnvironment), so a bad value
// reaching here falls back to the default instead of throwing on a worker thread.
std::chrono::nanoseconds spinBudget() {
  static const std::chrono::nanoseconds budget = [] {
    long us = kDefaultSpinUs;
    try {
      us = envInt("KVCAKE_SPIN_US", 0, kMaxSpinUs, kDefaultSpinUs, "microseconds");
    } catch (const Error&) {
    }
    return std::chrono::nanoseconds(std::chrono::microseconds(us));
  }();
  return budget;
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until ready() or the budget is spent; true if ready() came true.
template <class Ready>
bool spinFor(Ready&& ready) {
  const auto budget = spinBudget();
  if (budget.count() == 0) return ready();
  const auto until = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      cpuRelax();
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}

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
  std::atomic<int> queued{0};  // jobs.size(), readable without the lock
  bool stop = false;

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      spinFor([&] { return queued.load(std::memory_order_acquire) > 0; });
      {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return stop || !jobs.empty(); });
        if (stop) return;
        job = jobs.front();
        // A job whose items are all claimed leaves the queue; its owner waits on `done`.
        if (job->next.load(std::memory_order_relaxed) >= job->n) {
          jobs.pop_front();
          queued.fetch_sub(1, std::memory_order_relaxed);
          continue;
        }
      }
      job->work();
    }
  }
};

static int defaultThreads() {
  unsigned h = std::thread::hardware_concurrency();
  long n = h ? long(h) : 1;
  try {
    n = envInt("KVCAKE_NUM_THREADS", 1, kMaxThreads, n, "threads");
  } catch (const Error&) {
  }
  return int(n);
}

void ThreadPool::checkEnvironment() {
  envInt("KVCAKE_NUM_THREADS", 1, kMaxThreads, 1, "threads");
  envInt("KVCAKE_SPIN_US", 0, kMaxSpinUs, kDefaultSpinUs, "microseconds");
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
    impl_->queued.fetch_add(1, std::memory_order_release);
  }
  impl_->cv.notify_all();
  job->work();
  if (!spinFor([&] { return job->done.load(std::memory_order_acquire) >= job->n; })) {
    std::unique_lock<std::mutex> lk(job->m);
    job->cv.wait(lk, [&] { return job->done.load(std::memory_order_acquire) >= job->n; });
  }
  {
    // Drop it from the queue if no worker did (all items may have been run here).
    std::lock_guard<std::mutex> lk(impl_->m);
    for (auto it = impl_->jobs.begin(); it != impl_->jobs.end(); ++it)
      if (*it == job) {
        impl_->jobs.erase(it);
        impl_->queued.fetch_sub(1, std::memory_order_relaxed);
        break;
      }
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
