// The CPU backend: ordinary 64-byte-aligned memory in both tiers (the device tier with its
// own capacity, so offload policies can be exercised without a GPU), three in-order queues
// each served by one native thread, kernels parallel over ThreadPool::global().
#pragma once
#include <cstdint>
#include <memory>

#include "core/backend.h"

namespace kvcake {

struct CpuBackendOptions {
  // Capacity of the device tier in bytes; <= 0 means KVCAKE_CPU_DEVICE_BYTES if set, else
  // no limit beyond what the system can allocate.
  int64_t deviceCapacityBytes = 0;
};

std::unique_ptr<Backend> createCpuBackend(const CpuBackendOptions& options);

}  // namespace kvcake
