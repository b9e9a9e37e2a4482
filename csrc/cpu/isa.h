// Which instruction-set path the CPU kernels run, chosen at run time.
//
// Detection: CPUID and XGETBV are read once (cpuFeatures()); an ISA counts only where the
// OS also saves its registers. Levels are ordered, each implying the ones before it:
//   scalar      portable C++ at the architecture's baseline (x86-64: SSE2), any CPU
//   avx2        AVX2 + FMA + F16C
//   avx512      + AVX-512 F, BW, VL, DQ
//   avx512bf16  + AVX512_BF16 (vdpbf16ps: bf16 pairs into fp32 sums)
//   avx512fp16  + AVX512_FP16
// Other architectures report only scalar; a NEON level for arm64 would follow scalar.
//
// Selection, for every CPU kernel: attention (attention.cc), the model's GEMM and
// elementwise kernels (model_kernels.cc), block copies and appends (one path):
//   - A CPU backend holds one ceiling: CpuBackendOptions::isa if given, else the
//     KVCAKE_CPU_ISA environment variable, else bestIsa(). resolveIsa() turns a requested
//     name into a level and throws an ArgError (a RangeError in JS) naming the source, the
//     value and what this CPU supports when it is unknown or unsupported, so a forced path
//     never silently degrades.
//   - Kernel entry points take that ceiling as an argument and run the highest level they
//     implement at or below it: pickIsa(ceiling, implemented). No kernel reads the
//     environment or CPUID on its own, so one process can run several paths side by side
//     (the tests do, against the reference).
//   - Each kernel family lists its implemented levels once, in a KernelPaths object at
//     namespace scope of its (baseline) dispatch file, and dispatches through it:
//       const KernelPaths kGemmF32("gemm.fp32", {Isa::Avx512, Isa::Avx2, Isa::Scalar});
//       switch (kGemmF32.pick(ceiling)) { case Isa::Avx512: return avx512::gemm(...); ... }
//     The backend's info() reports the level every registered family runs at
//     (decode.*, prefill.*, reference, model.gemm, model.elementwise).
//   - Outside a backend, the prefix store's payload checksum (store/checksum.cc) picks its
//     level once per process, at or below KVCAKE_CPU_ISA when that is a level this CPU
//     runs; its hash is the same on every path.
//
// Build convention: the code of a level above scalar lives in its own translation unit,
// named *_avx2.cc or *_avx512.cc (attention_avx512.cc is the model):
//   1. include every standard and project header first, so their inline functions and
//      templates are compiled for the baseline;
//   2. then `#pragma GCC push_options` + `#pragma GCC target("avx2,fma,f16c")` (clang:
//      `#pragma clang attribute push(__attribute__((target("..."))), apply_to = function)`);
//   3. define everything after it inside a namespace of that level (kvcake::cpu::avx2, ...;
//      kvcake::store::avx2, ... for the store's checksum), so no inline function or
//      template instantiated there shares a name with a baseline copy the linker could pick
//      instead; no globals with dynamic initializers there.
// Code written once for several levels (attention_impl.h, model_kernels_impl.h) is a
// header over the Vec of vec_<level>.h that each level file includes after its pragma,
// with KVCAKE_CPU_NS naming the namespace; model_paths.h and attention_paths.h declare
// what each level provides.
// Everything else is compiled for the baseline, so a CPU without AVX2 reaches this dispatch,
// never an illegal instruction. scripts/check-isa-split.mjs (run by npm test) checks the
// built objects for exactly this. The avx512fp16 level is detected and selectable; no
// attention path uses it (AVX512_FP16 has no fp32-accumulating dot product).
#pragma once
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace kvcake::cpu {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false, avx512fp16 = false;
  bool amxTile = false, amxBf16 = false;
};

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3, Avx512Fp16 = 4 };

// What the CPU and the OS support.
const CpuFeatures& cpuFeatures();

// The best level this CPU supports.
Isa bestIsa();

// "scalar", "avx2", "avx512", "avx512bf16", "avx512fp16".
const char* isaName(Isa isa);

// Parses a name as isaName prints it; false when unknown.
bool parseIsa(const std::string& name, Isa* out);

// Whether this CPU can run `isa`.
bool isaSupported(Isa isa);

// Every level, lowest first, and those this CPU supports, as "scalar, avx2, ...".
std::vector<Isa> allIsas();
std::string supportedIsaList();

// Features as a space-separated list ("avx2 fma f16c avx512f ..."), for reports.
std::string featureList();

// The ceiling for a backend. `requested` empty: KVCAKE_CPU_ISA if set and not empty, else
// bestIsa(); "auto" means bestIsa(). `source` names where a non-empty request came from in
// the error message (e.g. "createBackend: cpuIsa"). Throws kvcake::ArgError when the name is
// unknown or this CPU cannot run it. *forced (if given) says whether a level was named (by
// `requested` or the environment) rather than chosen as the best.
Isa resolveIsa(const std::string& requested, const char* source, bool* forced = nullptr);

// The highest of `implemented` at or below `ceiling`; Scalar when none is.
Isa pickIsa(Isa ceiling, std::initializer_list<Isa> implemented);

// A kernel family ("decode.fp16") and the levels it implements; constructing one registers
// it for reports. Construct at namespace scope in a baseline translation unit.
class KernelPaths {
 public:
  KernelPaths(const char* kernel, std::initializer_list<Isa> implemented);
  KernelPaths(const KernelPaths&) = delete;
  KernelPaths& operator=(const KernelPaths&) = delete;
  // The level this family runs under `ceiling`.
  Isa pick(Isa ceiling) const;
  const char* kernel() const { return kernel_; }
  // Every registered family with the level it runs under `ceiling`, sorted by name.
  static std::vector<std::pair<std::string, Isa>> under(Isa ceiling);

 private:
  const char* kernel_;
  std::vector<Isa> implemented_;
};

}  // namespace kvcake::cpu
