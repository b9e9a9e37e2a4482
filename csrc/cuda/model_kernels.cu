#include "cuda/model_kernels.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "common/error.h"
#include "core/rng.h"
#include "cuda/check.cuh"
#include "cuda/kernels.cuh"

namespace kvcake::cuda {

CudaTemps::~CudaTemps() {
  for (void* p : host) cudaFreeHost(p);
  for (void* p : dev) cudaFree(p);
}

namespace {

constexpr int kThreads = 256;

template <DType T>
__device__ __forceinline__ float ld(const void* p, int64_t i) {
  if constexpr (T == DType::F32) return static_cast<const float*>(p)[i];
  else if constexpr (T == DType::F16) return __half2float(static_cast<const __half*>(p)[i]);
  else return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}

template <DType T>
__device__ __forceinline__ void st(void* p, int64_t i, float v) {
  if constexpr (T == DType::F32) static_cast<float*>(p)[i] = v;
  else if constexpr (T == DType::F16) static_cast<__half*>(p)[i] = __float2half_rn(v);
  else static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
}

int gridFor(int64_t n) { return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)); }

#define KV_GRID_LOOP(i, n) for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// [rows][cols] between dtypes and strides, with an optional row gather or scatter.
template <DType S, DType D>
__global__ void convertKernel(const void* src, int64_t srcStride, void* dst, int64_t dstStride, int64_t rows,
                              int64_t cols, const int32_t* gather, const int32_t* scatter) {
  KV_GRID_LOOP(i, rows * cols) {
    const int64_t r = i / cols, c = i - r * cols;
    const int64_t sr = gather ? gather[r] : r, dr = scatter ? scatter[r] : r;
    st<D>(dst, dr * dstStride + c, ld<S>(src, sr * srcStride + c));
  }
}

__global__ void biasKernel(float* out, int64_t ldo, const float* bias, int64_t m, int64_t n) {
  KV_GRID_LOOP(i, m * n) {
    const int64_t r = i / n, c = i - r * n;
    out[r * ldo + c] = bias[c];
  }
}

// One block per row: the residual add, then a sum of squares in a fixed order (each thread
// strides the row, then a shared-memory tree), so a row's result never depends on others.
__global__ void rmsnormKernel(const float* x, int64_t xStride, float* residual, const float* w, float* out,
                              int64_t outStride, int64_t dim, float eps) {
  __shared__ float red[kThreads];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * xStride;
  float* res = residual ? residual + r * dim : nullptr;
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = xr[i];
    if (res) {
      v += res[i];
      res[i] = v;
    }
    s = fmaf(v, v, s);
  }
  red[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
    __syncthreads();
  }
  const float inv = 1.f / sqrtf(red[0] / float(dim) + eps);
  const float* src = res ? res : xr;
  for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) out[r * outStride + i] = (src[i] * inv) * w[i];
}

__global__ void ropeTableKernel(const int32_t* pos, const double* inv, float* c, float* s, int64_t tokens, int32_t half) {
  KV_GRID_LOOP(i, tokens * half) {
    const int64_t t = i / half;
    const int32_t f = int32_t(i - t * half);
    double sn, cs;
    sincos(double(pos[t]) * inv[f], &sn, &cs);
    c[i] = float(cs);
    s[i] = float(sn);
  }
}

__global__ void ropeKernel(float* q, int64_t qStride, float* k, int64_t kStride, int32_t numHeads, int32_t numKvHeads,
                           int32_t headDim, const float* cosT, const float* sinT, int64_t tokens) {
  const int32_t half = headDim / 2, heads = numHeads + numKvHeads;
  KV_GRID_LOOP(i, tokens * heads * half) {
    const int64_t t = i / (int64_t(heads) * half);
    const int32_t rest = int32_t(i - t * heads * half);
    const int32_t h = rest / half, f = rest - h * half;
    float* x = h < numHeads ? q + t * qStride + int64_t(h) * headDim : k + t * kStride + int64_t(h - numHeads) * headDim;
    const float c = cosT[t * half + f], s = sinT[t * half + f];
    const float x0 = x[f], x1 = x[f + half];
    x[f] = x0 * c - x1 * s;
    x[f + half] = x1 * c + x0 * s;
  }
}

__global__ void siluMulKernel(const float* x, float* out, int64_t rows, int64_t dim) {
  KV_GRID_LOOP(i, rows * dim) {
    const int64_t r = i / dim, c = i - r * dim;
    const float g = x[r * 2 * dim + c], u = x[r * 2 * dim + dim + c];
    out[i] = g / (1.f + expf(-g)) * u;
  }
}

