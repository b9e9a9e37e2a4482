// Split-KV paged decode attention (templates; instantiated per dtype in decode_*.cu).
//
// One CTA per (attention row, KV head, head chunk, partition). It reads each K and V row
// of its partition once and uses it for every query head of the GQA group (up to GQ of
// them; larger groups take several head chunks). Inside the CTA, a K/V row is split in
// 16-byte vectors across TPK lanes (a "key group"); the CTA has S = 128 / TPK key groups,
// each walking every S-th key with its own online softmax, so the main loop has no
// block-wide barrier. Every pass a thread issues KPT keys x CPT vectors of K and of V
// before touching any of them: that is the memory-level parallelism that keeps HBM busy
// (8 independent 16-byte loads per thread in flight). Key groups are merged through
// shared memory at the end; partitions are merged by decodeReduceKernel (log-sum-exp).
// Scores are kept in the log2 domain (q is pre-scaled by scale * log2(e)).
#pragma once
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/kernels.cuh"
#include "cuda/vec.cuh"

namespace kvcake {
namespace cuda {

constexpr int kDecodeThreads = 128;
// Block ids of a partition are staged in shared memory when they fit, so the K/V loads of a
// pass do not wait behind a dependent global load of the block table.
constexpr int kDecodeTableCache = 256;

constexpr int nextPow2Cap32(int c) { return c > 16 ? 32 : c > 8 ? 16 : c > 4 ? 8 : c > 2 ? 4 : c > 1 ? 2 : 1; }

template <typename T, int D, int GQ>
struct DecodeTraits {
  static constexpr int CH = 16 / int(sizeof(T));  // elements per 16-byte vector
  static constexpr int C = D / CH;                // vectors per row
  static constexpr int TPK = nextPow2Cap32(C);    // lanes per key group
  static constexpr int CPT = (C + TPK - 1) / TPK; // vectors per lane
  static constexpr int S = kDecodeThreads / TPK;  // key groups per CTA
  static constexpr int KPT = CPT >= 4 ? 1 : 4 / CPT;  // keys per group per pass
  static_assert(D % CH == 0, "head dim must fill 16-byte vectors");
};

template <typename T, int D, int GQ>
__global__ void __launch_bounds__(kDecodeThreads, GQ >= 8 ? 2 : 4) decodeKernel(DecodeArgs a, int32_t partitions, int32_t partKeys,
                                                               int32_t headChunks, float* __restrict__ wsO,
                                                               float* __restrict__ wsLse) {
  using Tr = DecodeTraits<T, D, GQ>;
  constexpr int CH = Tr::CH, C = Tr::C, TPK = Tr::TPK, CPT = Tr::CPT, S = Tr::S, KPT = Tr::KPT;
  __shared__ float smM[S][GQ];
  __shared__ float smL[S][GQ];
  __shared__ float smO[GQ][D];
  __shared__ int32_t smTable[kDecodeTableCache];

  const int32_t row = int32_t(blockIdx.x / partitions);
  const int32_t part = int32_t(blockIdx.x - int64_t(row) * partitions);
  const int32_t kvh = blockIdx.y / headChunks;
  const int32_t chunk = blockIdx.y - kvh * headChunks;
  const int32_t G = a.numHeads / a.layout.numKvHeads;
  const int32_t h0 = kvh * G + chunk * GQ;
  const int32_t nh = min(GQ, G - chunk * GQ);
  const int32_t ctx = a.rows.ctx[row];
  const int32_t tableRow = a.rows.tableRow ? a.rows.tableRow[row] : row;
  const int32_t qRow = a.rows.qRow ? a.rows.qRow[row] : row;
  const int32_t kBegin = part * partKeys;
  const int32_t kEnd = min(ctx, kBegin + partKeys);

  const int tid = threadIdx.x;
  const int slot = tid / TPK;
  const int lane = tid % TPK;

  // This lane's slice of each query head, pre-scaled into the log2 domain.
  float q[GQ][CPT * CH];
  {
    const T* qBase = static_cast<const T*>(a.q) + (int64_t(qRow) * a.numHeads + h0) * D;
    const float qs = a.scale * 1.4426950408889634f;
#pragma unroll
    for (int g = 0; g < GQ; ++g) {
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        const int vec = lane + c * TPK;
        float f[CH];
        if (g < nh && vec < C) {
          unpack16<T>(load16(qBase + int64_t(g) * D + vec * CH), f);
        } else {
#pragma unroll
          for (int e = 0; e < CH; ++e) f[e] = 0.f;
        }
#pragma unroll
        for (int e = 0; e < CH; ++e) q[g][c * CH + e] = f[e] * qs;
      }
    }
  }

