#include "store/checksum.h"

#include "common/error.h"

#define XXH_INLINE_ALL
#include "third_party/xxhash/xxhash.h"

namespace kvcake::store {

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
  if (bytes) XXH3_128bits_update(s_->st, data, bytes);
}

Checksum128 PayloadHasher::digest() const {
  const XXH128_hash_t h = XXH3_128bits_digest(s_->st);
  return Checksum128{h.low64, h.high64};
}

uint64_t headerHash(const void* data, size_t bytes) { return XXH3_64bits(data, bytes); }

// XXH3 picks its vector path at compile time (the addon is built for AVX2 on x86-64).
const char* checksumPath() {
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
