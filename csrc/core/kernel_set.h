// The kernels a decoder layer needs beside attention, as one small interface each backend
// implements: the CPU runs each call synchronously on its compute queue thread, CUDA
// launches it on its compute stream. The model ops and the forward runner are written once
// against it (core/forward.cc), so both backends run the same layer loop.
//
// Every pointer is one the backend's kernels can dereference (host memory on CPU, device
// memory or mapped pinned memory on CUDA): get it from ptr(). Arguments are validated
// before a KernelSet sees them (core/validate_model.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/backend.h"

namespace kvcake {

// out[m][n] = sum_k a[m][k] * w[n][k] (+ bias[n]); a, out fp32; w in HF [out][in] layout.
struct GemmArgs {
  const float* a = nullptr;
  int64_t lda = 0;  // elements between rows of a (>= k)
  const void* w = nullptr;
  DType wType = DType::F32;
  const float* bias = nullptr;  // [n] or null
  float* out = nullptr;
  int64_t ldo = 0;  // elements between rows of out (>= n)
  int64_t m = 0, n = 0, k = 0;
  // 0 = the backend's default path; CPU only: 1 = own kernels, 2 = OpenBLAS (benchmarks
  // compare paths in one run).
  int32_t impl = 0;
};

// Without residual: out = x / rms(x) * weight. With residual: residual += x, then
// out = residual / rms(residual) * weight. out may alias x. Rows are strided.
struct RmsNormArgs {
  const float* x = nullptr;
  int64_t xStride = 0;
  float* residual = nullptr;  // [rows][dim], dense, or null
  const float* weight = nullptr;
  float* out = nullptr;
  int64_t outStride = 0;
  int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
};

// The rotation of one step: cos/sin [tokens][headDim/2] (fp32, angles computed in fp64
// from positions and inv_freq), applied in place to the q and k heads of each token
// (HF rotate_half: element i pairs with i + headDim/2).
struct RopeTableArgs {
  const int32_t* positions = nullptr;  // [tokens]
  const double* invFreq = nullptr;     // [headDim/2]
  float* cos = nullptr;
  float* sin = nullptr;
  int64_t tokens = 0;
  int32_t half = 0;
};
struct RopeArgs {
  float* q = nullptr;
  int64_t qStride = 0;  // elements between tokens
  float* k = nullptr;   // or null
  int64_t kStride = 0;
  int32_t numHeads = 0, numKvHeads = 0, headDim = 0;
  const float* cos = nullptr;
  const float* sin = nullptr;
  int64_t tokens = 0;
};

struct SiluMulArgs {
  const float* x = nullptr;  // [rows][2*dim]: gate, then up
  float* out = nullptr;      // [rows][dim]
  int64_t rows = 0, dim = 0;
};

struct EmbedArgs {
  const void* table = nullptr;  // [vocab][hidden]
  DType dtype = DType::F32;
  const int32_t* ids = nullptr;  // [tokens], validated to be in range
  float* out = nullptr;          // [tokens][hidden]
  int64_t tokens = 0, hidden = 0;
};

// dst[i][:] = src[rows[i]][:] (+ addend[rows[i]][:]), fp32 rows of `dim` elements.
struct GatherArgs {
  const float* src = nullptr;
  const float* addend = nullptr;  // or null
  const int32_t* rows = nullptr;
  float* dst = nullptr;
  int64_t count = 0, dim = 0;
};

// Copies a [rows][cols] block between dtypes and strides (fp32 activations <-> the KV
// pool's dtype); with `index`, source row i goes to destination row index[i] (scatter)
// or destination row i comes from source row index[i] (gather).
struct ConvertArgs {
  const void* src = nullptr;
  DType srcType = DType::F32;
  int64_t srcStride = 0;
  void* dst = nullptr;
  DType dstType = DType::F32;
  int64_t dstStride = 0;
  int64_t rows = 0, cols = 0;
  const int32_t* gather = nullptr;   // dst row i <- src row gather[i]
  const int32_t* scatter = nullptr;  // src row i -> dst row scatter[i]
};

struct AddArgs {
  const float* a = nullptr;
  const float* b = nullptr;
  float* out = nullptr;
  int64_t n = 0;
};

struct FillArgs {
  void* data = nullptr;
  DType dtype = DType::F32;
  int64_t numel = 0;
  double low = 0, high = 0;
  uint64_t seed = 0;
};

// Attention kernels of the backend, on pointers (the KV ops' arguments, resolved).
struct AttnAppendArgs {
  KVLayout layout;
  void* pool = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const int32_t* slots = nullptr;  // kernel-visible
  const int32_t* hostSlots = nullptr;
  int32_t numTokens = 0;
};
struct AttnArgs {
  KVLayout layout;
  const void* pool = nullptr;
  const void* q = nullptr;
  void* out = nullptr;
  // Host copies (the CPU reads these; CUDA plans its grid from them) and kernel-visible
  // copies (CUDA reads these; on CPU they are the same pointers).
  const int32_t* hostTables = nullptr;
  const int32_t* tables = nullptr;
  int32_t tableStride = 0;
  const int32_t* hostContextLens = nullptr;
  const int32_t* contextLens = nullptr;
  const int32_t* hostQStartLoc = nullptr;  // prefill only
  const int32_t* qStartLoc = nullptr;
  int32_t batch = 0;
  int32_t numHeads = 0;
  float scale = 0.f;  // resolved
};

class KernelSet {
 public:
  virtual ~KernelSet() = default;
  // The kernel-visible address of a backend allocation.
  virtual void* ptr(const MemoryPtr& m) = 0;
  // Copies host metadata to kernel-visible memory valid until the op completes (CPU:
  // returns `host` itself, which the op keeps alive).
  virtual const void* upload(const void* host, size_t bytes) = 0;
  // Kernel-visible scratch valid until the op completes.
  virtual void* scratch(size_t bytes) = 0;
  // Copies kernel-visible memory into host memory that the op's finish step reads.
  virtual void download(void* host, const void* src, size_t bytes) = 0;