template <DType T>
__global__ void embedKernel(const void* table, const int32_t* ids, float* out, int64_t tokens, int64_t hidden) {
  KV_GRID_LOOP(i, tokens * hidden) {
    const int64_t t = i / hidden, c = i - t * hidden;
    out[i] = ld<T>(table, int64_t(ids[t]) * hidden + c);
  }
}

__global__ void gatherKernel(const float* src, const float* addend, const int32_t* rows, float* dst, int64_t count,
                             int64_t dim) {
  KV_GRID_LOOP(i, count * dim) {
    const int64_t r = i / dim, c = i - r * dim;
    const int64_t s = int64_t(rows[r]) * dim + c;
    dst[i] = addend ? src[s] + addend[s] : src[s];
  }
}

__global__ void addKernel(const float* a, const float* b, float* out, int64_t n) {
  KV_GRID_LOOP(i, n) out[i] = a[i] + b[i];
}

template <DType T>
__global__ void fillKernel(void* data, int64_t n, double low, double high, uint64_t seed) {
  KV_GRID_LOOP(i, n) st<T>(data, i, float(uniformAt(seed, uint64_t(i), low, high)));
}

template <typename F>
void byType(DType t, F&& f) {
  switch (t) {
    case DType::F32: f(std::integral_constant<DType, DType::F32>{}); break;
    case DType::F16: f(std::integral_constant<DType, DType::F16>{}); break;
    default: f(std::integral_constant<DType, DType::BF16>{}); break;
  }
}

int cudaType(DType t) { return t == DType::F32 ? kCudaR32F : t == DType::F16 ? kCudaR16F : kCudaR16BF; }

class CudaKernelSet final : public KernelSet {
 public:
  CudaKernelSet(CudaOpEnv env, std::shared_ptr<CudaTemps> temps) : e_(std::move(env)), temps_(std::move(temps)) {}
  ~CudaKernelSet() override {
    // Stream-ordered: freed once the work issued before has run.
    for (void* p : async_) cudaFreeAsync(p, e_.stream);
  }

  void* ptr(const MemoryPtr& m) override { return m ? e_.ptr(m) : nullptr; }

