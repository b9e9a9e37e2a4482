// Decode attention instantiations for bf16 pools.
#include "cuda/decode.cuh"

namespace kvcake {
namespace cuda {

void launchDecodeBF16(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream) {
  launchDecodeTyped<__nv_bfloat16>(a, sp, wsO, wsLse, stream);
}

int decodeOccupancyBF16(int headDim, int G) { return decodeOccupancyTyped<__nv_bfloat16>(headDim, G); }

}  // namespace cuda
}  // namespace kvcake
