// Walking a sequence's cache positions through its block table. A window of positions is
// cut into segments, each a contiguous run of one KV head's rows inside one block (the
// KVLayout keeps a head's rows of a block contiguous), so kernels stream plain arrays.
#pragma once
#include <cstdint>

#include "cpu/compiler.h"

#include "common/types.h"

namespace kvcake::cpu {

// Rows handled per online-softmax step: scores for the whole window are finished before
// any V row is read, so the running max is rescaled once per window, not once per row.
constexpr int kWindow = 64;
constexpr int kMaxSegments = kWindow / Limits::kMinBlockSize + 1;

struct Segment {
  int64_t k, v;  // element offsets of the first row of K and of V
  int rows;
  int first;     // row index of the segment inside the window
};

// Segments covering positions [begin, min(end, begin + kWindow)); returns their count.
// With oneBlock the window also stops at the end of begin's block: a task reading all KV
// heads then sweeps each block's K half and V half as two contiguous regions.
inline int gatherWindow(const KVLayout& L, const int32_t* table, int kvHead, int64_t begin,
                        int64_t end, Segment* out, bool oneBlock = false) {
  int n = 0, rows = 0;
  int64_t stop = begin + kWindow < end ? begin + kWindow : end;
  if (oneBlock) {
    const int64_t blockEnd = (begin / L.blockSize + 1) * L.blockSize;
    stop = blockEnd < stop ? blockEnd : stop;
  }
  for (int64_t p = begin; p < stop;) {
    const int64_t block = table[p / L.blockSize];
    const int tok = int(p % L.blockSize);
    const int64_t left = stop - p;
    const int r = int(L.blockSize - tok < left ? L.blockSize - tok : left);
    out[n++] = Segment{L.offset(block, 0, kvHead, tok), L.offset(block, 1, kvHead, tok), r, rows};
    rows += r;
    p += r;
  }
  return n;
}

inline int windowRows(const Segment* s, int n) { return n ? s[n - 1].first + s[n - 1].rows : 0; }

// Pulls the next window's K and V lines into L2 while the current window is computed, so
// the block-table jump to a new block does not stall the stream (hardware prefetchers stop
// at block, usually page, boundaries). L2, not L1: a window is as large as L1 itself.
inline void prefetchWindow(const void* pool, const Segment* s, int n, int headDim, size_t elemBytes) {
  const char* base = static_cast<const char*>(pool);
  for (int i = 0; i < n; ++i) {
    const int64_t bytes = int64_t(s[i].rows) * headDim * int64_t(elemBytes);
    const char* k = base + s[i].k * int64_t(elemBytes);
    const char* v = base + s[i].v * int64_t(elemBytes);
    for (int64_t o = 0; o < bytes; o += 64) {
      KVCAKE_PREFETCH_L2(k + o);
      KVCAKE_PREFETCH_L2(v + o);
    }
  }
}

}  // namespace kvcake::cpu
