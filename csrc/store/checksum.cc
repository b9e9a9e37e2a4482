// The store's checksums at the baseline, with XXH3-128's streaming update dispatched to an
// ISA level (checksum_paths.h) chosen once per process: the highest implemented at or below
// KVCAKE_CPU_ISA when that names a level this CPU runs, else the best this CPU has. The
// hash does not depend on the level, only the speed does; a bad KVCAKE_CPU_ISA is an error
// where backends are created (cpu/isa.h resolveIsa), not here.
#include "store/checksum.h"

#include <cstdlib>

#include "common/error.h"
#include "cpu/isa.h"
#include "store/checksum_paths.h"

#define XXH_INLINE_ALL
#include "third_party/xxhash/xxhash.h"

namespace kvcake::store {

namespace {

using UpdateFn = void (*)(void* state, const void* data, size_t bytes);

void updateBaseline(void* state, const void* data, size_t bytes) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state), data, bytes);
}

cpu::Isa ceiling() {
  const char* env = std::getenv("KVCAKE_CPU_ISA");
  cpu::Isa isa;
  if (env && *env && cpu::parseIsa(env, &isa) && cpu::isaSupported(isa)) return isa;
  return cpu::bestIsa();
}

struct Path {
  cpu::Isa level;
  UpdateFn update;
};

const Path& path() {
  static const Path p = [] {
#if defined(__x86_64__) || defined(_M_X64)
    const cpu::Isa level = cpu::pickIsa(ceiling(), {cpu::Isa::Avx512, cpu::Isa::Avx2});
#else
    const cpu::Isa level = cpu::Isa::Scalar;
#endif
    switch (level) {
#if defined(__x86_64__) || defined(_M_X64)
      case cpu::Isa::Avx512: return Path{level, avx512::xxh3Update128};
      case cpu::Isa::Avx2: return Path{level, avx2::xxh3Update128};
#endif
      default: return Path{cpu::Isa::Scalar, updateBaseline};
    }
  }();
  return p;
}

}  // namespace

struct PayloadHasher::State {
  XXH3_state_t* st = nullptr;
};

PayloadHasher::PayloadHasher() : s_(std::make_unique<State>()) {
  s_->st = XXH3_createState();
  if (!s_->st) throw Error("store: out of memory for a checksum state");
  XXH3_128bits_reset(s_->st);
}

PayloadHasher::~PayloadHasher() {
  if (s_ && s_->st) XXH3_freeState(s_->st);
}

void PayloadHasher::update(const void* data, size_t bytes) {
  if (bytes) path().update(s_->st, data, bytes);
}

Checksum128 PayloadHasher::digest() const {
  const XXH128_hash_t h = XXH3_128bits_digest(s_->st);
  return Checksum128{h.low64, h.high64};
}

uint64_t headerHash(const void* data, size_t bytes) { return XXH3_64bits(data, bytes); }

// The payload hash's path: "avx512" or "avx2" (dispatched), else the baseline's own
// ("sse2" on x86-64, "neon", "scalar", ...).
const char* checksumPath() {
  switch (path().level) {
    case cpu::Isa::Scalar: break;
    case cpu::Isa::Avx2: return "avx2";
    default: return "avx512";
  }
  switch (XXH_VECTOR) {
    case XXH_SCALAR: return "scalar";
    case XXH_SSE2: return "sse2";
    case XXH_AVX2: return "avx2";
    case XXH_AVX512: return "avx512";
    case XXH_NEON: return "neon";
    case XXH_VSX: return "vsx";
    default: return "unknown";
  }
}

}  // namespace kvcake::store
