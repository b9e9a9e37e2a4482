// The CUDA backend: device memory (cudaMalloc) and pinned host memory (cudaHostAlloc), three
// streams (compute; host-to-device at high priority; device-to-host at low priority), one
// cudaEvent per op, completed in issue order by a thread per stream (stream_completion.cuh).
// Nothing here touches CUDA before createCudaBackend / cudaUsable is called, so the addon
// loads on machines without a driver (cudart is linked statically).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "core/backend.h"
#include "core/completion_event.h"
#include "core/kernel_set.h"
#include "cuda/cublas.h"
#include "cuda/model_kernels.cuh"
#include "cuda/weight_loader.h"
#include "core/validate.h"
#include "cuda/check.cuh"
#include "cuda/copy_method.h"
#include "cuda/kernels.cuh"
#include "cuda/staging.cuh"
#include "cuda/stream_completion.cuh"

namespace kvcake {
namespace {

using cuda::Accounting;
using cuda::Completer;
using cuda::CopyMethod;
using cuda::copyMethodFromEnv;
using cuda::CudaEvent;
using cuda::CudaMemory;
using cuda::MetaLayout;
using cuda::Pending;
using cuda::Slab;
using cuda::SlabPool;
using cuda::viewOf;
using cuda::waitForeign;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    KVCAKE_CUDA("set device", cudaSetDevice(device));
    cudaDeviceProp prop{};
    KVCAKE_CUDA("get device properties", cudaGetDeviceProperties(&prop, device));
    name_ = prop.name;
    numSMs_ = prop.multiProcessorCount;
    if (prop.major < 8) {
      std::ostringstream s;
      s << "cuda: device " << device << " (" << name_ << ") has compute capability " << prop.major << "."
        << prop.minor << "; kvcake's kernels need 8.0 or newer";
      throw Error(s.str());
    }
    int least = 0, greatest = 0;
    KVCAKE_CUDA("stream priority range", cudaDeviceGetStreamPriorityRange(&least, &greatest));
    // Loads (host -> device) gate the next layer's attention: highest priority. Offloads
    // only need to finish before their blocks are reused: lowest.
    const int prio[3] = {(least + greatest) / 2, greatest, least};
    for (int i = 0; i < 3; ++i)
      KVCAKE_CUDA("create stream", cudaStreamCreateWithPriority(&streams_[i], cudaStreamNonBlocking, prio[i]));
    meta_ = std::make_shared<SlabPool>(device);
    hostStaging_ = std::make_shared<SlabPool>(device);
    for (int i = 0; i < 3; ++i) completers_[i] = std::make_unique<Completer>(device);
  }

  ~CudaBackend() override {
    loader_.reset();
    for (auto& c : completers_) c.reset();  // waits for every op still in flight
    if (blas_) cuda::cublas().destroy(blas_);
    cudaSetDevice(device_);
    for (auto s : streams_)
      if (s) cudaStreamDestroy(s);
  }

  const char* name() const override { return "cuda"; }
  std::string deviceName() const override { return name_; }

  // GPU work already on a stream cannot be taken back: the completion threads wait for it
  // (they own the ops' memory and staging) and are joined. Nothing new is issued after.
  void shutdown() override {
    for (auto& m : issueMutex_) m.lock();
    closed_ = true;
    for (auto& m : issueMutex_) m.unlock();
    for (auto& c : completers_) c.reset();
  }

