// Decode attention instantiations for f32 pools.
#include "cuda/decode.cuh"

namespace kvcake {
namespace cuda {

void launchDecodeF32(const DecodeArgs& a, const DecodeSplit& sp, float* wsO, float* wsLse, cudaStream_t stream) {
  launchDecodeTyped<float>(a, sp, wsO, wsLse, stream);
}

int decodeOccupancyF32(int headDim, int G) { return decodeOccupancyTyped<float>(headDim, G); }

}  // namespace cuda
}  // namespace kvcake
