#include "core/file_load.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "cpu/dtype_scalar.h"

namespace kvcake {

namespace {
std::string sysError() { return std::strerror(errno); }
}  // namespace

FileSource::FileSource(const std::string& path, uint64_t offset, uint64_t bytes)
    : path_(path), offset_(offset), bytes_(bytes) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error("loadTensor: cannot open " + path + ": " + sysError());
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    const std::string e = sysError();
    ::close(fd_);
    throw Error("loadTensor: cannot stat " + path + ": " + e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error("loadTensor: " + path + " is not a regular file");
  }
  const uint64_t size = uint64_t(st.st_size);
  if (offset > size || bytes > size - offset) {
    ::close(fd_);
    throw Error("loadTensor: " + path + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                ") are past the end of the file (" + std::to_string(size) + " bytes)");
  }
#ifdef POSIX_FADV_SEQUENTIAL
  ::posix_fadvise(fd_, off_t(offset), off_t(bytes), POSIX_FADV_SEQUENTIAL);
#endif
}

FileSource::~FileSource() {
  if (fd_ >= 0) ::close(fd_);
}

void FileSource::read(void* into, uint64_t at, size_t n) {
  char* p = static_cast<char*>(into);
  uint64_t pos = offset_ + at;
  while (n > 0) {
    const ssize_t r = ::pread(fd_, p, n, off_t(pos));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error("loadTensor: reading " + path_ + " at byte " + std::to_string(pos) + ": " + sysError());
    }
    if (r == 0)
      throw Error("loadTensor: " + path_ + " ended at byte " + std::to_string(pos) + ", inside the range [" +
                  std::to_string(offset_) + ", " + std::to_string(offset_ + bytes_) + ") (truncated while loading?)");
    p += r;
    pos += uint64_t(r);
    n -= size_t(r);
  }
}

void convertElements(const void* src, DType st, void* dst, DType dt, int64_t n) {
  if (st == dt) {
    std::memcpy(dst, src, size_t(n) * dtypeSize(st));
    return;
  }
  for (int64_t i = 0; i < n; ++i) cpu::storeElem(dst, i, dt, cpu::loadElem(src, i, st));
}

void loadFileToHost(const LoadFileOp& op, void* tensorData, const ConvertFn& convert) {
  const size_t srcElem = dtypeSize(op.srcType), dstElem = dtypeSize(op.dst.dtype);
  const uint64_t bytes = uint64_t(op.numel) * srcElem;
  FileSource f(op.path, op.fileOffset, bytes);
  char* dst = static_cast<char*>(tensorData) + size_t(op.dstOffset) * dstElem;
  if (op.srcType == op.dst.dtype) {
    // Same dtype: straight into the tensor, no staging at all.
    for (uint64_t at = 0; at < bytes; at += kLoadChunkBytes)
      f.read(dst + at, at, size_t(std::min<uint64_t>(kLoadChunkBytes, bytes - at)));
    return;
  }
  const int64_t chunkElems = int64_t(kLoadChunkBytes / srcElem);
  std::unique_ptr<char[]> buf(new char[size_t(chunkElems) * srcElem]);
  for (int64_t e = 0; e < op.numel; e += chunkElems) {
    const int64_t n = std::min(chunkElems, op.numel - e);
    f.read(buf.get(), uint64_t(e) * srcElem, size_t(n) * srcElem);
    if (convert) convert(buf.get(), op.srcType, dst + size_t(e) * dstElem, op.dst.dtype, n);
    else convertElements(buf.get(), op.srcType, dst + size_t(e) * dstElem, op.dst.dtype, n);
  }
}

}  // namespace kvcake
