// Paged prefill / extend attention on tensor cores (fp16, bf16), flash-attention style.
//
// One CTA = 128 query rows of one sequence's chunk x one query head; 8 warps, 16 rows each
// (each K/V tile brought into shared memory serves 128 rows: half the L2 traffic of 64).
// Tiles are listed longest causal span first (the host sorts them), so the grid's tail is short work.
// K/V tiles of BN keys are gathered from the paged pool through the block table with
// cp.async into a double buffer (tile j+1 streams in while tile j is computed). S = Q K^T
// and O += P V run on mma.sync m16n8k16 with fp32 accumulation; the S accumulator layout
// is exactly the A-operand layout of the P V product, so P never leaves registers. The
// softmax is online (running max and sum per row, log2 domain). Causal masking uses
// absolute positions: query i of a chunk of qLen in a context of ctx tokens sits at
// position ctx - qLen + i and sees keys 0 .. that position.
// Shared-memory rows are padded by 8 elements so ldmatrix row addresses fall in distinct
// banks for every supported head dim.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/kernels.cuh"

namespace kvcake {
namespace cuda {
namespace {

__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;  // 0 bytes read: the 16 destination bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrixX4(uint32_t* r, const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s)
               : "memory");
}
__device__ __forceinline__ void ldmatrixX4Trans(uint32_t* r, const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s)
               : "memory");
}

template <typename T>
struct Mma;
template <>
struct Mma<__half> {
  static __device__ __forceinline__ void run(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};
template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};

constexpr int kThreads = 32 * (kPrefillTileM / 16);  // one warp per 16 query rows