  MemoryPtr allocate(size_t bytes, Tier tier, const char* what) override {
    KVCAKE_CUDA("set device", cudaSetDevice(device_));
    void* p = nullptr;
    void* view = nullptr;
    if (bytes > 0) {
      const cudaError_t err = tier == Tier::Device
                                  ? cudaMalloc(&p, bytes)
                                  : cudaHostAlloc(&p, bytes, cudaHostAllocPortable | cudaHostAllocMapped);
      if (err != cudaSuccess) {
        cudaGetLastError();  // an allocation failure must not poison the next launch check
        std::ostringstream s;
        s << "cannot allocate a " << what << " of " << bytes << " bytes in the " << tierName(tier)
          << " tier (" << (tier == Tier::Device ? "cudaMalloc" : "cudaHostAlloc, pinned")
          << "): " << cudaGetErrorString(err) << "; " << acct_->live[int(tier)].load() << " bytes live in that tier";
        throw Error(s.str());
      }
      view = p;
      if (tier == Tier::Host) {
        const cudaError_t e2 = cudaHostGetDevicePointer(&view, p, 0);
        if (e2 != cudaSuccess) {
          cudaFreeHost(p);
          throw Error(cudaMessage("map pinned memory", e2));
        }
      }
    }
    acct_->live[int(tier)].fetch_add(int64_t(bytes), std::memory_order_relaxed);
    return std::make_shared<CudaMemory>(acct_, device_, p, view, bytes, tier);
  }

  int64_t liveBytes(Tier tier) const override { return acct_->live[int(tier)].load(std::memory_order_relaxed); }

  EventPtr append(AppendOp op, const Deps& deps) override {
    auto o = std::make_shared<AppendOp>(std::move(op));
    const int32_t n = int32_t(o->slots.size());
    MetaLayout ml;
    const size_t offSlots = ml.add<int32_t>(n);
    return enqueue(Queue::Compute, "append", deps, o, ml.size(), ml.size(), [&](cudaStream_t st, const Slab& slab) {
      if (n == 0) return;
      std::memcpy(hostAt(slab, offSlots), o->slots.data(), size_t(n) * sizeof(int32_t));
      upload(slab, ml.size(), st);
      cuda::launchAppend(o->pool.layout, viewOf(o->pool.mem, "pool"), viewOf(o->k.mem, "k tensor"),
                         viewOf(o->v.mem, "v tensor"), devAt<int32_t>(slab, offSlots), n, st);
    });
  }

  EventPtr decode(DecodeOp op, const Deps& deps) override {
    auto o = std::make_shared<DecodeOp>(std::move(op));
    const KVLayout& L = o->pool.layout;
    cuda::DecodeArgs a;
    a.layout = L;
    a.tableStride = o->tableStride;
    a.numHeads = o->numHeads;
    a.scale = effectiveScale(o->scale, L.headDim);
    a.rows.count = o->batch;
    a.rows.maxCtx = o->contextLens.empty() ? 0 : *std::max_element(o->contextLens.begin(), o->contextLens.end());
    KVCAKE_CUDA("set device", cudaSetDevice(device_));  // the split reads this device's occupancy
    const cuda::DecodeSplit sp = cuda::planDecodeSplit(a, numSMs_);
    MetaLayout ml;
    const size_t offTables = ml.add<int32_t>(o->blockTables.size());
    const size_t offCtx = ml.add<int32_t>(o->contextLens.size());
    const size_t metaBytes = ml.size();
    const size_t offWs = ml.add<float>(sp.workspaceBytes / sizeof(float));
    return enqueue(Queue::Compute, "decode", deps, o, metaBytes, ml.size(), [&](cudaStream_t st, const Slab& slab) {
      if (o->batch == 0) return;
      std::memcpy(hostAt(slab, offTables), o->blockTables.data(), o->blockTables.size() * sizeof(int32_t));
      std::memcpy(hostAt(slab, offCtx), o->contextLens.data(), o->contextLens.size() * sizeof(int32_t));
      upload(slab, metaBytes, st);
      a.pool = viewOf(o->pool.mem, "pool");
      a.q = viewOf(o->q.mem, "q tensor");
      a.out = viewOf(o->out.mem, "out tensor");
      a.blockTables = devAt<int32_t>(slab, offTables);
      a.rows.ctx = devAt<int32_t>(slab, offCtx);
      cuda::launchDecode(a, sp, sp.workspaceBytes ? static_cast<char*>(slab.dev) + offWs : nullptr, st);
    });
  }