  float m[GQ], l[GQ], acc[GQ][CPT * CH];
#pragma unroll
  for (int g = 0; g < GQ; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int i = 0; i < CPT * CH; ++i) acc[g][i] = 0.f;
  }

  const int32_t* table = a.blockTables + int64_t(tableRow) * a.tableStride;
  const T* pool = static_cast<const T*>(a.pool);
  const int32_t bs = a.layout.blockSize;
  const int64_t kvStride = a.layout.kvStride();
  const int32_t biBase = kBegin / bs;
  const int32_t biCount = kEnd > kBegin ? (kEnd - 1) / bs - biBase + 1 : 0;
  const bool tableCached = biCount <= kDecodeTableCache;
  if (tableCached)
    for (int i = tid; i < biCount; i += kDecodeThreads) smTable[i] = table[biBase + i];
  __syncthreads();

  for (int32_t base = kBegin; base < kEnd; base += S * KPT) {
    uint4 kr[KPT][CPT], vr[KPT][CPT];
    bool valid[KPT];
#pragma unroll
    for (int k = 0; k < KPT; ++k) {
      const int32_t key = base + k * S + slot;
      valid[k] = key < kEnd;
      const T* kp = pool;
      if (valid[k]) {
        const int32_t bi = key / bs;
        const int32_t block = tableCached ? smTable[bi - biBase] : table[bi];
        kp = pool + a.layout.offset(block, 0, kvh, key - bi * bs);
      }
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        const int vec = lane + c * TPK;
        if (valid[k] && vec < C) {
          kr[k][c] = load16(kp + vec * CH);
          vr[k][c] = load16(kp + kvStride + vec * CH);
        } else {
          kr[k][c] = make_uint4(0, 0, 0, 0);
          vr[k][c] = make_uint4(0, 0, 0, 0);
        }
      }
    }

    float s[KPT][GQ];
#pragma unroll
    for (int k = 0; k < KPT; ++k) {
#pragma unroll
      for (int g = 0; g < GQ; ++g) s[k][g] = 0.f;
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        float f[CH];
        unpack16<T>(kr[k][c], f);
#pragma unroll
        for (int g = 0; g < GQ; ++g)
#pragma unroll
          for (int e = 0; e < CH; ++e) s[k][g] = fmaf(q[g][c * CH + e], f[e], s[k][g]);
      }
#pragma unroll
      for (int g = 0; g < GQ; ++g) {
#pragma unroll
        for (int off = TPK / 2; off > 0; off >>= 1) s[k][g] += __shfl_xor_sync(0xffffffffu, s[k][g], off, TPK);
        if (!valid[k]) s[k][g] = -INFINITY;
      }
    }

    // Online softmax for this key group, then fold the pass's V rows into acc.
#pragma unroll
    for (int g = 0; g < GQ; ++g) {
      float mx = m[g];
#pragma unroll
      for (int k = 0; k < KPT; ++k) mx = fmaxf(mx, s[k][g]);
      const float ref = mx == -INFINITY ? 0.f : mx;
      const float alpha = exp2f(m[g] - ref);
      m[g] = mx;
      float sum = 0.f;
#pragma unroll
      for (int k = 0; k < KPT; ++k) {
        s[k][g] = exp2f(s[k][g] - ref);  // -inf -> 0 for invalid keys
        sum += s[k][g];
      }
      l[g] = l[g] * alpha + sum;
#pragma unroll
      for (int i = 0; i < CPT * CH; ++i) acc[g][i] *= alpha;
    }