template <typename T, int D>
struct Cfg {
  static constexpr int BM = kPrefillTileM;
  static constexpr int BN = D <= 128 ? 64 : 32;
  static constexpr int LD = D + 8;     // padded shared-memory row (elements)
  static constexpr int VPR = D / 8;    // 16-byte vectors per row
  static constexpr size_t smemBytes = size_t(BM + 4 * BN) * LD * sizeof(T);
  static_assert(D % 16 == 0, "head dim must be a multiple of 16 for m16n8k16");
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, D <= 128 ? 2 : 1) prefillKernel(PrefillArgs a) {
  using C = Cfg<T, D>;
  constexpr int BM = C::BM, BN = C::BN, LD = C::LD, VPR = C::VPR;
  extern __shared__ __align__(16) unsigned char smRaw[];
  T* Qs = reinterpret_cast<T*>(smRaw);
  T* Ks = Qs + BM * LD;       // [2][BN][LD]
  T* Vs = Ks + 2 * BN * LD;   // [2][BN][LD]

  // Heads of one tile are adjacent in the grid, so the query heads of a GQA group run
  // together and share each K/V tile through L2.
  const PrefillTile tile = a.tiles[blockIdx.x / a.numHeads];
  const int32_t h = blockIdx.x % a.numHeads;
  const int32_t kvh = h / (a.numHeads / a.layout.numKvHeads);
  const int32_t qStart = a.qStartLoc[tile.seq];
  const int32_t qLen = a.qStartLoc[tile.seq + 1] - qStart;
  const int32_t ctx = a.contextLens[tile.seq];
  const int32_t p0 = ctx - qLen;  // position of the chunk's first query
  const int32_t m0 = tile.m0;
  const int32_t rowsHere = min(BM, qLen - m0);
  const int32_t kvEnd = p0 + m0 + rowsHere;  // keys 0 .. highest query position of the tile
  const int32_t nTiles = (kvEnd + BN - 1) / BN;
  const int32_t* table = a.blockTables + int64_t(tile.seq) * a.tableStride;
  const T* pool = static_cast<const T*>(a.pool);
  const int64_t kvStride = a.layout.kvStride();
  const int32_t bs = a.layout.blockSize;
  const int tid = threadIdx.x;

  {
    const T* qg = static_cast<const T*>(a.q);
    for (int i = tid; i < BM * VPR; i += kThreads) {
      const int r = i / VPR, v = i - r * VPR;
      const bool ok = r < rowsHere;
      const T* src = ok ? qg + (int64_t(qStart + m0 + r) * a.numHeads + h) * D + v * 8 : qg;
      cpAsync16(Qs + r * LD + v * 8, src, ok);
    }
  }
  auto loadKV = [&](int32_t n0, int buf) {
    T* kd = Ks + buf * BN * LD;
    T* vd = Vs + buf * BN * LD;
    for (int i = tid; i < BN * VPR; i += kThreads) {
      const int r = i / VPR, v = i - r * VPR;
      const int32_t p = n0 + r;
      const bool ok = p < kvEnd;
      const T* src = pool;
      if (ok) {
        const int32_t bi = p / bs;
        src = pool + a.layout.offset(table[bi], 0, kvh, p - bi * bs) + v * 8;
      }
      cpAsync16(kd + r * LD + v * 8, src, ok);
      cpAsync16(vd + r * LD + v * 8, ok ? src + kvStride : pool, ok);
    }
  };
  loadKV(0, 0);
  cpAsyncCommit();

  const int warp = tid / 32, ln = tid % 32, g = ln >> 2, t = ln & 3;
  const int wr0 = warp * 16;
  const int32_t posA = p0 + m0 + wr0 + g;  // query position of this thread's rows g, g+8
  const int32_t posB = posA + 8;
  const int32_t warpMin = p0 + m0 + wr0, warpMax = warpMin + 15;
  const float sl2 = a.scale * 1.4426950408889634f;

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;

  for (int32_t j = 0; j < nTiles; ++j) {
    const int buf = j & 1;
    const int32_t n0 = j * BN;
    if (j + 1 < nTiles) {
      loadKV(n0 + BN, buf ^ 1);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    if (n0 <= warpMax) {  // warp-uniform: the tile is not entirely in this warp's future
      const T* Kb = Ks + buf * BN * LD;
      const T* Vb = Vs + buf * BN * LD;
      float s[BN / 8][4];
#pragma unroll
      for (int i = 0; i < BN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) {
        uint32_t af[4];
        ldmatrixX4(af, Qs + (wr0 + (ln & 7) + ((ln >> 3) & 1) * 8) * LD + ks * 16 + (ln >> 4) * 8);
#pragma unroll
        for (int np = 0; np < BN / 16; ++np) {
          uint32_t bf[4];
          ldmatrixX4(bf, Kb + (np * 16 + (ln & 7) + (ln >> 4) * 8) * LD + ks * 16 + ((ln >> 3) & 1) * 8);
          Mma<T>::run(s[2 * np], af, bf[0], bf[1]);
          Mma<T>::run(s[2 * np + 1], af, bf[2], bf[3]);
        }
      }
      const bool mask = n0 + BN - 1 > warpMin;
      float mxA = -INFINITY, mxB = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float v = s[nt][e] * sl2;
          if (mask) {
            const int32_t key = n0 + nt * 8 + 2 * t + (e & 1);
            if (key > (e < 2 ? posA : posB)) v = -INFINITY;
          }
          s[nt][e] = v;
        }
        mxA = fmaxf(mxA, fmaxf(s[nt][0], s[nt][1]));
        mxB = fmaxf(mxB, fmaxf(s[nt][2], s[nt][3]));
      }
#pragma unroll
      for (int off = 1; off <= 2; off <<= 1) {
        mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, off));
        mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, off));
      }
      const float newA = fmaxf(mA, mxA), newB = fmaxf(mB, mxB);
      const float refA = newA == -INFINITY ? 0.f : newA, refB = newB == -INFINITY ? 0.f : newB;
      const float alphaA = exp2f(mA - refA), alphaB = exp2f(mB - refB);
      mA = newA;
      mB = newB;
      float sumA = 0.f, sumB = 0.f;