  EventPtr prefill(PrefillOp op, const Deps& deps) override {
    auto o = std::make_shared<PrefillOp>(std::move(op));
    const KVLayout& L = o->pool.layout;
    const float scale = effectiveScale(o->scale, L.headDim);
    if (L.dtype == DType::F32) return prefillAsDecode(o, scale, deps);

    // Query tiles, longest causal span first so the tail of the grid is short work.
    std::vector<cuda::PrefillTile> tiles;
    for (int32_t b = 0; b < o->batch; ++b) {
      const int32_t qLen = o->qStartLoc[b + 1] - o->qStartLoc[b];
      for (int32_t m0 = 0; m0 < qLen; m0 += cuda::kPrefillTileM) tiles.push_back({b, m0});
    }
    std::vector<int64_t> span(tiles.size());
    for (size_t i = 0; i < tiles.size(); ++i) {
      const auto& t = tiles[i];
      const int32_t qLen = o->qStartLoc[t.seq + 1] - o->qStartLoc[t.seq];
      span[i] = int64_t(o->contextLens[t.seq]) - qLen + std::min(qLen, t.m0 + cuda::kPrefillTileM);
    }
    std::vector<size_t> order(tiles.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return span[x] > span[y]; });
    std::vector<cuda::PrefillTile> sorted(tiles.size());
    for (size_t i = 0; i < order.size(); ++i) sorted[i] = tiles[order[i]];

