// Checksums of chunk values: XXH3-128 over the payload (streamed over scattered
// layer-blocks) and XXH3-64 over the header fields. Not a MAC: they catch corruption (bit
// rot, torn or truncated writes, a buggy writer), not a writer who means harm; keys are
// SHA-256 so a tenant cannot aim another tenant's key.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace kvcake::store {

struct Checksum128 {
  uint64_t low = 0, high = 0;
  bool operator==(const Checksum128& o) const { return low == o.low && high == o.high; }
  bool operator!=(const Checksum128& o) const { return !(*this == o); }
};

// Streaming XXH3-128: update() over the payload's pieces in order equals one call over
// their concatenation.
class PayloadHasher {
 public:
  PayloadHasher();
  ~PayloadHasher();
  PayloadHasher(const PayloadHasher&) = delete;
  PayloadHasher& operator=(const PayloadHasher&) = delete;
  void update(const void* data, size_t bytes);
  Checksum128 digest() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

uint64_t headerHash(const void* data, size_t bytes);

// Which XXH3 code path the payload hash runs ("avx512", "avx2", "sse2", ...), for
// benchmark output: chosen once per process at run time (checksum.cc).
const char* checksumPath();

}  // namespace kvcake::store
