// Decode attention instantiations for f16 pools.
#include "cuda/decode.cuh"

namespace kvcake {
namespace cuda {

void launchDecodeF16(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream) {
  launchDecodeTyped<__half>(a, sp, wsO, wsLse, stream);
}

int decodeOccupancyF16(int headDim, int G) { return decodeOccupancyTyped<__half>(headDim, G); }

}  // namespace cuda
}  // namespace kvcake
