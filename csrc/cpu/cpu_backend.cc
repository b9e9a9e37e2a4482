#include "cpu/cpu_backend.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/host_memory.h"
#include "common/thread_pool.h"
#include "core/completion_event.h"
#include "core/validate.h"
#include "core/file_load.h"
#include "core/kernel_set.h"
#include "cpu/kernels.h"
#include "cpu/gemm_blas.h"
#include "cpu/model_kernels.h"

namespace kvcake {

namespace {

// Live-byte counters outlive the backend: a pool released after its backend is gone still
// decrements them.
struct Accounting {
  std::atomic<int64_t> live[2] = {0, 0};
  int64_t deviceCapacity = 0;  // 0 = unlimited
};

class CpuMemory final : public Memory {
 public:
  CpuMemory(std::shared_ptr<Accounting> acct, void* p, size_t n, Tier t) : acct_(std::move(acct)) {
    data = p;
    bytes = n;
    tier = t;
  }
  ~CpuMemory() override {
    hostFree(data, bytes);
    acct_->live[int(tier)].fetch_sub(int64_t(bytes), std::memory_order_relaxed);
  }

 private:
  std::shared_ptr<Accounting> acct_;
};

using CpuEvent = CompletionEvent;

// Blocks the calling (queue worker) thread until `e` completes; returns its error. Works
// for any Event, so a dependency need not come from this backend's own queues.
std::string waitFor(const EventPtr& e) {
  struct Sync {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::string error;
  };
  auto s = std::make_shared<Sync>();
  e->onComplete([s](const std::string& err) {
    std::lock_guard<std::mutex> lk(s->m);
    s->done = true;
    s->error = err;
    s->cv.notify_all();
  });
  std::unique_lock<std::mutex> lk(s->m);
  s->cv.wait(lk, [&] { return s->done; });
  return s->error;
}

// One in-order queue: a native thread runs its ops one after another (the CPU analogue of
// a CUDA stream). Not libuv's pool: long kernels must not starve Node's fs/dns work.
class WorkQueue {
 public:
  explicit WorkQueue(const char* name) : name_(name), thread_([this] { loop(); }) {}
  ~WorkQueue() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    join();  // runs what is already queued first: those ops own their memory
  }

  // `what` names the op in a failure message ("decode", "copyBlocks").
  EventPtr push(const char* what, Deps deps, std::function<void()> fn) {
    auto ev = std::make_shared<CpuEvent>();
    {
      std::lock_guard<std::mutex> lk(m_);
      if (!stop_) {
        tasks_.push_back(Task{what, std::move(deps), std::move(fn), ev});
        cv_.notify_one();
        return ev;
      }
    }
    ev->complete(std::string(what) + " not run: the backend has been shut down");
    return ev;
  }

  // Shutdown, in two steps so that all of a backend's queues stop together (an op waiting
  // on another queue's event must not make that queue run its whole backlog first): ops
  // not yet started complete with an error, the running one finishes.
  void cancel() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      cancel_ = true;
    }
    cv_.notify_all();
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Task {
    const char* what;
    Deps deps;
    std::function<void()> fn;
    std::shared_ptr<CpuEvent> event;
  };

  void loop() {
    for (;;) {
      Task t;
      bool cancelled;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stop_ and drained
        t = std::move(tasks_.front());
        tasks_.pop_front();
        cancelled = cancel_;
      }
      std::string error;
      if (cancelled) error = std::string(t.what) + " not run: the backend was shut down before it started";
      if (!cancelled)
        for (const auto& d : t.deps) {
          std::string e = waitFor(d);
          if (!e.empty() && error.empty()) error = std::string(t.what) + " skipped: an op it waits for failed: " + e;
        }
      if (error.empty()) {
        try {
          t.fn();
        } catch (const std::exception& e) {
          error = std::string(t.what) + " failed: " + e.what();
        } catch (...) {
          error = std::string(t.what) + " failed with an unknown error";
        }
      }
      // Drop the op's memory references before completing, so liveBytes is already back
      // down when the caller's promise resolves.
      t.fn = nullptr;
      t.deps.clear();
      t.event->complete(std::move(error));
    }
  }

  const char* name_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  bool stop_ = false;
  bool cancel_ = false;
  std::thread thread_;  // last: started after the fields above exist
};

std::string cpuModelName() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) {
        auto s = line.substr(p + 1);
        s.erase(0, s.find_first_not_of(" \t"));
        return s;
      }
    }
  }
  return "CPU";
}

