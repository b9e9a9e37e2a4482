#include "store/chunk_io.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace kvcake::store {

namespace {

using Clock = std::chrono::steady_clock;

// Payload moves in batches of about this many bytes: preadv/pwritev a batch, then hash it
// while it is still in cache.
constexpr size_t kBatchBytes = size_t(1) << 20;
constexpr int kMaxIov = IOV_MAX < 512 ? IOV_MAX : 512;

// strerror_r is the GNU one (returns the text) or the XSI one (returns 0 and fills buf).
inline const char* describe(char* text, char*) { return text; }
inline const char* describe(int r, char* buf) { return r == 0 ? buf : "unknown error"; }

std::string errnoText(int e) {
  const char* name = nullptr;
  switch (e) {
    case ENOENT: name = "ENOENT"; break;
    case ENOSPC: name = "ENOSPC"; break;
    case EFBIG: name = "EFBIG"; break;
    case EACCES: name = "EACCES"; break;
    case EPERM: name = "EPERM"; break;
    case EROFS: name = "EROFS"; break;
    case EIO: name = "EIO"; break;
    case EDQUOT: name = "EDQUOT"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case EISDIR: name = "EISDIR"; break;
    case EMFILE: name = "EMFILE"; break;
    case ENFILE: name = "ENFILE"; break;
    case EEXIST: name = "EEXIST"; break;
    case EINVAL: name = "EINVAL"; break;
    case ENOMEM: name = "ENOMEM"; break;
    default: break;
  }
  char buf[128];
  const std::string msg = describe(strerror_r(e, buf, sizeof buf), buf);
  std::ostringstream s;
  if (name)
    s << name << " (" << msg << ")";
  else
    s << "errno " << e << " (" << msg << ")";
  return s.str();
}

template <typename... T>
[[noreturn]] void fail(const char* op, const Digest& key, Fault f, const T&... parts) {
  std::ostringstream s;
  s << op << " " << shortHex(key) << ": " << faultCode(f) << ": ";
  (s << ... << parts);
  throw IoFailure(f, s.str());
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  int get() const { return fd_; }
  // close() reports deferred write errors (NFS and others): callers that wrote check it.
  int close() {
    const int r = ::close(fd_);
    fd_ = -1;
    return r;
  }

 private:
  int fd_;
};

// Reads up to n bytes at off; fewer only at end of file. -1 with errno on an error.
ssize_t readFull(int fd, uint8_t* p, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, p + done, n - done, off + off_t(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    done += size_t(r);
  }
  return ssize_t(done);
}

// preadv / pwritev of every byte of iov[0..n) at off, advancing over short transfers.
// Returns the bytes moved (fewer than asked only for a read that met end of file), -1 on error.
template <bool kWrite>
ssize_t vectorFull(int fd, iovec* iov, int n, off_t off) {
  size_t done = 0;
  int i = 0;
  while (i < n) {
    const int cnt = n - i < kMaxIov ? n - i : kMaxIov;
    const ssize_t r = kWrite ? ::pwritev(fd, iov + i, cnt, off + off_t(done)) : ::preadv(fd, iov + i, cnt, off + off_t(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) {
      if (kWrite) {
        errno = EIO;  // a write that moves nothing and reports no error: do not spin
        return -1;
      }
      break;
    }
    done += size_t(r);
    size_t left = size_t(r);
    while (i < n && left >= iov[i].iov_len) {
      left -= iov[i].iov_len;
      ++i;
    }
    if (left) {
      iov[i].iov_base = static_cast<uint8_t*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  return ssize_t(done);
}

int syncData(int fd) {
#if defined(__APPLE__)
  return ::fsync(fd);
#else
  return ::fdatasync(fd);
#endif
}

// Batches of consecutive chunk blocks (file order) for one vectored call.
struct Batch {
  int64_t first = 0, count = 0;
};

template <typename F>
void forEachBatch(int64_t numBlocks, int64_t blockBytes, F&& f) {
  const int64_t perBatch = std::max<int64_t>(1, std::min<int64_t>(kMaxIov, int64_t(kBatchBytes) / blockBytes));
  for (int64_t b = 0; b < numBlocks; b += perBatch) f(Batch{b, std::min(perBatch, numBlocks - b)});
}

uint8_t* blockPtr(const ChunkBlocks& cb, int64_t blockBytes, int64_t i) {
  return static_cast<uint8_t*>(cb.pool.mem->data) + int64_t(cb.blocks[size_t(i)]) * blockBytes;
}

// Walks a list of segments as one byte stream.
class SegmentCursor {
 public:
  explicit SegmentCursor(const std::vector<Segment>& s) : s_(s) {}
  // Calls f(ptr, len) over the next n bytes (pieces within segments); false if they run out.
  template <typename F>
  bool take(size_t n, F&& f) {
    while (n > 0) {
      if (idx_ >= s_.size()) return false;
      const Segment& seg = s_[idx_];
      const size_t avail = seg.size - off_;
      if (avail == 0) {
        ++idx_;
        off_ = 0;
        continue;
      }
      const size_t k = avail < n ? avail : n;
      f(seg.data + off_, k);
      off_ += k;
      n -= k;
    }
    return true;
  }

 private:
  const std::vector<Segment>& s_;
  size_t idx_ = 0, off_ = 0;
};

size_t totalBytes(const std::vector<Segment>& s) {
  size_t n = 0;
  for (const auto& x : s) n += x.size;
  return n;
}

void checkSize(const char* op, const Digest& key, const ChunkSpec& spec, int64_t have, const char* what) {
  if (have < spec.valueBytes())
    fail(op, key, Fault::Truncated, "the ", what, " has ", have, " bytes, the chunk needs ", spec.valueBytes());
  if (have > spec.valueBytes())
    fail(op, key, Fault::Size, "the ", what, " has ", have, " bytes, more than the chunk's ", spec.valueBytes());
}

void checkPayload(const char* op, const Digest& key, const HeaderFields& h, const PayloadHasher& hasher) {
  if (hasher.digest() != h.payloadChecksum)
    fail(op, key, Fault::PayloadChecksum, "the payload does not match the header's checksum (corrupted payload)");
}

// Checks a chunk value held in memory segments before any payload byte is used: its header
// (read through `cur`, which is left at the payload) verified against the spec and key, and
// its size exactly the chunk's.
void verifyValueHeader(const char* op, const ChunkSpec& spec, const Digest& key, SegmentCursor& cur, size_t total,
                       HeaderFields* h) {
  uint8_t header[kHeaderBytes];
  const size_t hn = std::min(total, kHeaderBytes);
  size_t at = 0;
  cur.take(hn, [&](const uint8_t* p, size_t n) {
    std::memcpy(header + at, p, n);
    at += n;
  });
  const Verdict v = verifyHeader(header, hn, spec, key, h);
  if (!v.ok()) fail(op, key, v.fault, v.detail);
  checkSize(op, key, spec, int64_t(total), "value");
}

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Opens a stored chunk's file and checks it before any payload byte is read: a regular
// file, its header (into `header`, fields into `h`) verified against the spec and key, and
// its size exactly the chunk's. Any mismatch fails as the fault it is.
Fd openChunkFile(const char* op, const std::string& path, const ChunkSpec& spec, const Digest& key,
                 uint8_t (&header)[kHeaderBytes], HeaderFields* h) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    if (errno == ENOENT) fail(op, key, Fault::Missing, "no chunk file (evicted, or never written)");
    fail(op, key, Fault::Io, "open: ", errnoText(errno));
  }
  Fd fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) fail(op, key, Fault::Io, "fstat: ", errnoText(errno));
  if (!S_ISREG(st.st_mode)) fail(op, key, Fault::Io, "not a regular file");
  const ssize_t hn = readFull(fd.get(), header, kHeaderBytes, 0);
  if (hn < 0) fail(op, key, Fault::Io, "read header: ", errnoText(errno));
  const Verdict v = verifyHeader(header, size_t(hn), spec, key, h);
  if (!v.ok()) fail(op, key, v.fault, v.detail);
  checkSize(op, key, spec, int64_t(st.st_size), "file");
  return fd;
}

// A chunk value's memory. Values are tens of MiB: huge pages (where THP is 'madvise') take
// the first-touch page faults from thousands to a few, which is most of a fresh copy's cost.
uint8_t* allocValue(size_t n) {
  constexpr size_t kHuge = size_t(2) << 20;
  if (n < 2 * kHuge) return static_cast<uint8_t*>(std::malloc(n));
  const size_t rounded = (n + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, rounded);
  if (p) ::madvise(p, rounded, MADV_HUGEPAGE);
  return static_cast<uint8_t*>(p);
}

std::atomic<uint64_t> tempSeq{0};

std::string tempName(const std::string& dir, const Digest& key) {
  std::ostringstream s;
  s << dir << "/.tmp." << hex(key) << "." << ::getpid() << "." << tempSeq.fetch_add(1);
  return s.str();
}

// Writes a temp file with `write(fd)`, makes it durable and renames it into place. On any
// failure the temp file is removed and nothing is visible under the final name.
template <typename W>
void atomicWrite(const char* op, const Digest& key, const std::string& dir, W&& write) {
  const std::string tmp = tempName(dir, key);
  const std::string dst = dir + "/" + chunkFileName(key);
  const int raw = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0) fail(op, key, Fault::Io, "cannot create a temp file in ", dir, ": ", errnoText(errno));
  Fd fd(raw);
  try {
    write(fd.get());
    if (syncData(fd.get()) != 0) fail(op, key, Fault::Io, "fdatasync: ", errnoText(errno));
    if (fd.close() != 0) fail(op, key, Fault::Io, "close: ", errnoText(errno));
    if (::rename(tmp.c_str(), dst.c_str()) != 0) fail(op, key, Fault::Io, "rename into place: ", errnoText(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // The rename is durable once the directory is: best effort (some file systems refuse
  // fsync on a directory; the chunk is already complete and visible either way).
  const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

}  // namespace

std::string chunkFileName(const Digest& key) { return hex(key) + ".kvc"; }

void dropPageCache(const std::string& path) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) throw Error("dropPageCache: open " + path + ": " + errnoText(errno));
  Fd fd(raw);
#if defined(POSIX_FADV_DONTNEED)
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
#endif
}

ChunkIo::ChunkIo(const ChunkIoOptions& o) : pool_(o.threads) { throttle_.configure(o.readBytesPerSecond, o.readBurstBytes); }

EventPtr ChunkIo::readFile(std::string path, ChunkSpec spec, Digest key, ChunkBlocks dst, Deps deps,
                           std::shared_ptr<IoReport> report) {
  const Clock::time_point asked = Clock::now();
  return pool_.submit("readFile", std::move(deps), [this, path = std::move(path), spec = std::move(spec), key,
                                                   dst = std::move(dst), report, asked] {
    const char* op = "readFile";
    const Clock::time_point t0 = Clock::now();
    uint8_t header[kHeaderBytes];
    HeaderFields h;
    Fd fd = openChunkFile(op, path, spec, key, header, &h);
    const Clock::time_point deadline = throttle_.reserve(spec.valueBytes(), asked);
#if defined(POSIX_FADV_WILLNEED)
    // The payload is read in small batches (each hashed while in cache): ask for all of it
    // now, so the device works ahead of the batches instead of waiting for each.
    ::posix_fadvise(fd.get(), off_t(kHeaderBytes), off_t(spec.payloadBytes()), POSIX_FADV_WILLNEED);
#endif

    const int64_t bb = spec.blockBytes();
    PayloadHasher hasher;
    std::vector<iovec> iov;
    const int64_t nb = spec.blocksPerChunk();
    forEachBatch(nb, bb, [&](Batch b) {
      std::this_thread::sleep_until(throttle_.arrived(deadline, (nb - b.first) * bb));
      iov.resize(size_t(b.count));
      for (int64_t i = 0; i < b.count; ++i) iov[size_t(i)] = iovec{blockPtr(dst, bb, b.first + i), size_t(bb)};
      const off_t off = off_t(kHeaderBytes) + off_t(b.first * bb);
      const ssize_t r = vectorFull<false>(fd.get(), iov.data(), int(b.count), off);
      if (r < 0) fail(op, key, Fault::Io, "read payload: ", errnoText(errno));
      if (r < b.count * bb)
        fail(op, key, Fault::Truncated, "the file ended at byte ", int64_t(off) + r, " (shortened while being read)");
      for (int64_t i = 0; i < b.count; ++i) hasher.update(blockPtr(dst, bb, b.first + i), size_t(bb));
    });
    checkPayload(op, key, h, hasher);
    // Marks the chunk recently used for the LRU order rebuilt at start (best effort).
    ::futimens(fd.get(), nullptr);
    std::this_thread::sleep_until(deadline);
    report->bytes = spec.valueBytes();
    report->seconds = secondsSince(t0);
  });
}

EventPtr ChunkIo::scatter(std::vector<Segment> src, ChunkSpec spec, Digest key, ChunkBlocks dst, Deps deps,
                          std::shared_ptr<IoReport> report) {
  const Clock::time_point asked = Clock::now();
  return pool_.submit("scatter", std::move(deps), [this, src = std::move(src), spec = std::move(spec), key,
                                                  dst = std::move(dst), report, asked] {
    const char* op = "scatter";
    const Clock::time_point t0 = Clock::now();
    const size_t total = totalBytes(src);
    SegmentCursor cur(src);
    HeaderFields h;
    verifyValueHeader(op, spec, key, cur, total, &h);
    const Clock::time_point deadline = throttle_.reserve(spec.valueBytes(), asked);

    const int64_t bb = spec.blockBytes();
    PayloadHasher hasher;
    const int64_t nb = spec.blocksPerChunk();
    forEachBatch(nb, bb, [&](Batch b) {
      std::this_thread::sleep_until(throttle_.arrived(deadline, (nb - b.first) * bb));
      for (int64_t i = 0; i < b.count; ++i) {
        uint8_t* d = blockPtr(dst, bb, b.first + i);
        cur.take(size_t(bb), [&](const uint8_t* p, size_t n) {
          std::memcpy(d, p, n);
          d += n;
        });
      }
      for (int64_t i = 0; i < b.count; ++i) hasher.update(blockPtr(dst, bb, b.first + i), size_t(bb));
    });
    checkPayload(op, key, h, hasher);
    std::this_thread::sleep_until(deadline);
    report->bytes = spec.valueBytes();
    report->seconds = secondsSince(t0);
  });
}

EventPtr ChunkIo::writeFile(std::string dir, ChunkSpec spec, Digest key, ChunkBlocks src, Deps deps,
                            std::shared_ptr<IoReport> report) {
  return pool_.submit("writeFile", std::move(deps), [dir = std::move(dir), spec = std::move(spec), key,
                                                    src = std::move(src), report] {
    const char* op = "writeFile";
    const Clock::time_point t0 = Clock::now();
    atomicWrite(op, key, dir, [&](int fd) {
      const int64_t bb = spec.blockBytes();
      PayloadHasher hasher;
      std::vector<iovec> iov;
      forEachBatch(spec.blocksPerChunk(), bb, [&](Batch b) {
        iov.resize(size_t(b.count));
        for (int64_t i = 0; i < b.count; ++i) {
          uint8_t* p = blockPtr(src, bb, b.first + i);
          hasher.update(p, size_t(bb));
          iov[size_t(i)] = iovec{p, size_t(bb)};
        }
        const off_t off = off_t(kHeaderBytes) + off_t(b.first * bb);
        if (vectorFull<true>(fd, iov.data(), int(b.count), off) < 0) fail(op, key, Fault::Io, "write payload: ", errnoText(errno));
      });
      uint8_t header[kHeaderBytes];
      encodeHeader(spec, key, hasher.digest(), header);
      iovec hv{header, kHeaderBytes};
      if (vectorFull<true>(fd, &hv, 1, 0) < 0) fail(op, key, Fault::Io, "write header: ", errnoText(errno));
    });
    report->bytes = spec.valueBytes();
    report->seconds = secondsSince(t0);
  });
}

EventPtr ChunkIo::gather(ChunkSpec spec, Digest key, ChunkBlocks src, Deps deps, std::shared_ptr<OwnedBytes> value,
                         std::shared_ptr<IoReport> report) {
  return pool_.submit("gather", std::move(deps), [spec = std::move(spec), key, src = std::move(src), value, report] {
    const char* op = "gather";
    const Clock::time_point t0 = Clock::now();
    const size_t n = size_t(spec.valueBytes());
    uint8_t* out = allocValue(n);
    if (!out) fail(op, key, Fault::Io, "cannot allocate ", n, " bytes for the chunk value");
    value->data = out;
    value->size = n;
    const int64_t bb = spec.blockBytes();
    PayloadHasher hasher;
    uint8_t* p = out + kHeaderBytes;
    for (int64_t i = 0; i < spec.blocksPerChunk(); ++i, p += bb) {
      std::memcpy(p, blockPtr(src, bb, i), size_t(bb));
      hasher.update(p, size_t(bb));
    }
    encodeHeader(spec, key, hasher.digest(), out);
    report->bytes = int64_t(n);
    report->seconds = secondsSince(t0);
  });
}

EventPtr ChunkIo::readValue(std::string path, ChunkSpec spec, Digest key, std::shared_ptr<OwnedBytes> value,
                            std::shared_ptr<IoReport> report) {
  return pool_.submit("readValue", {}, [path = std::move(path), spec = std::move(spec), key, value, report] {
    const char* op = "readValue";
    const Clock::time_point t0 = Clock::now();
    uint8_t header[kHeaderBytes];
    HeaderFields h;
    Fd fd = openChunkFile(op, path, spec, key, header, &h);
    const size_t n = size_t(spec.valueBytes());
    uint8_t* out = allocValue(n);
    if (!out) fail(op, key, Fault::Io, "cannot allocate ", n, " bytes for the chunk value");
    value->data = out;
    value->size = n;
    std::memcpy(out, header, kHeaderBytes);
    const ssize_t r = readFull(fd.get(), out + kHeaderBytes, n - kHeaderBytes, off_t(kHeaderBytes));
    if (r < 0) fail(op, key, Fault::Io, "read payload: ", errnoText(errno));
    if (size_t(r) < n - kHeaderBytes) fail(op, key, Fault::Truncated, "the file ended at byte ", int64_t(kHeaderBytes) + r);
    PayloadHasher hasher;
    hasher.update(out + kHeaderBytes, n - kHeaderBytes);
    checkPayload(op, key, h, hasher);
    report->bytes = int64_t(n);
    report->seconds = secondsSince(t0);
  });
}

EventPtr ChunkIo::readPlain(std::string path, int64_t offset, Pool dst, int64_t firstBlock, int64_t numBlocks,
                            std::shared_ptr<IoReport> report) {
  return pool_.submit("readPlain", {}, [path = std::move(path), offset, dst = std::move(dst), firstBlock, numBlocks, report] {
    const Clock::time_point t0 = Clock::now();
    const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) throw Error("readPlain: open " + path + ": " + errnoText(errno));
    Fd fd(raw);
    const int64_t bb = dst.layout.blockBytes();
    uint8_t* p = static_cast<uint8_t*>(dst.mem->data) + firstBlock * bb;
    const ssize_t r = readFull(fd.get(), p, size_t(numBlocks * bb), off_t(offset));
    if (r < 0) throw Error("readPlain: read " + path + ": " + errnoText(errno));
    report->bytes = r;
    report->seconds = secondsSince(t0);
  });
}

