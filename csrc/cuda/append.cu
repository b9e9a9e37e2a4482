// append-KV. The row of one (token, KV head) is headDim contiguous elements in both the
// input and the pool, so the kernel copies 16-byte vectors and is the same for every
// dtype: a flat grid-stride loop over (token, head, vector) keeps consecutive threads on
// consecutive vectors of one row (coalesced on both sides).
#include "cuda/kernels.cuh"

namespace kvcake {
namespace cuda {
namespace {

__global__ void appendKernel(KVLayout layout, uint4* __restrict__ pool, const uint4* __restrict__ k,
                             const uint4* __restrict__ v, const int32_t* __restrict__ slots,
                             int32_t numTokens, int32_t vecPerRow, int32_t vecPerElem16) {
  const int64_t rows = int64_t(numTokens) * layout.numKvHeads;
  const int64_t total = rows * vecPerRow;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / vecPerRow;
    const int32_t vec = int32_t(i - row * vecPerRow);
    const int32_t token = int32_t(row / layout.numKvHeads);
    const int32_t head = int32_t(row - int64_t(token) * layout.numKvHeads);
    const int32_t slot = slots[token];
    if (slot < 0) continue;  // padding row
    const int64_t block = slot / layout.blockSize;
    const int32_t off = slot - int32_t(block) * layout.blockSize;
    // Offsets in elements; vecPerElem16 = elements per 16-byte vector.
    const int64_t kDst = layout.offset(block, 0, head, off) / vecPerElem16 + vec;
    const int64_t vDst = layout.offset(block, 1, head, off) / vecPerElem16 + vec;
    const int64_t src = row * vecPerRow + vec;
    pool[kDst] = k[src];
    pool[vDst] = v[src];
  }
}

}  // namespace

void launchAppend(const KVLayout& layout, void* pool, const void* k, const void* v,
                  const int32_t* slots, int32_t numTokens, cudaStream_t stream) {
  if (numTokens <= 0) return;
  const int32_t elemsPer16 = int32_t(16 / dtypeSize(layout.dtype));
  const int32_t vecPerRow = layout.headDim / elemsPer16;  // headDim*size is a multiple of 16
  const int64_t total = int64_t(numTokens) * layout.numKvHeads * vecPerRow;
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  const int grid = int(blocks < 65536 ? blocks : 65536);
  appendKernel<<<grid, threads, 0, stream>>>(layout, static_cast<uint4*>(pool), static_cast<const uint4*>(k),
                                             static_cast<const uint4*>(v), slots, numTokens, vecPerRow, elemsPer16);
}

}  // namespace cuda
}  // namespace kvcake
