// Argument checks shared by every backend. The binding calls one of these before handing
// an op to a backend, so kernels (CPU and CUDA) may assume well-formed input: in-range
// block ids and slots, tensors large enough for their shape, matching dtypes. Each check
// throws ArgError with a message that names the argument, the value and the limit.
#pragma once
#include "core/ops.h"

namespace kvcake {

void validatePoolLayout(const KVLayout& layout);
void validateAppend(const AppendOp& op);
void validateDecode(const DecodeOp& op);
void validatePrefill(const PrefillOp& op);
void validateCopy(const CopyOp& op);
void validateWrite(const WriteOp& op);
void validateRead(const ReadOp& op);
void validateReference(const ReferenceOp& op);

// The softmax scale a kernel uses: `scale` when given (> 0), else 1/sqrt(headDim).
float effectiveScale(float scale, int32_t headDim);

}  // namespace kvcake
