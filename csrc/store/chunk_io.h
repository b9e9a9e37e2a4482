// Native reads and writes of prefix chunks between host-tier pool blocks and files or
// memory, on the store's own threads (IoPool), each returning an Event like a backend op.
//
// Verification before use: a load writes only into the blocks it was given (host-tier
// blocks the caller reserved for this load and lets nothing else read until the load's
// event completes successfully), checks the header before any payload byte is read, and
// checks the payload checksum over the bytes as they landed in those blocks. A chunk that
// fails any check completes its event with an error ("<op> <key>: <fault>: <why>"), so an
// op that waits for it is skipped and a caller that awaits it sees a miss; the blocks'
// contents are then undefined and are never handed on.
//
// Disk bytes go straight from the file into the blocks (preadv) and from the blocks into the
// file (pwritev): no staging copy. Files are written atomically: a temp file in the same
// directory, fdatasync, rename onto "<hex key>.kvc", fsync of the directory.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "core/ops.h"
#include "store/chunk_format.h"
#include "store/io_pool.h"
#include "store/throttle.h"

namespace kvcake::store {

// The layer-blocks of one chunk in a host-tier pool: blocks[l * blocksPerLayer + j] is
// layer l's j-th block of the chunk (validated: in range, distinct, the pool's layout
// matches the spec).
struct ChunkBlocks {
  Pool pool;
  std::vector<int32_t> blocks;
};

// Bytes owned by the caller and kept alive until the op's event completes (a Redis
// reply, a memory-tier value); together the segments are one chunk value, in order.
struct Segment {
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// A chunk value the native side allocated (malloc), handed to JS as an external Buffer.
struct OwnedBytes {
  uint8_t* data = nullptr;
  size_t size = 0;
  OwnedBytes() = default;
  OwnedBytes(const OwnedBytes&) = delete;
  OwnedBytes& operator=(const OwnedBytes&) = delete;
  ~OwnedBytes() { std::free(data); }
  uint8_t* release() {
    uint8_t* p = data;
    data = nullptr;
    return p;
  }
};

// What a finished op reports: the chunk value's bytes and the seconds it spent on its
// thread (I/O, checksum and any bandwidth-cap wait).
struct IoReport {
  int64_t bytes = 0;
  double seconds = 0;
};

// A refused chunk or a failed transfer; what() is the whole message.
struct IoFailure : Error {
  IoFailure(Fault f, const std::string& msg) : Error(msg), fault(f) {}
  Fault fault;
};

struct ChunkIoOptions {
  int threads = 4;
  double readBytesPerSecond = 0;  // 0: no cap
  double readBurstBytes = 0;
};

class ChunkIo {
 public:
  explicit ChunkIo(const ChunkIoOptions& o);

  void setReadCap(double bytesPerSecond, double burstBytes) { throttle_.configure(bytesPerSecond, burstBytes); }
  double readCap() const { return throttle_.rate(); }
  int threads() const { return pool_.threads(); }

  // Loads (capped by the read throttle): a chunk file, or a value in memory, into blocks.
  EventPtr readFile(std::string path, ChunkSpec spec, Digest key, ChunkBlocks dst, Deps deps,
                    std::shared_ptr<IoReport> report);
  EventPtr scatter(std::vector<Segment> src, ChunkSpec spec, Digest key, ChunkBlocks dst, Deps deps,
                   std::shared_ptr<IoReport> report);

  // Saves: blocks into "<dir>/<hex key>.kvc", or into one value in memory.
  EventPtr writeFile(std::string dir, ChunkSpec spec, Digest key, ChunkBlocks src, Deps deps,
                     std::shared_ptr<IoReport> report);
  EventPtr gather(ChunkSpec spec, Digest key, ChunkBlocks src, Deps deps, std::shared_ptr<OwnedBytes> value,
                  std::shared_ptr<IoReport> report);

  // Between tiers, verified on the way (promotion): a file into memory, memory into a file.
  EventPtr readValue(std::string path, ChunkSpec spec, Digest key, std::shared_ptr<OwnedBytes> value,
                     std::shared_ptr<IoReport> report);
  EventPtr writeValue(std::string dir, std::vector<Segment> src, ChunkSpec spec, Digest key,
                      std::shared_ptr<IoReport> report);

  // A plain read of numBlocks blocks' worth of a file from `offset` into the contiguous
  // blocks [firstBlock, firstBlock + numBlocks) of dst, on the same threads, with no checks:
  // the baseline the store's benchmarks set loads beside (same memory, same threads).
  EventPtr readPlain(std::string path, int64_t offset, Pool dst, int64_t firstBlock, int64_t numBlocks,
                     std::shared_ptr<IoReport> report);

 private:
  ReadThrottle throttle_;
  IoPool pool_;  // last: destroyed first, so running tasks still see throttle_
};

// File name of a chunk in a disk-tier directory.
std::string chunkFileName(const Digest& key);

// Asks the kernel to drop a file's cached pages, so the next read comes from the device
// (benchmarks of cold reads; the pages are clean once a chunk file is written). Throws
// Error when the file cannot be opened.
void dropPageCache(const std::string& path);

}  // namespace kvcake::store
