// Loading tensor data from files into device memory: one native thread per backend reads
// each byte range in bounded chunks (core/file_load.h), converts dtype on the host into one
// of two pinned staging buffers, and copies it with cudaMemcpyAsync on its own stream while
// the next chunk is read. No second full copy of a tensor is ever held.
#pragma once
#include <memory>

#include "core/backend.h"
#include "core/kernel_set.h"

namespace kvcake::cuda {

class WeightLoader {
 public:
  explicit WeightLoader(int device);
  ~WeightLoader();
  // dst: device pointer of the tensor's element 0. The op keeps its tensor alive.
  EventPtr push(std::shared_ptr<LoadFileOp> op, void* dst, Deps deps);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcake::cuda
