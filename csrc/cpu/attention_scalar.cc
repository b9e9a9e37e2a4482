// Attention kernels at the scalar level: attention_impl.h over the portable vector of
// vec_scalar.h, compiled for the architecture's baseline. Runs on any CPU; the dispatch
// picks it where no SIMD level is available or when it is forced.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "cpu/attention_paths.h"
#include "cpu/paged_rows.h"

#define KVCAKE_CPU_NS scalar
#include "cpu/vec_scalar.h"
#include "cpu/attention_impl.h"
