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

}  // namespace kvcake::store