#pragma unroll
    for (int k = 0; k < KPT; ++k) {
#pragma unroll
      for (int c = 0; c < CPT; ++c) {
        float f[CH];
        unpack16<T>(vr[k][c], f);
#pragma unroll
        for (int g = 0; g < GQ; ++g)
#pragma unroll
          for (int e = 0; e < CH; ++e) acc[g][c * CH + e] = fmaf(s[k][g], f[e], acc[g][c * CH + e]);
      }
    }
  }

  // Merge the S key groups: common max M, total L, sum of rescaled accumulators.
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < GQ; ++g) {
      smM[slot][g] = m[g];
      smL[slot][g] = l[g];
    }
  }
  for (int i = tid; i < GQ * D; i += kDecodeThreads) (&smO[0][0])[i] = 0.f;
  __syncthreads();
  float M[GQ], L[GQ], f[GQ];
#pragma unroll
  for (int g = 0; g < GQ; ++g) {
    float mx = -INFINITY;
    for (int t = 0; t < S; ++t) mx = fmaxf(mx, smM[t][g]);
    const float ref = mx == -INFINITY ? 0.f : mx;
    float sum = 0.f;
    for (int t = 0; t < S; ++t) sum += smL[t][g] * exp2f(smM[t][g] - ref);
    M[g] = mx;
    L[g] = sum;
    f[g] = exp2f(m[g] - ref);
  }
  // One key group at a time, so the sum is deterministic.
  for (int t = 0; t < S; ++t) {
    if (slot == t) {
#pragma unroll
      for (int g = 0; g < GQ; ++g)
#pragma unroll
        for (int c = 0; c < CPT; ++c) {
          const int vec = lane + c * TPK;
          if (vec < C) {
#pragma unroll
            for (int e = 0; e < CH; ++e) smO[g][vec * CH + e] += acc[g][c * CH + e] * f[g];
          }
        }
    }
    __syncthreads();
  }

  if (partitions == 1) {
    T* out = static_cast<T*>(a.out) + (int64_t(qRow) * a.numHeads + h0) * D;
    for (int i = tid; i < nh * D; i += kDecodeThreads) {
      const int g = i / D;
      float Lg = 0.f;
#pragma unroll
      for (int gg = 0; gg < GQ; ++gg)
        if (gg == g) Lg = L[gg];
      out[i] = Elem<T>::fromFloat(Lg > 0.f ? (&smO[0][0])[i] / Lg : 0.f);
    }
  } else {
    for (int i = tid; i < nh * D; i += kDecodeThreads) {
      const int g = i / D, d = i - g * D;
      float Lg = 0.f, Mg = 0.f;
#pragma unroll
      for (int gg = 0; gg < GQ; ++gg)
        if (gg == g) {
          Lg = L[gg];
          Mg = M[gg];
        }
      const int64_t w = (int64_t(row) * a.numHeads + h0 + g) * partitions + part;
      wsO[w * D + d] = Lg > 0.f ? smO[g][d] / Lg : 0.f;
      if (d == 0) wsLse[w] = Lg > 0.f ? Mg + log2f(Lg) : -INFINITY;
    }
  }
}

// Merges the partitions of one (row, head): weights 2^(lse_p - max), output sum w_p O_p / sum w_p.
template <typename T>
__global__ void decodeReduceKernel(const float* __restrict__ wsO, const float* __restrict__ wsLse, T* __restrict__ out,
                                   const int32_t* __restrict__ qRowMap, int32_t numHeads, int32_t D, int32_t partitions) {
  extern __shared__ float smW[];
  __shared__ float smTotal;
  const int64_t rh = blockIdx.x;  // row * numHeads + head
  const int32_t row = int32_t(rh / numHeads);
  const int32_t head = int32_t(rh - int64_t(row) * numHeads);
  const float* lse = wsLse + rh * partitions;
  float mx = -INFINITY;
  for (int p = 0; p < partitions; ++p) mx = fmaxf(mx, lse[p]);
  const float ref = mx == -INFINITY ? 0.f : mx;
  for (int p = threadIdx.x; p < partitions; p += blockDim.x) smW[p] = exp2f(lse[p] - ref);
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int p = 0; p < partitions; ++p) t += smW[p];
    smTotal = t;
  }
  __syncthreads();
  const float total = smTotal;
  const int32_t qRow = qRowMap ? qRowMap[row] : row;
  T* o = out + (int64_t(qRow) * numHeads + head) * D;
  const float* src = wsO + rh * partitions * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float v = 0.f;
    for (int p = 0; p < partitions; ++p) v += smW[p] * src[int64_t(p) * D + d];
    o[d] = Elem<T>::fromFloat(total > 0.f ? v / total : 0.f);
  }
}