  const void* upload(const void* host, size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t need = stagingBytes(bytes);
    void* h = nullptr;
    void* d = nullptr;
    if (hostUsed_ + need <= e_.hostCap && devUsed_ + need <= e_.devCap) {
      h = static_cast<char*>(e_.hostStage) + hostUsed_;
      d = static_cast<char*>(e_.devStage) + devUsed_;
      hostUsed_ += need;
      devUsed_ += need;
    } else {
      // Beyond the op's estimate: a pinned buffer of its own, freed after completion.
      KVCAKE_CUDA("upload staging", cudaHostAlloc(&h, need, cudaHostAllocPortable));
      temps_->host.push_back(h);
      d = asyncAlloc(need);
    }
    std::memcpy(h, host, bytes);
    KVCAKE_CUDA("upload metadata", cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, e_.stream));
    return d;
  }

  void* scratch(size_t bytes) override {
    const size_t need = stagingBytes(bytes);
    if (devUsed_ + need <= e_.devCap) {
      void* d = static_cast<char*>(e_.devStage) + devUsed_;
      devUsed_ += need;
      return d;
    }
    return asyncAlloc(need);
  }

  void download(void* host, const void* src, size_t bytes) override {
    if (bytes) KVCAKE_CUDA("download", cudaMemcpyAsync(host, src, bytes, cudaMemcpyDeviceToHost, e_.stream));
  }

  void gemm(const GemmArgs& g) override {
    if (!e_.blas) throw Error("cuda gemm: " + cublas().error);
    const void* a = g.a;
    int64_t lda = g.lda;
    int aType = kCudaR32F;
    if (g.wType != DType::F32) {
      // cuBLAS has no fp32 x bf16 GEMM: round the activations to the weights' dtype.
      void* cast = grow(castBuf_, castCap_, size_t(g.m * g.k) * 2);
      byType(g.wType, [&](auto t) {
        convertKernel<DType::F32, decltype(t)::value>
            <<<gridFor(g.m * g.k), kThreads, 0, e_.stream>>>(g.a, g.lda, cast, g.k, g.m, g.k, nullptr, nullptr);
      });
      a = cast;
      lda = g.k;
      aType = cudaType(g.wType);
    }
    float alpha = 1.f, beta = 0.f;
    if (g.bias) {
      biasKernel<<<gridFor(g.m * g.n), kThreads, 0, e_.stream>>>(g.out, g.ldo, g.bias, g.m, g.n);
      beta = 1.f;
    }
    const auto& api = cublas();
    api.setStream(e_.blas, reinterpret_cast<cudaStreamRaw>(e_.stream));
    // Row-major out[m][n] = a[m][k] w[n][k]^T is column-major out^T = w^T(op T) a^T.
    const cublasStatus_t s = api.gemmEx(e_.blas, kCublasOpT, kCublasOpN, int(g.n), int(g.m), int(g.k), &alpha, g.w,
                                        cudaType(g.wType), int(g.k), a, aType, int(lda), &beta, g.out, kCudaR32F,
                                        int(g.ldo), kCublasCompute32F, kCublasGemmDefault);
    if (s != 0) throw Error("cuda gemm: cublasGemmEx failed with status " + std::to_string(s));
  }

  void rmsnorm(const RmsNormArgs& a) override {
    if (a.rows == 0) return;
    rmsnormKernel<<<unsigned(a.rows), kThreads, 0, e_.stream>>>(a.x, a.xStride, a.residual, a.weight, a.out,
                                                                a.outStride, a.dim, a.eps);
  }

  void ropeTable(const RopeTableArgs& a) override {
    ropeTableKernel<<<gridFor(a.tokens * a.half), kThreads, 0, e_.stream>>>(a.positions, a.invFreq, a.cos, a.sin,
                                                                            a.tokens, a.half);
  }

  void rope(const RopeArgs& a) override {
    const int64_t n = a.tokens * (a.numHeads + a.numKvHeads) * (a.headDim / 2);
    ropeKernel<<<gridFor(n), kThreads, 0, e_.stream>>>(a.q, a.qStride, a.k, a.kStride, a.numHeads, a.numKvHeads,
                                                        a.headDim, a.cos, a.sin, a.tokens);
  }

  void siluMul(const SiluMulArgs& a) override {
    siluMulKernel<<<gridFor(a.rows * a.dim), kThreads, 0, e_.stream>>>(a.x, a.out, a.rows, a.dim);
  }

  void embed(const EmbedArgs& a) override {
    byType(a.dtype, [&](auto t) {
      embedKernel<decltype(t)::value>
          <<<gridFor(a.tokens * a.hidden), kThreads, 0, e_.stream>>>(a.table, a.ids, a.out, a.tokens, a.hidden);
    });
  }

  void gather(const GatherArgs& a) override {
    gatherKernel<<<gridFor(a.count * a.dim), kThreads, 0, e_.stream>>>(a.src, a.addend, a.rows, a.dst, a.count, a.dim);
  }

  void convert(const ConvertArgs& a) override {
    if (a.rows * a.cols == 0) return;
    byType(a.srcType, [&](auto s) {
      byType(a.dstType, [&](auto d) {
        convertKernel<decltype(s)::value, decltype(d)::value><<<gridFor(a.rows * a.cols), kThreads, 0, e_.stream>>>(
            a.src, a.srcStride, a.dst, a.dstStride, a.rows, a.cols, a.gather, a.scatter);
      });
    });
  }

  void add(const AddArgs& a) override { addKernel<<<gridFor(a.n), kThreads, 0, e_.stream>>>(a.a, a.b, a.out, a.n); }

  void fill(const FillArgs& a) override {
    byType(a.dtype, [&](auto t) {
      fillKernel<decltype(t)::value><<<gridFor(a.numel), kThreads, 0, e_.stream>>>(a.data, a.numel, a.low, a.high, a.seed);
    });
  }

  void append(const AttnAppendArgs& a) override {
    if (a.numTokens > 0) launchAppend(a.layout, a.pool, a.k, a.v, a.slots, a.numTokens, e_.stream);
  }

  void decode(const AttnArgs& a) override {
    if (a.batch == 0) return;
    DecodeArgs d = decodeArgs(a);
    d.rows.count = a.batch;
    d.rows.ctx = a.contextLens;
    d.rows.maxCtx = *std::max_element(a.hostContextLens, a.hostContextLens + a.batch);
    runDecode(d);
  }

  void prefill(const AttnArgs& a) override {
    if (a.batch == 0) return;
    if (a.layout.dtype == DType::F32) return prefillAsDecode(a);
    // Query tiles, longest causal span first (as the backend's prefill op orders them);
    // the same tiles serve every layer of a step, so they are uploaded once.
    auto& cached = tiles_[a.hostQStartLoc];
    if (!cached.first) {
      std::vector<PrefillTile> tiles;
      std::vector<int64_t> span;
      for (int32_t b = 0; b < a.batch; ++b) {
        const int32_t qLen = a.hostQStartLoc[b + 1] - a.hostQStartLoc[b];
        for (int32_t m0 = 0; m0 < qLen; m0 += kPrefillTileM) {
          tiles.push_back({b, m0});
          span.push_back(int64_t(a.hostContextLens[b]) - qLen + std::min(qLen, m0 + kPrefillTileM));
        }
      }
      std::vector<size_t> order(tiles.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return span[x] > span[y]; });
      std::vector<PrefillTile> sorted(tiles.size());
      for (size_t i = 0; i < order.size(); ++i) sorted[i] = tiles[order[i]];
      cached.first = static_cast<const PrefillTile*>(upload(sorted.data(), sorted.size() * sizeof(PrefillTile)));
      cached.second = int32_t(sorted.size());
    }
    PrefillArgs p;
    p.layout = a.layout;
    p.pool = a.pool;
    p.q = a.q;
    p.out = a.out;
    p.blockTables = a.tables;
    p.tableStride = a.tableStride;
    p.qStartLoc = a.qStartLoc;
    p.contextLens = a.contextLens;
    p.numHeads = a.numHeads;
    p.scale = a.scale;
    p.tiles = cached.first;
    p.numTiles = cached.second;
    if (p.numTiles > 0) launchPrefill(p, e_.stream);
  }

  void wait(const Deps& deps) override { e_.wait(deps); }
  void signal(const EventPtr& marker) override { e_.signal(marker); }

 private:
  void* asyncAlloc(size_t bytes) {
    void* p = nullptr;
    KVCAKE_CUDA("allocate temporary", cudaMallocAsync(&p, bytes, e_.stream));
    async_.push_back(p);
    return p;
  }

  // A buffer reused by successive calls of one op (stream order makes that safe); grows.
  void* grow(void*& buf, size_t& cap, size_t bytes) {
    if (bytes > cap) {
      buf = asyncAlloc(bytes);
      cap = bytes;
    }
    return buf;
  }

  DecodeArgs decodeArgs(const AttnArgs& a) {
    DecodeArgs d;
    d.layout = a.layout;
    d.pool = a.pool;
    d.q = a.q;
    d.out = a.out;
    d.blockTables = a.tables;
    d.tableStride = a.tableStride;
    d.numHeads = a.numHeads;
    d.scale = a.scale;
    return d;
  }

  void runDecode(DecodeArgs& d) {
    const DecodeSplit sp = planDecodeSplit(d, e_.numSMs);
    void* ws = sp.workspaceBytes ? grow(wsBuf_, wsCap_, sp.workspaceBytes) : nullptr;
    launchDecode(d, sp, ws, e_.stream);
  }

  // fp32 pools: every query token is a decode row over its causal prefix.
  void prefillAsDecode(const AttnArgs& a) {
    auto& rows = rows_[a.hostQStartLoc];
    if (!rows.ctx) {
      const int32_t totalQ = a.hostQStartLoc[a.batch];
      std::vector<int32_t> ctx(totalQ), tableRow(totalQ), qRow(totalQ);
      for (int32_t b = 0; b < a.batch; ++b) {
        const int32_t start = a.hostQStartLoc[b], qLen = a.hostQStartLoc[b + 1] - start;
        for (int32_t i = 0; i < qLen; ++i) {
          ctx[start + i] = a.hostContextLens[b] - qLen + i + 1;
          tableRow[start + i] = b;
          qRow[start + i] = start + i;
          rows.maxCtx = std::max(rows.maxCtx, ctx[start + i]);
        }
      }
      rows.count = totalQ;
      rows.ctx = static_cast<const int32_t*>(upload(ctx.data(), ctx.size() * 4));
      rows.tableRow = static_cast<const int32_t*>(upload(tableRow.data(), tableRow.size() * 4));
      rows.qRow = static_cast<const int32_t*>(upload(qRow.data(), qRow.size() * 4));
    }
    if (rows.count == 0) return;
    DecodeArgs d = decodeArgs(a);
    d.rows = rows;
    runDecode(d);
  }

  CudaOpEnv e_;
  std::shared_ptr<CudaTemps> temps_;
  size_t hostUsed_ = 0, devUsed_ = 0;
  std::vector<void*> async_;
  void* castBuf_ = nullptr;
  size_t castCap_ = 0;
  void* wsBuf_ = nullptr;
  size_t wsCap_ = 0;
  std::map<const int32_t*, std::pair<const PrefillTile*, int32_t>> tiles_;
  std::map<const int32_t*, DecodeRows> rows_;
};

}  // namespace

std::unique_ptr<KernelSet> createCudaKernelSet(CudaOpEnv env, std::shared_ptr<CudaTemps> temps) {
  return std::make_unique<CudaKernelSet>(std::move(env), std::move(temps));
}

}  // namespace kvcake::cuda