    MetaLayout ml;
    const size_t offTables = ml.add<int32_t>(o->blockTables.size());
    const size_t offStart = ml.add<int32_t>(o->qStartLoc.size());
    const size_t offCtx = ml.add<int32_t>(o->contextLens.size());
    const size_t offTiles = ml.add<cuda::PrefillTile>(sorted.size());
    return enqueue(Queue::Compute, "prefill", deps, o, ml.size(), ml.size(), [&](cudaStream_t st, const Slab& slab) {
      if (sorted.empty()) return;
      std::memcpy(hostAt(slab, offTables), o->blockTables.data(), o->blockTables.size() * sizeof(int32_t));
      std::memcpy(hostAt(slab, offStart), o->qStartLoc.data(), o->qStartLoc.size() * sizeof(int32_t));
      std::memcpy(hostAt(slab, offCtx), o->contextLens.data(), o->contextLens.size() * sizeof(int32_t));
      std::memcpy(hostAt(slab, offTiles), sorted.data(), sorted.size() * sizeof(cuda::PrefillTile));
      upload(slab, ml.size(), st);
      cuda::PrefillArgs a;
      a.layout = L;
      a.pool = viewOf(o->pool.mem, "pool");
      a.q = viewOf(o->q.mem, "q tensor");
      a.out = viewOf(o->out.mem, "out tensor");
      a.blockTables = devAt<int32_t>(slab, offTables);
      a.tableStride = o->tableStride;
      a.qStartLoc = devAt<int32_t>(slab, offStart);
      a.contextLens = devAt<int32_t>(slab, offCtx);
      a.numHeads = o->numHeads;
      a.scale = scale;
      a.tiles = devAt<cuda::PrefillTile>(slab, offTiles);
      a.numTiles = int32_t(sorted.size());
      cuda::launchPrefill(a, st);
    });
  }

  EventPtr copyBlocks(CopyOp op, const Deps& deps) override {
    auto o = std::make_shared<CopyOp>(std::move(op));
    const Queue q = copyQueue(o->src.mem->tier, o->dst.mem->tier);
    const int64_t blockBytes = o->src.layout.blockBytes();
    // Sort by destination and coalesce pairs whose source and destination both continue the
    // previous one into runs of whole blocks (order is free: destinations are distinct and,
    // within one pool, never a source).
    const size_t nPairs = o->pairs.size() / 2;
    std::vector<std::pair<int32_t, int32_t>> sortedPairs(nPairs);  // (dst, src)
    for (size_t i = 0; i < nPairs; ++i) sortedPairs[i] = {o->pairs[2 * i + 1], o->pairs[2 * i]};
    std::sort(sortedPairs.begin(), sortedPairs.end());
    std::vector<int64_t> runs;  // (srcOff, dstOff, bytes) triples
    int64_t maxRun = 0;
    for (size_t i = 0; i < nPairs; ++i) {
      const int64_t s = int64_t(sortedPairs[i].second) * blockBytes, d = int64_t(sortedPairs[i].first) * blockBytes;
      const size_t n = runs.size();
      if (n >= 3 && runs[n - 3] + runs[n - 1] == s && runs[n - 2] + runs[n - 1] == d) {
        runs[n - 1] += blockBytes;
      } else {
        runs.push_back(s);
        runs.push_back(d);
        runs.push_back(blockBytes);
      }
      maxRun = std::max(maxRun, runs.back());
    }
    const int32_t numRuns = int32_t(runs.size() / 3);
    CopyMethod method = copyMethodFromEnv();
    if (method == CopyMethod::Auto) {
      const bool d2d = o->src.mem->tier == Tier::Device && o->dst.mem->tier == Tier::Device;
      const bool h2h = o->src.mem->tier == Tier::Host && o->dst.mem->tier == Tier::Host;
      method = numRuns <= 1 || h2h ? CopyMethod::Memcpy : d2d ? CopyMethod::Kernel : CopyMethod::Batch;
    }
    MetaLayout ml;
    const size_t offRuns = method == CopyMethod::Kernel ? ml.add<int64_t>(runs.size()) : 0;
    const size_t metaBytes = method == CopyMethod::Kernel ? ml.size() : 0;
    return enqueue(q, "copyBlocks", deps, o, metaBytes, metaBytes, [&](cudaStream_t st, const Slab& slab) {
      if (numRuns == 0) return;
      char* src = static_cast<char*>(viewOf(o->src.mem, "source pool"));
      char* dst = static_cast<char*>(viewOf(o->dst.mem, "destination pool"));
      if (method == CopyMethod::Kernel) {
        std::memcpy(hostAt(slab, offRuns), runs.data(), runs.size() * sizeof(int64_t));
        upload(slab, metaBytes, st);
        cuda::launchCopyRuns(src, dst, devAt<int64_t>(slab, offRuns), numRuns, maxRun, st);
        return;
      }
      std::atomic<bool>& batchWorks = batchWorks_[int(o->src.mem->tier) * 2 + int(o->dst.mem->tier)];
      if (method == CopyMethod::Batch && batchWorks.load()) {
        std::vector<void*> dsts(numRuns);
        std::vector<const void*> srcs(numRuns);
        std::vector<size_t> sizes(numRuns);
        for (int32_t r = 0; r < numRuns; ++r) {
          srcs[r] = src + runs[3 * r];
          dsts[r] = dst + runs[3 * r + 1];
          sizes[r] = size_t(runs[3 * r + 2]);
        }
        cudaMemcpyAttributes attr{};
        attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
        attr.flags = cudaMemcpyFlagPreferOverlapWithCompute;
        size_t attrIdx = 0;
        const cudaError_t err =
            cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), size_t(numRuns), &attr, &attrIdx, 1, st);
        if (err == cudaSuccess) return;
        // A driver that rejects the batched API (too old, or not for this pair of memory
        // kinds): remember per tier pair, and use one copy per run.
        cudaGetLastError();
        batchWorks.store(false);
      }
      for (int32_t r = 0; r < numRuns; ++r)
        KVCAKE_CUDA("copyBlocks", cudaMemcpyAsync(dst + runs[3 * r + 1], src + runs[3 * r], size_t(runs[3 * r + 2]),
                                                  cudaMemcpyDefault, st));
    });
  }

  EventPtr write(WriteOp op, Queue q, const Deps& deps) override {
    auto o = std::make_shared<WriteOp>(std::move(op));
    const size_t n = o->bytes ? o->bytes->size() : 0;
    // The bytes are copied into pinned staging now (the caller's buffer is free at once,
    // and a pageable source would make cudaMemcpyAsync wait for the stream).
    return enqueue(q, "write", deps, o, 0, 0, [&](cudaStream_t st, const Slab&) {}, n,
                   [&](cudaStream_t st, const Slab& slab) {
                     if (n == 0) return;
                     std::memcpy(slab.host, o->bytes->data(), n);
                     char* dst = static_cast<char*>(viewOf(o->dst, "destination tensor")) + o->offset;
                     KVCAKE_CUDA("write", cudaMemcpyAsync(dst, slab.host, n, cudaMemcpyDefault, st));
                   });
  }

  EventPtr read(ReadOp op, Queue q, const Deps& deps) override {
    auto o = std::make_shared<ReadOp>(std::move(op));
    const size_t n = o->length;
    auto staged = std::make_shared<void*>(nullptr);
    return enqueue(q, "read", deps, o, 0, 0, [&](cudaStream_t st, const Slab&) {}, n,
                   [&](cudaStream_t st, const Slab& slab) {
                     if (n == 0) return;
                     const char* src = static_cast<const char*>(viewOf(o->src, "source tensor")) + o->offset;
                     KVCAKE_CUDA("read", cudaMemcpyAsync(slab.host, src, n, cudaMemcpyDefault, st));
                     *staged = slab.host;
                   },
                   [o, staged, n] {
                     if (n > 0 && *staged && o->into) {
                       if (o->into->size() < n) o->into->resize(n);
                       std::memcpy(o->into->data(), *staged, n);
                     }
                   });
  }

  EventPtr compute(ComputeOp op, const Deps& deps) override;
  EventPtr createMarker() override;
  EventPtr loadFile(LoadFileOp op, const Deps& deps) override;
  OpsInfo opsInfo() override;

 private:
  cuda::cublasHandle_t blasHandle();  // under the compute issue lock; null without cuBLAS

  using Issue = std::function<void(cudaStream_t, const Slab&)>;

  static void* hostAt(const Slab& s, size_t off) { return static_cast<char*>(s.host) + off; }
  template <typename T>
  static const T* devAt(const Slab& s, size_t off) {
    return reinterpret_cast<const T*>(static_cast<const char*>(s.dev) + off);
  }
  static void upload(const Slab& s, size_t bytes, cudaStream_t st) {
    if (bytes) KVCAKE_CUDA("upload metadata", cudaMemcpyAsync(s.dev, s.host, bytes, cudaMemcpyHostToDevice, st));
  }

  // fp32 prefill: every query token is a decode row attending to its causal prefix.
  EventPtr prefillAsDecode(const std::shared_ptr<PrefillOp>& o, float scale, const Deps& deps) {
    const KVLayout& L = o->pool.layout;
    const int32_t totalQ = o->qStartLoc.empty() ? 0 : o->qStartLoc[o->batch];
    std::vector<int32_t> ctx(totalQ), tableRow(totalQ), qRow(totalQ);
    int32_t maxCtx = 0;
    for (int32_t b = 0; b < o->batch; ++b) {
      const int32_t start = o->qStartLoc[b], qLen = o->qStartLoc[b + 1] - start;
      const int32_t p0 = o->contextLens[b] - qLen;
      for (int32_t i = 0; i < qLen; ++i) {
        ctx[start + i] = p0 + i + 1;
        tableRow[start + i] = b;
        qRow[start + i] = start + i;
        maxCtx = std::max(maxCtx, p0 + i + 1);
      }
    }
    cuda::DecodeArgs a;
    a.layout = L;
    a.tableStride = o->tableStride;
    a.numHeads = o->numHeads;
    a.scale = scale;
    a.rows.count = totalQ;
    a.rows.maxCtx = maxCtx;
    KVCAKE_CUDA("set device", cudaSetDevice(device_));  // the split reads this device's occupancy
    const cuda::DecodeSplit sp = cuda::planDecodeSplit(a, numSMs_);
    MetaLayout ml;
    const size_t offTables = ml.add<int32_t>(o->blockTables.size());
    const size_t offCtx = ml.add<int32_t>(totalQ);
    const size_t offTable = ml.add<int32_t>(totalQ);
    const size_t offQ = ml.add<int32_t>(totalQ);
    const size_t metaBytes = ml.size();
    const size_t offWs = ml.add<float>(sp.workspaceBytes / sizeof(float));
    return enqueue(Queue::Compute, "prefill", deps, o, metaBytes, ml.size(), [&](cudaStream_t st, const Slab& slab) {
      if (totalQ == 0) return;
      std::memcpy(hostAt(slab, offTables), o->blockTables.data(), o->blockTables.size() * sizeof(int32_t));
      std::memcpy(hostAt(slab, offCtx), ctx.data(), ctx.size() * sizeof(int32_t));
      std::memcpy(hostAt(slab, offTable), tableRow.data(), tableRow.size() * sizeof(int32_t));
      std::memcpy(hostAt(slab, offQ), qRow.data(), qRow.size() * sizeof(int32_t));
      upload(slab, metaBytes, st);
      a.pool = viewOf(o->pool.mem, "pool");
      a.q = viewOf(o->q.mem, "q tensor");
      a.out = viewOf(o->out.mem, "out tensor");
      a.blockTables = devAt<int32_t>(slab, offTables);
      a.rows.ctx = devAt<int32_t>(slab, offCtx);
      a.rows.tableRow = devAt<int32_t>(slab, offTable);
      a.rows.qRow = devAt<int32_t>(slab, offQ);
      cuda::launchDecode(a, sp, sp.workspaceBytes ? static_cast<char*>(slab.dev) + offWs : nullptr, st);
    });
  }

  // Common enqueue path: wait on deps, take staging, issue the work, record the event,
  // hand it to the stream's completion thread. A failure to issue (a CUDA API error, a
  // launch error) completes the event with "cuda <op>: <reason>" rather than throwing, so
  // the caller sees it where it awaits the op, like an asynchronous fault.
  EventPtr enqueue(Queue q, const char* what, const Deps& deps, std::shared_ptr<void> keep, size_t metaHost,
                   size_t metaDev, const Issue& issue, size_t hostStaging = 0, const Issue& issueHost = nullptr,
                   std::function<void()> finish = nullptr) {
    const int qi = int(q);
    std::lock_guard<std::mutex> lk(issueMutex_[qi]);
    if (closed_) {
      auto dead = std::make_shared<CudaEvent>(device_, nullptr);
      dead->complete(std::string("cuda ") + what + " not run: the backend has been shut down");
      return dead;
    }
    KVCAKE_CUDA("set device", cudaSetDevice(device_));
    cudaStream_t st = streams_[qi];
    Pending p;
    p.what = what;
    p.keep = std::move(keep);
    p.finish = std::move(finish);
    try {
      for (const auto& d : deps) {
        if (!d) continue;
        auto* ce = dynamic_cast<CudaEvent*>(d.get());
        if (ce) {
          const std::string de = ce->failure();
          if (!de.empty()) throw Error(std::string("cuda ") + what + " skipped: an op it waits for failed: " + de);
          // An event without a handle completed (with an error) at enqueue: nothing to wait on.
          if (ce->handle()) KVCAKE_CUDA(what, cudaStreamWaitEvent(st, ce->handle(), 0));
          p.deps.push_back(std::static_pointer_cast<CudaEvent>(d));
        } else {
          // A dependency from outside this backend (the prefix store's I/O): its failure
          // must skip this op as a CUDA dependency's would (a failed load's blocks are not
          // to be copied).
          if (!d->ready()) waitForeign(d);
          auto* fe = dynamic_cast<CompletionEvent*>(d.get());
          const std::string de = fe ? fe->failure() : std::string();
          if (!de.empty()) throw Error(std::string("cuda ") + what + " skipped: an op it waits for failed: " + de);
        }
      }
      if (issueHost) {
        p.slab = hostStaging_->acquire(hostStaging, 0);
        p.slabPool = hostStaging_;
        issueHost(st, p.slab);
      } else {
        if (metaHost || metaDev) {
          p.slab = meta_->acquire(metaHost, metaDev);
          p.slabPool = meta_;
        }
        issue(st, p.slab);
      }
      const cudaError_t err = cudaGetLastError();
      if (err != cudaSuccess) p.error = cudaMessage(what, err);
    } catch (const std::exception& e) {
      p.error = e.what();
      if (p.error.rfind("cuda ", 0) != 0) p.error = std::string("cuda ") + what + ": " + p.error;
    }
    cudaEvent_t ev = nullptr;
    cudaError_t err = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming | cudaEventBlockingSync);
    if (err == cudaSuccess) err = cudaEventRecord(ev, st);
    if (err != cudaSuccess) {
      // Without an event nothing can track the work; the context is most likely broken.
      if (ev) cudaEventDestroy(ev);
      auto dead = std::make_shared<CudaEvent>(device_, nullptr);
      dead->complete(p.error.empty() ? cudaMessage(what, err) : p.error);
      return dead;  // p (and its slab) is dropped: the slab leaks rather than being reused early
    }
    auto event = std::make_shared<CudaEvent>(device_, ev);
    p.event = event;
    completers_[qi]->push(std::move(p));
    return event;
  }

  int device_;
  std::string name_;
  int numSMs_ = 1;
  std::shared_ptr<Accounting> acct_ = std::make_shared<Accounting>();
  cudaStream_t streams_[3] = {nullptr, nullptr, nullptr};
  std::mutex issueMutex_[3];
  bool closed_ = false;  // guarded by all three issue mutexes (any one to read)
  std::shared_ptr<SlabPool> meta_, hostStaging_;
  std::atomic<bool> batchWorks_[4] = {{true}, {true}, {true}, {true}};  // by (src tier, dst tier)
  std::unique_ptr<Completer> completers_[3];
  cuda::cublasHandle_t blas_ = nullptr;
  bool blasTried_ = false;
  std::mutex loaderMutex_;
  std::unique_ptr<cuda::WeightLoader> loader_;
};

