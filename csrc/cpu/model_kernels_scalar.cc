// The model's elementwise kernels at the scalar level: model_kernels_impl.h over the
// portable vector of vec_scalar.h, compiled for the architecture's baseline. Runs on any
// CPU; the dispatch picks it where no SIMD level is available or when it is forced.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cpu/dtype_scalar.h"
#include "cpu/model_paths.h"

#define KVCAKE_CPU_NS scalar
#include "cpu/vec_scalar.h"
#include "cpu/model_kernels_impl.h"
