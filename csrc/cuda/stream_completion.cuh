// The CUDA backend's memory, events and completion threads (used by backend.cu only):
// device and pinned host memory that lowers the live-byte counters when released, one
// cudaEvent per op, and per stream a thread that waits on its events in issue order and then
// finishes the op (its staging, its callbacks). Completion threads rather than
// cudaLaunchHostFunc because finishing an op may release memory (cudaFree), which a CUDA
// callback must not do, and because cudaEventSynchronize reports the op's async error.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "core/backend.h"
#include "core/completion_event.h"
#include "cuda/check.cuh"
#include "cuda/staging.cuh"

namespace kvcake::cuda {

// Live-byte counters shared with every allocation, so memory released after its backend
// is gone still lowers them.
struct Accounting {
  std::atomic<int64_t> live[2] = {0, 0};
};

class CudaMemory final : public Memory {
 public:
  CudaMemory(std::shared_ptr<Accounting> acct, int device, void* p, void* view, size_t n, Tier t)
      : acct_(std::move(acct)), device_(device), view_(view) {
    data = p;
    bytes = n;
    tier = t;
  }
  ~CudaMemory() override {
    if (data) {
      // The last reference may drop on any thread (a completion thread, Node's main thread).
      cudaSetDevice(device_);
      if (tier == Tier::Device)
        cudaFree(data);
      else
        cudaFreeHost(data);
    }
    acct_->live[int(tier)].fetch_sub(int64_t(bytes), std::memory_order_relaxed);
  }
  // The address kernels use: the device pointer, or the device mapping of pinned memory.
  void* view() const { return view_; }

 private:
  std::shared_ptr<Accounting> acct_;
  int device_;
  void* view_;
};

inline void* viewOf(const MemoryPtr& m, const char* what) {
  auto* c = dynamic_cast<CudaMemory*>(m.get());
  if (!c) throw Error(std::string("cuda: the ") + what + " was not allocated by this CUDA backend");
  return c->view();
}

class CudaEvent final : public CompletionEvent {
 public:
  CudaEvent(int device, cudaEvent_t ev) : device_(device), ev_(ev) {}
  ~CudaEvent() override {
    if (ev_) {
      cudaSetDevice(device_);
      cudaEventDestroy(ev_);
    }
  }
  cudaEvent_t handle() const { return ev_; }

 private:
  int device_;
  cudaEvent_t ev_;
};

// What an op leaves behind until its event completes: the op itself (its MemoryPtrs keep
// pools and tensors alive), its staging slab, and a finishing step (ReadOp copies the
// pinned staging into its vector) that runs on success before the callbacks.
struct Pending {
  std::shared_ptr<CudaEvent> event;
  const char* what = "";
  std::string error;  // set at enqueue when the launch itself failed
  std::shared_ptr<void> keep;
  Slab slab;
  std::shared_ptr<SlabPool> slabPool;
  std::function<void()> finish;
  // Deps of this backend: a failure of one that is known by completion time fails this
  // op too (its inputs are suspect), as on the CPU backend.
  std::vector<std::shared_ptr<CudaEvent>> deps;
};

// Waits on one stream's events in issue order (ops on a stream complete in order).
class Completer {
 public:
  Completer(int device) : device_(device), thread_([this] { loop(); }) {}
  ~Completer() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();  // drains what is queued: those ops own memory and slabs
  }
  void push(Pending p) {
    {
      std::lock_guard<std::mutex> lk(m_);
      q_.push_back(std::move(p));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    cudaSetDevice(device_);
    for (;;) {
      Pending p;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;
        p = std::move(q_.front());
        q_.pop_front();
      }
      std::string error = p.error;
      const cudaError_t err = cudaEventSynchronize(p.event->handle());
      if (err != cudaSuccess && error.empty()) error = cudaMessage(p.what, err);
      for (const auto& d : p.deps) {
        if (!error.empty()) break;
        const std::string de = d->failure();
        if (!de.empty()) error = std::string("cuda ") + p.what + ": an op it waits for failed: " + de;
      }
      p.deps.clear();
      if (error.empty() && p.finish) {
        try {
          p.finish();
        } catch (const std::exception& e) {
          error = std::string("cuda ") + p.what + ": " + e.what();
        }
      }
      if (p.slabPool) p.slabPool->release(p.slab);
      // Drop memory references before completing, so liveBytes is already down when the
      // caller's promise resolves.
      p.finish = nullptr;
      p.keep.reset();
      p.event->complete(std::move(error));
    }
  }

  int device_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Pending> q_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the fields above exist
};

// Blocks until a foreign (non-CUDA) event completed. Deps on this backend are its own
// events; this serves a dependency on another backend's op or on the prefix store's I/O,
// and blocks the issuing thread until it is done (callers on Node's thread await such an
// op before issuing instead).
inline void waitForeign(const EventPtr& e) {
  struct Sync {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
  };
  auto s = std::make_shared<Sync>();
  e->onComplete([s](const std::string&) {
    std::lock_guard<std::mutex> lk(s->m);
    s->done = true;
    s->cv.notify_all();
  });
  std::unique_lock<std::mutex> lk(s->m);
  s->cv.wait(lk, [&] { return s->done; });
}

}  // namespace kvcake::cuda
