// The interface both backends implement. Everything here is asynchronous and stream
// ordered, the CUDA model: a backend has three in-order queues (compute, host-to-device,
// device-to-host). Ops on one queue run in issue order; ops on different queues are
// ordered only through events (`deps`: the op starts after every listed event completed,
// cudaStreamWaitEvent on CUDA, a wait on the queue's worker on CPU). No call blocks the
// caller's thread on the work itself.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "core/ops.h"

namespace kvcake {
struct ComputeOp;
struct LoadFileOp;
}  // namespace kvcake

namespace kvcake {

class Event {
 public:
  virtual ~Event() = default;
  // Calls cb exactly once, from any thread, when the work is done: error is empty on
  // success, else says which operation failed and why. If already done, calls it now.
  virtual void onComplete(std::function<void(const std::string& error)> cb) = 0;
  // Non-blocking: has the work completed?
  virtual bool ready() = 0;
};
using EventPtr = std::shared_ptr<Event>;
using Deps = std::vector<EventPtr>;

// Which paths the model ops take on a backend, for reports and tests.
struct OpsInfo {
  std::string isa;         // cpu: the ISA level the model kernels run
  bool isaForced = false;  // cpu: set by KVCAKE_CPU_ISA
  std::string gemm;        // the GEMM path in words
  bool batchInvariant = true;  // a row's GEMM result is independent of the rows beside it
  bool blasLoaded = false; // cuda: cuBLAS loaded; cpu: OpenBLAS linked in
  std::string blasPath;
  std::vector<std::string> blasSearched;
  std::string blasError;
};

enum class Queue : int32_t { Compute = 0, HostToDevice = 1, DeviceToHost = 2 };

// Which queue a block copy runs on: loads (host -> device) on HostToDevice, offloads and
// host -> host on DeviceToHost, device -> device on Compute.
inline Queue copyQueue(Tier src, Tier dst) {
  if (src == Tier::Host && dst == Tier::Device) return Queue::HostToDevice;
  if (src == Tier::Device && dst == Tier::Device) return Queue::Compute;
  return Queue::DeviceToHost;
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;          // "cpu" or "cuda"
  virtual std::string deviceName() const = 0;    // e.g. "NVIDIA H100 80GB HBM3", CPU model

  // Throws Error (naming the tier, the size and the reason) when the memory cannot be had.
  // `what` names the allocation in that message ("pool", "tensor").
  virtual MemoryPtr allocate(size_t bytes, Tier tier, const char* what) = 0;
  // Bytes allocated and not yet freed, per tier.
  virtual int64_t liveBytes(Tier tier) const = 0;

  // Ops are validated before they get here (core/validate.h); a backend may assume them
  // well formed. Each returns the event of its completion.
  virtual EventPtr append(AppendOp op, const Deps& deps) = 0;
  virtual EventPtr decode(DecodeOp op, const Deps& deps) = 0;
  virtual EventPtr prefill(PrefillOp op, const Deps& deps) = 0;
  virtual EventPtr copyBlocks(CopyOp op, const Deps& deps) = 0;
  virtual EventPtr write(WriteOp op, Queue q, const Deps& deps) = 0;
  virtual EventPtr read(ReadOp op, Queue q, const Deps& deps) = 0;

  // Model ops and the forward runner (core/kernel_set.h): one item on the compute queue.
  virtual EventPtr compute(ComputeOp op, const Deps& deps) = 0;
  // An event a later compute op's body signals (per-layer "appended" markers); usable in
  // deps of any op issued after the compute op that signals it.
  virtual EventPtr createMarker() = 0;
  // Reads tensor data from a file on a native thread (core/kernel_set.h LoadFileOp).
  virtual EventPtr loadFile(LoadFileOp op, const Deps& deps) = 0;
  // Which kernel paths the model ops run on.
  virtual OpsInfo opsInfo() = 0;
  // Stops the backend for good: ops queued and not yet started complete with an error
  // without running, ops already running (on CUDA: already on a stream) finish, and the
  // backend's threads are joined before it returns. Ops issued afterwards complete at once
  // with an error. The binding calls it when the JS environment that owns the backend is
  // torn down (a worker ending); the destructor, by contrast, runs everything queued.
  // Idempotent; call it from one thread.
  virtual void shutdown() = 0;

  // Benchmark references on the compute queue (ops.h). A backend without them throws.
  virtual EventPtr reference(ReferenceOp, const Deps&) {
    throw Error(std::string("reference: the ") + name() + " backend has no benchmark references");
  }

  // What the backend runs, as (key, value) pairs for diagnostics and benchmark records; the
  // CPU backend reports its ISA level and the path of every kernel family.
  virtual std::vector<std::pair<std::string, std::string>> info() const { return {}; }
};

// Factories. createCudaBackend throws Error saying why when CUDA cannot be used (built
// without nvcc, no driver, no device, device index out of range).
std::unique_ptr<Backend> createCpuBackend();
std::unique_ptr<Backend> createCudaBackend(int deviceIndex);
// Whether this binary was built with the CUDA backend, and if so whether a device is
// usable right now (sets *why when not).
bool cudaCompiledIn();
bool cudaUsable(std::string* why);
// Whether cuBLAS can be loaded (searched once per process, with or without a GPU), where it
// was found and every place tried; without the CUDA backend, an error saying so.
OpsInfo cublasStatus();

}  // namespace kvcake
