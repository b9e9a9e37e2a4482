// Which x86-64 instruction-set paths this CPU can run, read once from CPUID and XGETBV.
// Kernels with faster paths compile those paths in their own translation units under
// `#pragma GCC target(...)` and choose between them at run time through this header, so a
// binary built on one machine runs correctly on any other x86-64. Other architectures
// report no x86 features (room for NEON alongside).
#pragma once
#include <string>

namespace kvcake::cpu {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false, avx512fp16 = false;
  bool amxTile = false, amxBf16 = false;
};

// Ordered: each level implies the ones before it.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

// What the CPU and the OS support (an ISA counts only where the OS saves its registers).
const CpuFeatures& cpuFeatures();

// The best level this CPU supports.
Isa bestIsa();

// "scalar", "avx2" (AVX2+FMA+F16C), "avx512" (F+BW+VL+DQ), "avx512bf16".
const char* isaName(Isa isa);

// Parses a name as isaName prints it; false when unknown.
bool parseIsa(const std::string& name, Isa* out);

// Whether this CPU can run `isa`.
bool isaSupported(Isa isa);

// Features as a space-separated list ("avx2 fma f16c avx512f ..."), for reports.
std::string featureList();

}  // namespace kvcake::cpu
