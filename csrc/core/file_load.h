// Reading tensor bytes from a file (safetensors payloads) on a native thread: the range is
// checked against the file's size before anything is read, reads are pread loops that
// survive EINTR and short reads, and a file that shrinks under us is an error, not a
// partial tensor. Shared by the CPU backend (straight into the tensor) and the CUDA
// backend (through pinned staging).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "core/kernel_set.h"

namespace kvcake {

class FileSource {
 public:
  // Opens `path` and checks that [offset, offset + bytes) lies inside it.
  FileSource(const std::string& path, uint64_t offset, uint64_t bytes);
  ~FileSource();
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  // Reads n bytes at `at` bytes into the range.
  void read(void* into, uint64_t at, size_t n);

 private:
  std::string path_;
  uint64_t offset_, bytes_;
  int fd_ = -1;
};

// Bytes per chunk of a load: bounds the staging a load holds.
constexpr size_t kLoadChunkBytes = size_t(8) << 20;

// n elements of src (type st) into dst (type dt); host memory. Portable C++ at the
// baseline (the CPU backend passes its own dispatched conversion to loadFileToHost).
void convertElements(const void* src, DType st, void* dst, DType dt, int64_t n);
using ConvertFn = std::function<void(const void* src, DType st, void* dst, DType dt, int64_t n)>;

// The whole of op into host memory `tensorData` (the destination tensor's element 0);
// dtype conversions through `convert` when given, else convertElements.
void loadFileToHost(const LoadFileOp& op, void* tensorData, const ConvertFn& convert = nullptr);

}  // namespace kvcake
