// The CPU backend: ordinary 64-byte-aligned memory in both tiers (the device tier with its
// own capacity, so offload policies can be exercised without a GPU), three in-order queues
// each served by one native thread, kernels parallel over ThreadPool::global().
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/backend.h"

namespace kvcake {

struct CpuBackendOptions {
  // Capacity of the device tier in bytes; <= 0 means KVCAKE_CPU_DEVICE_BYTES if set, else
  // no limit beyond what the system can allocate.
  int64_t deviceCapacityBytes = 0;
  // The ISA level kernels may use (cpu/isa.h): empty means KVCAKE_CPU_ISA if set, else
  // the best this CPU supports. An unknown or unsupported level makes creation throw.
  std::string isa;
};

std::unique_ptr<Backend> createCpuBackend(const CpuBackendOptions& options);

}  // namespace kvcake
