// Run-time dispatch of the attention kernels and benchmark references: each family names
// the levels it implements (registered for the backend's info()), and a call runs the
// highest of them at or below the caller's ceiling. Compiled for the baseline, like every
// file without a level suffix.
#include <string>

#include "common/error.h"
#include "cpu/attention_paths.h"
#include "cpu/kernels.h"

namespace kvcake::cpu {

namespace {

#ifdef KVCAKE_CPU_X86
#define KVCAKE_SIMD_LEVELS Isa::Avx512, Isa::Avx2,
#else
#define KVCAKE_SIMD_LEVELS
#endif

const KernelPaths kDecodeF32("decode.fp32", {KVCAKE_SIMD_LEVELS Isa::Scalar});
const KernelPaths kDecodeF16("decode.fp16", {KVCAKE_SIMD_LEVELS Isa::Scalar});
#ifdef KVCAKE_CPU_X86
const KernelPaths kDecodeBf16("decode.bf16", {Isa::Avx512Bf16, Isa::Avx512, Isa::Avx2, Isa::Scalar});
#else
const KernelPaths kDecodeBf16("decode.bf16", {Isa::Scalar});
#endif
const KernelPaths kPrefillF32("prefill.fp32", {KVCAKE_SIMD_LEVELS Isa::Scalar});
const KernelPaths kPrefillF16("prefill.fp16", {KVCAKE_SIMD_LEVELS Isa::Scalar});
#ifdef KVCAKE_CPU_X86
const KernelPaths kPrefillBf16("prefill.bf16", {Isa::Avx512Bf16, Isa::Avx512, Isa::Avx2, Isa::Scalar});
#else
const KernelPaths kPrefillBf16("prefill.bf16", {Isa::Scalar});
#endif
const KernelPaths kReference("reference", {KVCAKE_SIMD_LEVELS Isa::Scalar});

const KernelPaths& decodePaths(DType t) { return t == DType::F32 ? kDecodeF32 : t == DType::F16 ? kDecodeF16 : kDecodeBf16; }
const KernelPaths& prefillPaths(DType t) { return t == DType::F32 ? kPrefillF32 : t == DType::F16 ? kPrefillF16 : kPrefillBf16; }

void checkHeadDim(const KVLayout& L, const char* op) {
  if (L.headDim % 16 != 0 || L.headDim > Limits::kMaxHeadDim)
    throwArg(std::string(op) + ": headDim must be a multiple of 16 and at most 256");
}

}  // namespace

void decodeAttention(const DecodeArgs& a, ThreadPool& pool, Isa isa) {
  checkHeadDim(a.layout, "decodeAttention");
  switch (decodePaths(a.layout.dtype).pick(isa)) {
#ifdef KVCAKE_CPU_X86
    case Isa::Avx512Fp16:
    case Isa::Avx512Bf16: return avx512bf16::decode(a, pool);
    case Isa::Avx512: return avx512::decode(a, pool);
    case Isa::Avx2: return avx2::decode(a, pool);
#endif
    default: return scalar::decode(a, pool);
  }
}

void prefillAttention(const PrefillArgs& a, ThreadPool& pool, Isa isa) {
  checkHeadDim(a.layout, "prefillAttention");
  switch (prefillPaths(a.layout.dtype).pick(isa)) {
#ifdef KVCAKE_CPU_X86
    case Isa::Avx512Fp16:
    case Isa::Avx512Bf16: return avx512bf16::prefill(a, pool);
    case Isa::Avx512: return avx512::prefill(a, pool);
    case Isa::Avx2: return avx2::prefill(a, pool);
#endif
    default: return scalar::prefill(a, pool);
  }
}

Isa referenceIsa(Isa isa) { return kReference.pick(isa); }

float referenceRead(const ReadArgs& a, ThreadPool& pool, Isa isa) {
  switch (referenceIsa(isa)) {
#ifdef KVCAKE_CPU_X86
    case Isa::Avx512: return avx512::referenceRead(a, pool);
    case Isa::Avx2: return avx2::referenceRead(a, pool);
#endif
    default: return scalar::referenceRead(a, pool);
  }
}

double referenceFma(int64_t iterations, ThreadPool& pool, Isa isa) {
  switch (referenceIsa(isa)) {
#ifdef KVCAKE_CPU_X86
    case Isa::Avx512: return avx512::referenceFma(iterations, pool);
    case Isa::Avx2: return avx2::referenceFma(iterations, pool);
#endif
    default: return scalar::referenceFma(iterations, pool);
  }
}

}  // namespace kvcake::cpu
