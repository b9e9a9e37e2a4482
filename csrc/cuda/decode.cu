// Decode dispatch: split-KV planning and the per-dtype launch.
#include <algorithm>
#include <cstdlib>

#include "cuda/decode.cuh"

namespace kvcake {
namespace cuda {

namespace {

int residentPerSM(const DecodeArgs& a, int G) {
  switch (a.layout.dtype) {
    case DType::F32: return decodeOccupancyF32(a.layout.headDim, G);
    case DType::F16: return decodeOccupancyF16(a.layout.headDim, G);
    default: return decodeOccupancyBF16(a.layout.headDim, G);
  }
}

}  // namespace

DecodeSplit planDecodeSplit(const DecodeArgs& a, int numSMs) {
  DecodeSplit sp;
  const int32_t maxCtx = a.rows.maxCtx;
  const int G = a.numHeads / a.layout.numKvHeads;
  const int gq = decodeGroupWidth(G);
  const int64_t ctas = int64_t(a.rows.count) * a.layout.numKvHeads * ((G + gq - 1) / gq);
  int64_t parts = 1;
  if (const char* env = std::getenv("KVCAKE_CUDA_DECODE_PARTITIONS")) {
    const long forced = std::strtol(env, nullptr, 10);
    if (forced >= 1) parts = forced;
  } else if (maxCtx > 512 && ctas > 0) {
    // Split only while the rows alone fill fewer than ~4 waves of resident CTAs, keep each
    // partition at >= 256 keys (the reduce stays small next to the scan), and among the
    // counts that give at least one full wave pick the smallest whose last wave is nearly
    // full (uniform rows make the wave tail the whole loss).
    int perSM = residentPerSM(a, G);
    if (perSM < 1) perSM = 2;
    const int64_t resident = int64_t(numSMs > 0 ? numSMs : 1) * perSM;
    const int64_t maxByLen = (int64_t(maxCtx) + 255) / 256;
    if (ctas < 4 * resident && maxByLen > 1) {
      const int64_t pMin = std::min<int64_t>((resident + ctas - 1) / ctas, maxByLen);
      const int64_t pMax = std::min<int64_t>(maxByLen, 8 * pMin);
      double bestEff = -1;
      for (int64_t p = pMin; p <= pMax; ++p) {
        const int64_t n = ctas * p;
        const double eff = double(n) / double(((n + resident - 1) / resident) * resident);
        if (eff > bestEff + 1e-9) {
          bestEff = eff;
          parts = p;
        }
        if (eff >= 0.95) break;
      }
    }
  }
  if (parts > 1024) parts = 1024;
  if (parts < 1 || maxCtx <= 0) parts = 1;
  // Partition length: a multiple of 64 keys (a whole number of passes for every key group).
  int64_t keys = (int64_t(maxCtx) + parts - 1) / parts;
  keys = ((keys + 63) / 64) * 64;
  if (keys < 64) keys = 64;
  parts = maxCtx > 0 ? (int64_t(maxCtx) + keys - 1) / keys : 1;
  // gridDim.x = rows * partitions must stay below 2^31.
  while (parts > 1 && int64_t(a.rows.count) * parts >= (int64_t(1) << 31)) {
    keys *= 2;
    parts = (int64_t(maxCtx) + keys - 1) / keys;
  }
  sp.partitions = int32_t(parts);
  sp.partitionKeys = int32_t(parts == 1 ? (maxCtx > 0 ? maxCtx : 1) : keys);
  if (parts > 1) {
    const int64_t slots = int64_t(a.rows.count) * a.numHeads * parts;
    sp.workspaceBytes = size_t(slots) * (size_t(a.layout.headDim) + 1) * sizeof(float);
  }
  return sp;
}

void launchDecode(const DecodeArgs& a, const DecodeSplit& sp, void* workspace, cudaStream_t stream) {
  if (a.rows.count <= 0) return;
  float* wsO = static_cast<float*>(workspace);
  float* wsLse = nullptr;
  if (sp.partitions > 1) wsLse = wsO + int64_t(a.rows.count) * a.numHeads * sp.partitions * a.layout.headDim;
  switch (a.layout.dtype) {
    case DType::F32: return launchDecodeF32(a, sp, wsO, wsLse, stream);
    case DType::F16: return launchDecodeF16(a, sp, wsO, wsLse, stream);
    default: return launchDecodeBF16(a, sp, wsO, wsLse, stream);
  }
}

}  // namespace cuda
}  // namespace kvcake
