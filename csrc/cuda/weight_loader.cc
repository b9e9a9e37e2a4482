#include "cuda/weight_loader.h"

#include <cuda_runtime.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.h"
#include "core/completion_event.h"
#include "core/file_load.h"

namespace kvcake::cuda {

namespace {

void check(const char* what, cudaError_t e) {
  if (e != cudaSuccess) throw Error(std::string("cuda loadTensor: ") + what + ": " + cudaGetErrorString(e));
}

std::string waitAll(const Deps& deps) {
  for (const auto& d : deps) {
    struct Sync {
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      std::string err;
    };
    auto s = std::make_shared<Sync>();
    d->onComplete([s](const std::string& e) {
      std::lock_guard<std::mutex> lk(s->m);
      s->done = true;
      s->err = e;
      s->cv.notify_all();
    });
    std::unique_lock<std::mutex> lk(s->m);
    s->cv.wait(lk, [&] { return s->done; });
    if (!s->err.empty()) return s->err;
  }
  return "";
}

}  // namespace

struct WeightLoader::Impl {
  struct Task {
    std::shared_ptr<LoadFileOp> op;
    void* dst;
    Deps deps;
    std::shared_ptr<CompletionEvent> ev;
  };
  int device;
  std::mutex m;
  std::condition_variable cv;
  std::deque<Task> q;
  bool stop = false;
  cudaStream_t stream = nullptr;
  void* pinned[2] = {nullptr, nullptr};
  size_t pinnedBytes = 0;
  cudaEvent_t done[2] = {nullptr, nullptr};
  std::thread thread;

  void run(const Task& t) {
    const LoadFileOp& op = *t.op;
    const size_t srcElem = dtypeSize(op.srcType), dstElem = dtypeSize(op.dst.dtype);
    FileSource f(op.path, op.fileOffset, uint64_t(op.numel) * srcElem);
    check("set device", cudaSetDevice(device));
    if (!stream) {
      check("create stream", cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      // Staging sized for the converted chunk (fp16/bf16 -> fp32 doubles it).
      pinnedBytes = 2 * kLoadChunkBytes;
      for (int i = 0; i < 2; ++i) {
        check("pinned staging", cudaHostAlloc(&pinned[i], pinnedBytes, cudaHostAllocPortable));
        check("create event", cudaEventCreateWithFlags(&done[i], cudaEventDisableTiming));
      }
    }
    const int64_t chunk = int64_t(kLoadChunkBytes / srcElem);
    std::vector<char> raw(op.srcType == op.dst.dtype ? 0 : kLoadChunkBytes);
    char* dst = static_cast<char*>(t.dst) + size_t(op.dstOffset) * dstElem;
    bool used[2] = {false, false};
    int b = 0;
    for (int64_t e = 0; e < op.numel; e += chunk, b ^= 1) {
      const int64_t n = std::min(chunk, op.numel - e);
      if (used[b]) check("wait for staging", cudaEventSynchronize(done[b]));
      if (op.srcType == op.dst.dtype) {
        f.read(pinned[b], uint64_t(e) * srcElem, size_t(n) * srcElem);
      } else {
        f.read(raw.data(), uint64_t(e) * srcElem, size_t(n) * srcElem);
        convertElements(raw.data(), op.srcType, pinned[b], op.dst.dtype, n);
      }
      check("copy", cudaMemcpyAsync(dst + size_t(e) * dstElem, pinned[b], size_t(n) * dstElem, cudaMemcpyDefault,
                                    stream));
      check("record", cudaEventRecord(done[b], stream));
      used[b] = true;
    }
    check("synchronize", cudaStreamSynchronize(stream));
  }

  void loop() {
    for (;;) {
      Task t;
      {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return stop || !q.empty(); });
        if (q.empty()) return;
        t = std::move(q.front());
        q.pop_front();
      }
      std::string err = waitAll(t.deps);
      if (!err.empty()) {
        err = "loadTensor skipped: an op it waits for failed: " + err;
      } else {
        try {
          run(t);
        } catch (const std::exception& e) {
          err = std::string("loadTensor failed: ") + e.what();
          if (stream) cudaStreamSynchronize(stream);  // staging must be idle before the next load
          cudaGetLastError();
        }
      }
      t.op.reset();
      t.ev->complete(err);
    }
  }
};

WeightLoader::WeightLoader(int device) : impl_(new Impl) {
  impl_->device = device;
  impl_->thread = std::thread([this] { impl_->loop(); });
}

WeightLoader::~WeightLoader() {
  {
    std::lock_guard<std::mutex> lk(impl_->m);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
  cudaSetDevice(impl_->device);
  for (int i = 0; i < 2; ++i) {
    if (impl_->pinned[i]) cudaFreeHost(impl_->pinned[i]);
    if (impl_->done[i]) cudaEventDestroy(impl_->done[i]);
  }
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

EventPtr WeightLoader::push(std::shared_ptr<LoadFileOp> op, void* dst, Deps deps) {
  auto ev = std::make_shared<CompletionEvent>();
  {
    std::lock_guard<std::mutex> lk(impl_->m);
    impl_->q.push_back(Impl::Task{std::move(op), dst, std::move(deps), ev});
  }
  impl_->cv.notify_one();
  return ev;
}

}  // namespace kvcake::cuda