  virtual void gemm(const GemmArgs& a) = 0;
  virtual void rmsnorm(const RmsNormArgs& a) = 0;
  virtual void ropeTable(const RopeTableArgs& a) = 0;
  virtual void rope(const RopeArgs& a) = 0;
  virtual void siluMul(const SiluMulArgs& a) = 0;
  virtual void embed(const EmbedArgs& a) = 0;
  virtual void gather(const GatherArgs& a) = 0;
  virtual void convert(const ConvertArgs& a) = 0;
  virtual void add(const AddArgs& a) = 0;
  virtual void fill(const FillArgs& a) = 0;
  virtual void append(const AttnAppendArgs& a) = 0;
  virtual void decode(const AttnArgs& a) = 0;
  virtual void prefill(const AttnArgs& a) = 0;

  // Orders what follows after `deps` (CPU: blocks this queue thread; CUDA: stream waits).
  // Throws Error when one of them failed.
  virtual void wait(const Deps& deps) = 0;
  // Completes (CPU) or records (CUDA) a marker made by Backend::createMarker: work issued
  // so far in this op is done when it fires.
  virtual void signal(const EventPtr& marker) = 0;
};

// A unit of compute-queue work written against the kernel set: the model ops and the
// forward runner. `body` issues the work; `finish` runs on a host thread after it has
// completed and before the op's event completes (it reads downloaded results);
// `markers` not signalled by the time the body returns or throws are completed with the
// op's error (or "not reached").
struct ComputeOp {
  const char* what = "compute";
  std::shared_ptr<void> keep;  // memory the op uses, alive until it completes
  size_t uploadBytes = 0;      // upper bound of the body's upload() bytes (CUDA staging)
  size_t scratchBytes = 0;     // upper bound of scratch() bytes
  std::function<void(KernelSet&)> body;
  std::function<void()> finish;
  std::vector<EventPtr> markers;
};

// Byte size a staging region needs for `bytes` of upload/scratch (256-byte aligned pieces).
inline size_t stagingBytes(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Reading tensor data from a file: `numel` elements of srcType at byte `fileOffset` into
// the tensor's elements [dstOffset, dstOffset + numel), converted to its dtype.
struct LoadFileOp {
  Tensor dst;
  std::string path;
  uint64_t fileOffset = 0;
  int64_t numel = 0;
  DType srcType = DType::F32;
  int64_t dstOffset = 0;
};

}  // namespace kvcake