// Model ops and the forward runner: the body issues its kernels on the compute stream now,
// through the kernel set; markers it signals are recorded in stream order and completed by
// the compute stream's completion thread, ahead of the op itself.
EventPtr CudaBackend::compute(ComputeOp op, const Deps& deps) {
  auto o = std::make_shared<ComputeOp>(std::move(op));
  auto temps = std::make_shared<cuda::CudaTemps>();
  auto hold = std::make_shared<std::pair<std::shared_ptr<ComputeOp>, std::shared_ptr<cuda::CudaTemps>>>(o, temps);
  std::vector<char> recorded(o->markers.size(), 0);
  std::string bodyError;
  const size_t host = o->uploadBytes, dev = o->uploadBytes + o->scratchBytes;
  EventPtr ev = enqueue(Queue::Compute, o->what, deps, hold, host, dev, [&](cudaStream_t st, const Slab& slab) {
    cuda::CudaOpEnv env;
    env.stream = st;
    env.device = device_;
    env.numSMs = numSMs_;
    env.blas = blasHandle();
    env.hostStage = slab.host;
    env.hostCap = host ? slab.hostCap : 0;
    env.devStage = slab.dev;
    env.devCap = dev ? slab.devCap : 0;
    env.ptr = [](const MemoryPtr& m) { return viewOf(m, "tensor"); };
    env.wait = [st](const Deps& ds) {
      for (const auto& d : ds) {
        auto* ce = dynamic_cast<CudaEvent*>(d.get());
        if (!ce) {
          if (!d->ready()) waitForeign(d);
          auto* c = dynamic_cast<CompletionEvent*>(d.get());
          if (c && !c->failure().empty()) throw Error("an op it waits for failed: " + c->failure());
          continue;
        }
        if (!ce->failure().empty()) throw Error("an op it waits for failed: " + ce->failure());
        if (ce->handle()) KVCAKE_CUDA("wait", cudaStreamWaitEvent(st, ce->handle(), 0));
      }
    };
    env.signal = [&, st](const EventPtr& m) {
      for (size_t i = 0; i < o->markers.size(); ++i)
        if (o->markers[i] == m) recorded[i] = 1;
      auto ce = std::dynamic_pointer_cast<CudaEvent>(m);
      if (!ce || !ce->handle()) return;
      KVCAKE_CUDA("record marker", cudaEventRecord(ce->handle(), st));
      Pending p;
      p.event = ce;
      p.what = o->what;
      completers_[int(Queue::Compute)]->push(std::move(p));
    };
    auto k = cuda::createCudaKernelSet(std::move(env), temps);
    try {
      o->body(*k);
    } catch (const std::exception& e) {
      bodyError = e.what();
      throw;
    }
  }, 0, nullptr, o->finish);
  for (size_t i = 0; i < o->markers.size(); ++i)
    if (!recorded[i])
      static_cast<CompletionEvent*>(o->markers[i].get())
          ->complete(std::string("cuda ") + o->what + " failed before this point" +
                     (bodyError.empty() ? std::string() : ": " + bodyError));
  return ev;
}