int64_t envCapacity() {
  const char* s = std::getenv("KVCAKE_CPU_DEVICE_BYTES");
  if (!s || !*s) return 0;
  char* end = nullptr;
  long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || v < 0)
    throw Error(std::string("KVCAKE_CPU_DEVICE_BYTES must be a non-negative integer byte count, got '") + s + "'");
  return v;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int64_t deviceCapacity, cpu::Isa isa, bool isaForced, cpu::GemmPath gemmPath)
      : acct_(std::make_shared<Accounting>()),
        deviceName_(cpuModelName()),
        isa_(isa),
        isaForced_(isaForced),
        gemmPath_(gemmPath),
        compute_("compute"),
        h2d_("h2d"),
        d2h_("d2h") {
    acct_->deviceCapacity = deviceCapacity;
  }
  // Queues are destroyed (drained and joined) before acct_ and the rest.
  ~CpuBackend() override = default;

  const char* name() const override { return "cpu"; }
  std::string deviceName() const override {
    std::ostringstream s;
    s << deviceName_ << " (" << ThreadPool::global().size() << " threads)";
    return s.str();
  }

  std::vector<std::pair<std::string, std::string>> info() const override {
    std::vector<std::pair<std::string, std::string>> out = {
        {"isa", cpu::isaName(isa_)},
        {"supportedIsas", cpu::supportedIsaList()},
        {"cpuFeatures", cpu::featureList()},
        {"threads", std::to_string(ThreadPool::global().size())},
        {"kernel.reference", cpu::isaName(cpu::referenceIsa(isa_))},
    };
    for (const auto& [kernel, level] : cpu::KernelPaths::under(isa_))
      if (kernel != "reference") out.emplace_back("kernel." + kernel, cpu::isaName(level));
    return out;
  }

  MemoryPtr allocate(size_t bytes, Tier tier, const char* what) override {
    auto& live = acct_->live[int(tier)];
    if (tier == Tier::Device && acct_->deviceCapacity > 0) {
      int64_t cur = live.load(std::memory_order_relaxed);
      for (;;) {
        if (cur + int64_t(bytes) > acct_->deviceCapacity) {
          std::ostringstream s;
          s << "cannot allocate a " << what << " of " << bytes << " bytes in the device tier: " << cur
            << " of its " << acct_->deviceCapacity
            << " bytes are in use (capacity set by deviceCapacityBytes or KVCAKE_CPU_DEVICE_BYTES)";
          throw Error(s.str());
        }
        if (live.compare_exchange_weak(cur, cur + int64_t(bytes), std::memory_order_relaxed)) break;
      }
    } else {
      live.fetch_add(int64_t(bytes), std::memory_order_relaxed);
    }
    // Mapped directly from 64 KiB up, so a released pool goes back to the OS (host_memory.h).
    void* p = hostAlloc(bytes);
    if (!p) {
      live.fetch_sub(int64_t(bytes), std::memory_order_relaxed);
      std::ostringstream s;
      s << "cannot allocate a " << what << " of " << bytes << " bytes in the " << tierName(tier)
        << " tier: out of system memory";
      throw Error(s.str());
    }
    return std::make_shared<CpuMemory>(acct_, p, bytes, tier);
  }

  int64_t liveBytes(Tier tier) const override { return acct_->live[int(tier)].load(std::memory_order_relaxed); }

  void shutdown() override {
    for (WorkQueue* q : {&compute_, &h2d_, &d2h_}) q->cancel();
    for (WorkQueue* q : {&compute_, &h2d_, &d2h_}) q->join();
  }

  EventPtr append(AppendOp op, const Deps& deps) override {
    auto o = std::make_shared<AppendOp>(std::move(op));
    return compute_.push("append", deps, [o] {
      cpu::AppendArgs a{o->pool.layout, o->pool.mem->data, o->k.mem->data, o->v.mem->data, o->slots.data(),
                        int32_t(o->slots.size())};
      cpu::appendKV(a, ThreadPool::global());
    });
  }

  EventPtr decode(DecodeOp op, const Deps& deps) override {
    auto o = std::make_shared<DecodeOp>(std::move(op));
    return compute_.push("decode", deps, [o, isa = isa_] {
      if (o->batch == 0) return;
      cpu::DecodeArgs a{o->pool.layout, o->pool.mem->data,  o->q.mem->data,
                        o->out.mem->data, o->blockTables.data(), o->tableStride,
                        o->contextLens.data(), o->batch, o->numHeads,
                        effectiveScale(o->scale, o->pool.layout.headDim)};
      cpu::decodeAttention(a, ThreadPool::global(), isa);
    });
  }

  EventPtr prefill(PrefillOp op, const Deps& deps) override {
    auto o = std::make_shared<PrefillOp>(std::move(op));
    return compute_.push("prefill", deps, [o, isa = isa_] {
      if (o->batch == 0) return;
      cpu::PrefillArgs a{o->pool.layout,     o->pool.mem->data,     o->q.mem->data,
                         o->out.mem->data,   o->qStartLoc.data(),   o->blockTables.data(),
                         o->tableStride,     o->contextLens.data(), o->batch,
                         o->numHeads,        effectiveScale(o->scale, o->pool.layout.headDim)};
      cpu::prefillAttention(a, ThreadPool::global(), isa);
    });
  }

  EventPtr copyBlocks(CopyOp op, const Deps& deps) override {
    auto o = std::make_shared<CopyOp>(std::move(op));
    return queue(copyQueue(o->src.mem->tier, o->dst.mem->tier)).push("copyBlocks", deps, [o] {
      cpu::CopyArgs a{o->src.layout.blockBytes(), static_cast<const uint8_t*>(o->src.mem->data),
                      static_cast<uint8_t*>(o->dst.mem->data), o->pairs.data(), int32_t(o->pairs.size() / 2)};
      if (a.numPairs > 0) cpu::copyBlocks(a, ThreadPool::global());
    });
  }

  EventPtr reference(ReferenceOp op, const Deps& deps) override {
    auto o = std::make_shared<ReferenceOp>(std::move(op));
    return compute_.push("reference", deps, [o, isa = isa_] {
      if (o->kind == ReferenceOp::Kind::Fma) {
        *o->result = cpu::referenceFma(o->iterations, ThreadPool::global(), isa);
        return;
      }
      const int64_t blockBytes = o->pool.layout.blockBytes();
      cpu::ReadArgs a{blockBytes, static_cast<const uint8_t*>(o->pool.mem->data), o->blocks.data(),
                      int32_t(o->blocks.size())};
      if (a.numBlocks > 0) cpu::referenceRead(a, ThreadPool::global(), isa);
      *o->result = double(blockBytes) * double(a.numBlocks);
    });
  }

  EventPtr write(WriteOp op, Queue q, const Deps& deps) override {
    auto o = std::make_shared<WriteOp>(std::move(op));
    return queue(q).push("write", deps, [o] {
      if (!o->bytes->empty()) std::memcpy(static_cast<uint8_t*>(o->dst->data) + o->offset, o->bytes->data(), o->bytes->size());
    });
  }

  EventPtr read(ReadOp op, Queue q, const Deps& deps) override {
    auto o = std::make_shared<ReadOp>(std::move(op));
    return queue(q).push("read", deps, [o] {
      o->into->resize(o->length);
      if (o->length) std::memcpy(o->into->data(), static_cast<const uint8_t*>(o->src->data) + o->offset, o->length);
    });
  }

  // The body waits for its deps itself (through the kernel set), so a failed dependency
  // reaches the catch below and the op's markers fail with it instead of hanging.
  EventPtr compute(ComputeOp op, const Deps& deps) override {
    auto o = std::make_shared<ComputeOp>(std::move(op));
    const cpu::Isa isa = isa_;
    const cpu::GemmPath path = gemmPath_;
    return compute_.push(o->what, {}, [o, isa, path, deps] {
      auto k = cpu::createCpuKernelSet(isa, path);
      try {
        k->wait(deps);
        o->body(*k);
        if (o->finish) o->finish();
      } catch (const std::exception& e) {
        failMarkers(*o, e.what());
        throw;
      }
      failMarkers(*o, "the op ended before reaching it");
    });
  }

  EventPtr createMarker() override { return std::make_shared<CpuEvent>(); }

  EventPtr loadFile(LoadFileOp op, const Deps& deps) override {
    auto o = std::make_shared<LoadFileOp>(std::move(op));
    return h2d_.push("loadTensor", deps, [o, isa = isa_] {
      loadFileToHost(*o, o->dst.mem->data, [isa](const void* src, DType st, void* dst, DType dt, int64_t n) {
        cpu::convertElements(src, st, dst, dt, n, isa);
      });
    });
  }

  OpsInfo opsInfo() override {
    OpsInfo i;
    i.isa = cpu::isaName(isa_);
    i.isaForced = isaForced_;
    const std::string own = "own " + cpu::gemmPathName(isa_);
    i.gemm = gemmPath_ == cpu::GemmPath::Openblas ? cpu::openblasName() + " for m >= 32, else " + own : own;
    i.batchInvariant = gemmPath_ == cpu::GemmPath::Own;
    i.blasLoaded = cpu::openblasLinked();
    i.blasPath = cpu::openblasName();
    return i;
  }

 private:
  static void failMarkers(ComputeOp& o, const std::string& why) {
    for (auto& m : o.markers)
      if (auto* c = static_cast<CpuEvent*>(m.get()); c && !c->ready())
        c->complete(std::string(o.what) + " failed before this point: " + why);
  }

  WorkQueue& queue(Queue q) {
    switch (q) {
      case Queue::HostToDevice: return h2d_;
      case Queue::DeviceToHost: return d2h_;
      default: return compute_;
    }
  }

  std::shared_ptr<Accounting> acct_;
  std::string deviceName_;
  cpu::Isa isa_;  // the ceiling every CPU kernel runs at or below
  bool isaForced_ = false;
  cpu::GemmPath gemmPath_ = cpu::GemmPath::Own;
  WorkQueue compute_, h2d_, d2h_;
};

}  // namespace

std::unique_ptr<Backend> createCpuBackend(const CpuBackendOptions& options) {
  ThreadPool::checkEnvironment();
  int64_t cap = options.deviceCapacityBytes > 0 ? options.deviceCapacityBytes : envCapacity();
  bool forced = false;
  const cpu::Isa isa = cpu::resolveIsa(options.isa, "createBackend: cpuIsa", &forced);
  return std::make_unique<CpuBackend>(cap, isa, forced, cpu::modelGemmPath());
}

std::unique_ptr<Backend> createCpuBackend() { return createCpuBackend(CpuBackendOptions{}); }

}  // namespace kvcake
