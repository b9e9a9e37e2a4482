#!/usr/bin/env bash
# Builds the standalone CUDA checker with nvcc alone (no Node, no CMake), from the repo root:
#   tools/cuda-check/build.sh [output]       default output: build-cuda/cuda-check
# Ampere and Hopper machine code (sm_80, sm_90) plus compute_90 PTX, like the addon.
set -euo pipefail
out="${1:-build-cuda/cuda-check}"
mkdir -p "$(dirname "$out")"
NVCC="${NVCC:-nvcc}"
exec "$NVCC" -std=c++17 -O2 -lineinfo -I csrc \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
  tools/cuda-check/main.cu csrc/cuda/*.cu csrc/core/validate.cc -o "$out" ${NVCC_THREADS:+--threads "$NVCC_THREADS"}
