// The CPU implementation of the model kernel set (core/kernel_set.h): synchronous kernels
// parallel over ThreadPool::global(), run on the compute queue's thread. Every kernel runs
// the highest ISA level it implements at or below the backend's one ceiling (cpu/isa.h):
// the GEMM at avx512, avx2 or scalar (gemm.h), RMSNorm, SiLU-and-multiply and dtype
// conversions at avx2 or scalar (model_kernels_impl.h), the rest as plain loops at the
// baseline. A CPU without AVX2 runs the scalar paths.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/kernel_set.h"
#include "cpu/isa.h"

namespace kvcake::cpu {

// Which GEMM runs calls of 32 rows or more: kvcake's own batch-invariant kernels (the
// default), or OpenBLAS when linked (KVCAKE_CPU_GEMM=openblas).
enum class GemmPath { Own, Openblas };
// KVCAKE_CPU_GEMM, read when a backend is created; an Error names a bad value.
GemmPath modelGemmPath();

std::unique_ptr<KernelSet> createCpuKernelSet(Isa isa, GemmPath path);

// The GEMM as the CPU kernel set runs it, for benchmarks of one path against another.
void gemm(const GemmArgs& a, Isa isa, GemmPath path);

// The level the own GEMM runs under `isa`, and its words for reports ("avx512 (dot-16)").
Isa gemmIsa(Isa isa);
std::string gemmPathName(Isa isa);

// n elements of src (type st) into dst (type dt) on the calling thread, at the conversion
// path of `isa` (the same bits on every path).
void convertElements(const void* src, DType st, void* dst, DType dt, int64_t n, Isa isa);

// Measured FMA peak of the thread pool at the GEMM's level under `isa`, GFLOP/s (every
// pool thread runs an FMA-only loop; wall time of the slowest). For benchmark ratios.
double fmaPeakGflops(Isa isa, double seconds);

}  // namespace kvcake::cpu