EventPtr ChunkIo::writeValue(std::string dir, std::vector<Segment> src, ChunkSpec spec, Digest key,
                             std::shared_ptr<IoReport> report) {
  return pool_.submit("writeValue", {}, [dir = std::move(dir), src = std::move(src), spec = std::move(spec), key, report] {
    const char* op = "writeValue";
    const Clock::time_point t0 = Clock::now();
    // Verify before persisting: a damaged value must not become a file that looks durable.
    const size_t total = totalBytes(src);
    SegmentCursor cur(src);
    HeaderFields h;
    verifyValueHeader(op, spec, key, cur, total, &h);
    PayloadHasher hasher;
    cur.take(total - kHeaderBytes, [&](const uint8_t* p, size_t n) { hasher.update(p, n); });
    checkPayload(op, key, h, hasher);
    atomicWrite(op, key, dir, [&](int fd) {
      std::vector<iovec> iov;
      for (const auto& s : src)
        if (s.size) iov.push_back(iovec{const_cast<uint8_t*>(s.data), s.size});
      if (vectorFull<true>(fd, iov.data(), int(iov.size()), 0) < 0) fail(op, key, Fault::Io, "write: ", errnoText(errno));
    });
    report->bytes = int64_t(total);
    report->seconds = secondsSince(t0);
  });
}

}  // namespace kvcake::store
