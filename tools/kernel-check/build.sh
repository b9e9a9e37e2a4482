#!/bin/sh
# Builds tools/kernel-check into build/kernel-check (or $1) with the same split as the addon:
# every file at the x86-64 baseline, the *_avx2.cc / *_avx512.cc files raising their own
# target by pragma.
set -e
cd "$(dirname "$0")/../.."
out="${1:-build/kernel-check}"
mkdir -p "$(dirname "$out")"
exec g++ -std=c++17 -O3 -I. -Icsrc tools/kernel-check/main.cc tools/kernel-check/bench.cc csrc/cpu/attention*.cc csrc/cpu/kernels_*.cc \
  csrc/cpu/isa.cc csrc/common/thread_pool.cc -o "$out" -lpthread