// Picks GQ for a group size: the smallest instantiated width that holds it (8 at most;
// larger groups run as several head chunks).
inline int decodeGroupWidth(int G) { return G >= 8 ? 8 : G > 4 ? 8 : G > 2 ? 4 : G; }

template <typename T, int D, int GQ>
void launchDecodeT(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream) {
  const int G = a.numHeads / a.layout.numKvHeads;
  const int headChunks = (G + GQ - 1) / GQ;
  dim3 grid(unsigned(int64_t(a.rows.count) * sp.partitions), unsigned(a.layout.numKvHeads * headChunks));
  decodeKernel<T, D, GQ><<<grid, kDecodeThreads, 0, stream>>>(a, sp.partitions, sp.partitionKeys, headChunks, wsO, wsLse);
  if (sp.partitions > 1) {
    const int64_t rh = int64_t(a.rows.count) * a.numHeads;
    decodeReduceKernel<T><<<unsigned(rh), 128, sp.partitions * sizeof(float), stream>>>(
        wsO, wsLse, static_cast<T*>(a.out), a.rows.qRow, a.numHeads, D, sp.partitions);
  }
}

template <typename T, int D>
void launchDecodeD(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream) {
  switch (decodeGroupWidth(a.numHeads / a.layout.numKvHeads)) {
    case 1: return launchDecodeT<T, D, 1>(a, sp, wsO, wsLse, stream);
    case 2: return launchDecodeT<T, D, 2>(a, sp, wsO, wsLse, stream);
    case 4: return launchDecodeT<T, D, 4>(a, sp, wsO, wsLse, stream);
    default: return launchDecodeT<T, D, 8>(a, sp, wsO, wsLse, stream);
  }
}

template <typename T>
void launchDecodeTyped(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream) {
  switch (a.layout.headDim) {
    case 64: return launchDecodeD<T, 64>(a, sp, wsO, wsLse, stream);
    case 80: return launchDecodeD<T, 80>(a, sp, wsO, wsLse, stream);
    case 96: return launchDecodeD<T, 96>(a, sp, wsO, wsLse, stream);
    case 128: return launchDecodeD<T, 128>(a, sp, wsO, wsLse, stream);
    default: return launchDecodeD<T, 256>(a, sp, wsO, wsLse, stream);
  }
}

// Resident CTAs per SM of the kernel a shape runs (0 when CUDA cannot say), for the split.
template <typename T, int D, int GQ>
int decodeOccupancyT() {
  int n = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decodeKernel<T, D, GQ>, kDecodeThreads, 0) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}
template <typename T, int D>
int decodeOccupancyD(int G) {
  switch (decodeGroupWidth(G)) {
    case 1: return decodeOccupancyT<T, D, 1>();
    case 2: return decodeOccupancyT<T, D, 2>();
    case 4: return decodeOccupancyT<T, D, 4>();
    default: return decodeOccupancyT<T, D, 8>();
  }
}
template <typename T>
int decodeOccupancyTyped(int headDim, int G) {
  switch (headDim) {
    case 64: return decodeOccupancyD<T, 64>(G);
    case 80: return decodeOccupancyD<T, 80>(G);
    case 96: return decodeOccupancyD<T, 96>(G);
    case 128: return decodeOccupancyD<T, 128>(G);
    default: return decodeOccupancyD<T, 256>(G);
  }
}

// Per-dtype entry points (one translation unit each, so they compile in parallel).
void launchDecodeF32(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream);
void launchDecodeF16(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream);
void launchDecodeBF16(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream);
int decodeOccupancyF32(int headDim, int G);
int decodeOccupancyF16(int headDim, int G);
int decodeOccupancyBF16(int headDim, int G);

}  // namespace cuda
}  // namespace kvcake
