// What main.cc (checks, options) and bench.cc (microbenchmarks) share.
#pragma once

#include "common/thread_pool.h"
#include "common/types.h"
#include "cpu/isa.h"

namespace kvcake::kernel_check {

extern cpu::Isa g_isa;       // the level under check, or benchmarked
extern DType g_benchDtype;   // the decode table's KV dtype (--dtype)

void benchDecode(ThreadPool& tp, bool full);
void benchPrefill(ThreadPool& tp, bool full);
void benchCopy(ThreadPool& tp, bool full);
void benchAppend(ThreadPool& tp);

}  // namespace kvcake::kernel_check