#pragma unroll
      for (int nt = 0; nt < BN / 8; ++nt) {
        s[nt][0] = exp2f(s[nt][0] - refA);
        s[nt][1] = exp2f(s[nt][1] - refA);
        s[nt][2] = exp2f(s[nt][2] - refB);
        s[nt][3] = exp2f(s[nt][3] - refB);
        sumA += s[nt][0] + s[nt][1];
        sumB += s[nt][2] + s[nt][3];
      }
      lA = lA * alphaA + sumA;  // per-thread partial; the quad is summed once at the end
      lB = lB * alphaB + sumB;
#pragma unroll
      for (int dt = 0; dt < D / 8; ++dt) {
        o[dt][0] *= alphaA;
        o[dt][1] *= alphaA;
        o[dt][2] *= alphaB;
        o[dt][3] *= alphaB;
      }
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t pa[4];
        pa[0] = Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]);
        pa[1] = Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]);
        pa[2] = Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        pa[3] = Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t bf[4];
          ldmatrixX4Trans(bf, Vb + (kk * 16 + (ln & 7) + ((ln >> 3) & 1) * 8) * LD + dp * 16 + (ln >> 4) * 8);
          Mma<T>::run(o[2 * dp], pa, bf[0], bf[1]);
          Mma<T>::run(o[2 * dp + 1], pa, bf[2], bf[3]);
        }
      }
    }
    __syncthreads();  // the buffer just read is refilled by the next iteration's load
  }

#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    lA += __shfl_xor_sync(0xffffffffu, lA, off);
    lB += __shfl_xor_sync(0xffffffffu, lB, off);
  }
  const float invA = lA > 0.f ? 1.f / lA : 0.f, invB = lB > 0.f ? 1.f / lB : 0.f;
  const int32_t rowA = m0 + wr0 + g, rowB = rowA + 8;
  T* out = static_cast<T*>(a.out);
  if (rowA < qLen) {
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + (int64_t(qStart + rowA) * a.numHeads + h) * D + 2 * t);
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) dst[dt * 4] = Mma<T>::pack(o[dt][0] * invA, o[dt][1] * invA);
  }
  if (rowB < qLen) {
    uint32_t* dst = reinterpret_cast<uint32_t*>(out + (int64_t(qStart + rowB) * a.numHeads + h) * D + 2 * t);
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) dst[dt * 4] = Mma<T>::pack(o[dt][2] * invB, o[dt][3] * invB);
  }
}

template <typename T, int D>
void launchT(const PrefillArgs& a, cudaStream_t stream) {
  const size_t smem = Cfg<T, D>::smemBytes;
  // Above 48 KiB dynamic shared memory must be opted into (per kernel); errors surface
  // through cudaGetLastError at the caller like any launch error.
  cudaFuncSetAttribute(prefillKernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  // gridDim.x < 2^31: launch very large batches in slices of the tile list.
  const int32_t perLaunch = int32_t(((int64_t(1) << 31) - 1) / a.numHeads);
  for (int32_t first = 0; first < a.numTiles; first += perLaunch) {
    PrefillArgs slice = a;
    slice.tiles = a.tiles + first;
    slice.numTiles = a.numTiles - first < perLaunch ? a.numTiles - first : perLaunch;
    prefillKernel<T, D><<<unsigned(int64_t(slice.numTiles) * a.numHeads), kThreads, smem, stream>>>(slice);
  }
}

template <typename T>
void launchTyped(const PrefillArgs& a, cudaStream_t stream) {
  switch (a.layout.headDim) {
    case 64: return launchT<T, 64>(a, stream);
    case 80: return launchT<T, 80>(a, stream);
    case 96: return launchT<T, 96>(a, stream);
    case 128: return launchT<T, 128>(a, stream);
    default: return launchT<T, 256>(a, stream);
  }
}

}  // namespace

void launchPrefill(const PrefillArgs& a, cudaStream_t stream) {
  if (a.numTiles <= 0) return;
  if (a.layout.dtype == DType::BF16)
    launchTyped<__nv_bfloat16>(a, stream);
  else
    launchTyped<__half>(a, stream);
}

}  // namespace cuda
}  // namespace kvcake
