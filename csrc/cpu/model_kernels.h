// The CPU implementation of the model kernel set (core/kernel_set.h): synchronous kernels
// parallel over ThreadPool::global(), run on the compute queue's thread. The GEMM path is
// chosen per backend at run time (avx2 or avx512, gemm.h); the elementwise kernels are
// AVX2 (the build's baseline) and memory bound.
#pragma once
#include <memory>

#include "core/kernel_set.h"
#include "cpu/isa.h"

namespace kvcake::cpu {

// Which GEMM runs calls of 32 rows or more: kvcake's own batch-invariant kernels (the
// default), or OpenBLAS when linked (KVCAKE_CPU_GEMM=openblas).
enum class GemmPath { Own, Openblas };
GemmPath modelGemmPath();

// The ISA the model kernels run: KVCAKE_CPU_ISA when set (an Error naming it when this CPU
// lacks it or it is unknown), else the best this CPU has. *forced says which.
Isa modelIsa(bool* forced);

std::unique_ptr<KernelSet> createCpuKernelSet(Isa isa, GemmPath path);

// The GEMM as the CPU kernel set runs it, for benchmarks of one path against another.
void gemm(const GemmArgs& a, Isa isa, GemmPath path);

// Measured FMA peak of the thread pool on `isa`, GFLOP/s (every pool thread runs an
// FMA-only loop; wall time of the slowest). For benchmark ratios.
double fmaPeakGflops(Isa isa, double seconds);

}  // namespace kvcake::cpu
