#include "cpu/isa.h"

#include <cstdint>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define KVCAKE_X86 1
#endif

namespace kvcake::cpu {

namespace {

#ifdef KVCAKE_X86
// XGETBV without -mxsave, so this file builds at the x86-64 baseline.
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef KVCAKE_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool osAvx = (xcr0 & 0x6) == 0x6;        // XMM and YMM state
  const bool osAvx512 = (xcr0 & 0xe6) == 0xe6;   // plus opmask, ZMM_Hi256, Hi16_ZMM
  const bool osAmx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
  const bool fma = c & (1u << 12), f16c = c & (1u << 29);
  unsigned max = __get_cpuid_max(0, nullptr);
  if (max < 7) return f;
  unsigned b7 = 0, c7 = 0, d7 = 0, a7 = 0;
  __cpuid_count(7, 0, a7, b7, c7, d7);
  unsigned a71 = 0, b71 = 0, c71 = 0, d71 = 0;
  __cpuid_count(7, 1, a71, b71, c71, d71);
  if (osAvx) {
    f.fma = fma;
    f.f16c = f16c;
    f.avx2 = b7 & (1u << 5);
  }
  if (osAvx && osAvx512) {
    f.avx512f = b7 & (1u << 16);
    f.avx512dq = b7 & (1u << 17);
    f.avx512bw = b7 & (1u << 30);
    f.avx512vl = b7 & (1u << 31);
    f.avx512fp16 = d7 & (1u << 23);
    f.avx512bf16 = a71 & (1u << 5);
  }
  if (osAmx) {
    f.amxBf16 = d7 & (1u << 22);
    f.amxTile = d7 & (1u << 24);
  }
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpuFeatures() {
  static const CpuFeatures f = detect();
  return f;
}

bool isaSupported(Isa isa) {
  const CpuFeatures& f = cpuFeatures();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  const bool avx512 = avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return avx2;
    case Isa::Avx512: return avx512;
    case Isa::Avx512Bf16: return avx512 && f.avx512bf16;
  }
  return false;
}

Isa bestIsa() {
  for (Isa i : {Isa::Avx512Bf16, Isa::Avx512, Isa::Avx2})
    if (isaSupported(i)) return i;
  return Isa::Scalar;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
  }
  return "unknown";
}

bool parseIsa(const std::string& name, Isa* out) {
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16}) {
    if (name == isaName(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

std::string featureList() {
  const CpuFeatures& f = cpuFeatures();
  std::string s;
  auto add = [&](bool on, const char* n) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += n;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx512f, "avx512f");
  add(f.avx512dq, "avx512dq");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512bf16, "avx512bf16");
  add(f.avx512fp16, "avx512fp16");
  add(f.amxTile, "amx-tile");
  add(f.amxBf16, "amx-bf16");
  return s;
}

}  // namespace kvcake::cpu