EventPtr CudaBackend::createMarker() {
  KVCAKE_CUDA("set device", cudaSetDevice(device_));
  cudaEvent_t ev = nullptr;
  KVCAKE_CUDA("create event", cudaEventCreateWithFlags(&ev, cudaEventDisableTiming | cudaEventBlockingSync));
  return std::make_shared<CudaEvent>(device_, ev);
}

EventPtr CudaBackend::loadFile(LoadFileOp op, const Deps& deps) {
  auto o = std::make_shared<LoadFileOp>(std::move(op));
  void* dst = viewOf(o->dst.mem, "tensor");
  {
    std::lock_guard<std::mutex> lk(loaderMutex_);
    if (!loader_) loader_ = std::make_unique<cuda::WeightLoader>(device_);
  }
  return loader_->push(o, dst, deps);
}

cuda::cublasHandle_t CudaBackend::blasHandle() {
  if (blas_ || blasTried_) return blas_;
  blasTried_ = true;
  const auto& api = cuda::cublas();
  if (api.loaded && api.create(&blas_) != 0) blas_ = nullptr;
  return blas_;
}

OpsInfo CudaBackend::opsInfo() {
  const auto& api = cuda::cublas();
  OpsInfo i;
  i.gemm = api.loaded ? "cublas (" + api.path + ")" : "none: " + api.error;
  i.batchInvariant = false;  // cuBLAS chooses kernels by shape
  i.blasLoaded = api.loaded;
  i.blasPath = api.path;
  i.blasSearched = api.searched;
  i.blasError = api.error;
  return i;
}

}  // namespace

std::unique_ptr<Backend> createCudaBackend(int deviceIndex) {
  std::string why;
  if (!cudaUsable(&why)) throw Error("cuda backend unavailable: " + why);
  int n = 0;
  KVCAKE_CUDA("get device count", cudaGetDeviceCount(&n));
  if (deviceIndex < 0 || deviceIndex >= n)
    throw ArgError("device index " + std::to_string(deviceIndex) + " is out of range: this machine has " +
                   std::to_string(n) + " CUDA device" + (n == 1 ? "" : "s"));
  return std::make_unique<CudaBackend>(deviceIndex);
}

}  // namespace kvcake
