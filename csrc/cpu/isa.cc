#include "cpu/isa.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "common/error.h"

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
    case Isa::Avx512Fp16: return avx512 && f.avx512bf16 && f.avx512fp16;
  }
  return false;
}

std::vector<Isa> allIsas() { return {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Avx512Fp16}; }

Isa bestIsa() {
  Isa best = Isa::Scalar;
  for (Isa i : allIsas())
    if (isaSupported(i)) best = i;
  return best;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
    case Isa::Avx512Fp16: return "avx512fp16";
  }
  return "unknown";
}

bool parseIsa(const std::string& name, Isa* out) {
  for (Isa i : allIsas()) {
    if (name == isaName(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

std::string supportedIsaList() {
  std::string s;
  for (Isa i : allIsas()) {
    if (!isaSupported(i)) continue;
    if (!s.empty()) s += ", ";
    s += isaName(i);
  }
  return s;
}

Isa resolveIsa(const std::string& requested, const char* source, bool* forced) {
  if (forced) *forced = false;
  std::string name = requested, from = source;
  if (name.empty()) {
    const char* env = std::getenv("KVCAKE_CPU_ISA");
    if (!env || !*env) return bestIsa();
    name = env;
    from = "KVCAKE_CPU_ISA";
  }
  if (name == "auto") return bestIsa();
  Isa isa;
  if (!parseIsa(name, &isa)) {
    std::string all;
    for (Isa i : allIsas()) all += std::string(all.empty() ? "" : ", ") + isaName(i);
    throw ArgError(from + " = '" + name + "' is not a CPU ISA level; use auto, " + all);
  }
  if (!isaSupported(isa))
    throw ArgError(from + " = '" + name + "': this CPU cannot run the " + name + " path (it supports " +
                supportedIsaList() + ")");
  if (forced) *forced = true;
  return isa;
}

Isa pickIsa(Isa ceiling, std::initializer_list<Isa> implemented) {
  Isa best = Isa::Scalar;
  for (Isa i : implemented)
    if (int(i) <= int(ceiling) && int(i) > int(best)) best = i;
  return best;
}

namespace {
struct Registry {
  std::mutex m;
  std::vector<const KernelPaths*> all;
};
Registry& registry() {
  static Registry* r = new Registry;  // leaked: registrations may outlive static destruction order
  return *r;
}
}  // namespace

KernelPaths::KernelPaths(const char* kernel, std::initializer_list<Isa> implemented)
    : kernel_(kernel), implemented_(implemented) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.m);
  r.all.push_back(this);
}

Isa KernelPaths::pick(Isa ceiling) const {
  Isa best = Isa::Scalar;
  for (Isa i : implemented_)
    if (int(i) <= int(ceiling) && int(i) > int(best)) best = i;
  return best;
}

std::vector<std::pair<std::string, Isa>> KernelPaths::under(Isa ceiling) {
  Registry& r = registry();
  std::vector<std::pair<std::string, Isa>> out;
  {
    std::lock_guard<std::mutex> lk(r.m);
    for (const KernelPaths* k : r.all) out.emplace_back(k->kernel(), k->pick(ceiling));
  }
  std::sort(out.begin(), out.end());
  return out;
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
