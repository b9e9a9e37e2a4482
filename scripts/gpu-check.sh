#!/usr/bin/env bash
# The one command to validate the CUDA backend on a GPU machine, from the repo root:
#   source .device/unpack-node.sh   # or any Node >= 20 on PATH
#   scripts/gpu-check.sh
# Expects node_modules and build-cuda/ (from `npm run build:cuda`; optionally
# build-cuda/cuda-check from tools/cuda-check/build.sh) to be present; builds what is
# missing when nvcc is available. Steps, each with its own time cap inside an overall
# budget (GPU_CHECK_SECONDS, default 530 s):
#   1. nvidia-smi and the addon's view of CUDA (cudaInfo)
#   2. the full test suite (every native test runs on cpu and cuda when CUDA is usable)
#   3. the standalone checker (randomized kernels vs a CPU reference, then timings)
#   4. the GPU benchmark group
#   5. compute-sanitizer memcheck on the checker and on the native tests
#   6. the host models of the kernels (when numpy is there)
#   7. every benchmark group on the CUDA backend, with what is left of the budget
# Logs and JSON go to $OUT (or ./gpu-out). Exit status: number of failed steps.
set -u
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
BUDGET="${GPU_CHECK_SECONDS:-530}"
START=$SECONDS
FAILED=0
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $(( BUDGET - (SECONDS - START) )); }
# step NAME CAP_SECONDS LOG cmd...: runs cmd with min(cap, time left), logs, records the result.
step() {
  local name="$1" cap="$2" log="$3"
  shift 3
  local t
  t=$(left)
  if (( t < 15 )); then
    note "SKIP  $name (time budget spent)"
    return
  fi
  (( cap < t )) && t=$cap
  echo "== $name (cap ${t}s) -> $log"
  local t0=$SECONDS
  timeout --kill-after=10 "$t" "$@" > "$log" 2>&1
  local rc=$?
  tail -n 25 "$log"
  if (( rc == 0 )); then
    note "PASS  $name ($(( SECONDS - t0 )) s)"
  else
    FAILED=$(( FAILED + 1 ))
    note "FAIL  $name (exit $rc$( (( rc == 124 || rc == 137 )) && echo ', timed out'), $(( SECONDS - t0 )) s, see $(basename "$log"))"
  fi
}

nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt"

if [[ ! -f build-cuda/Release/kvcake.node ]]; then
  if command -v nvcc > /dev/null; then
    step "build addon (npm run build:cuda)" 300 "$OUT/build.log" npm run build:cuda
  else
    note "FAIL  no build-cuda/Release/kvcake.node and no nvcc to build it"
    FAILED=$(( FAILED + 1 ))
  fi
fi
if [[ ! -x build-cuda/cuda-check ]] && command -v nvcc > /dev/null; then
  step "build cuda-check" 240 "$OUT/cuda-check-build.log" tools/cuda-check/build.sh build-cuda/cuda-check
fi

# Tests and benchmarks must load the CUDA-capable addon, not a CPU-only build/ that may be newer.
[[ -f build-cuda/Release/kvcake.node ]] && export KVCAKE_ADDON="$PWD/build-cuda/Release/kvcake.node"

node --import tsx -e "
  import('./lib/index.js').then((m) => {
    console.log('addon:', m.addonPath());
    console.log('cudaInfo:', JSON.stringify(m.cudaInfo()));
    if (m.cudaInfo().usable) {
      const be = m.createBackend({ backend: 'cuda' });
      console.log('device:', be.deviceName);
    }
  });
" 2>&1 | tee "$OUT/cuda-info.txt"

step "tests (cpu + cuda)" 170 "$OUT/tests.log" node scripts/test.mjs

if [[ -x build-cuda/cuda-check ]]; then
  step "cuda-check (kernels vs CPU reference, timings)" 120 "$OUT/cuda-check.log" build-cuda/cuda-check
else
  note "SKIP  cuda-check (build-cuda/cuda-check was not built)"
fi

rm -f bench/results/*.json
# The GPU group early, so its numbers exist even if a later step eats the budget.
step "bench gpu group (--backend cuda)" 90 "$OUT/bench-gpu.log" node --import tsx bench/run.ts --backend cuda gpu
cp bench/results/*.json "$OUT/" 2> /dev/null || true

SAN="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2> /dev/null | head -n 1)"
if [[ -n "$SAN" ]]; then
  if [[ -x build-cuda/cuda-check ]]; then
    step "compute-sanitizer memcheck (cuda-check --check)" 100 "$OUT/memcheck-cuda-check.log" \
      "$SAN" --tool memcheck --error-exitcode 86 --print-limit 20 build-cuda/cuda-check --check
  fi
  step "compute-sanitizer memcheck (native tests)" 130 "$OUT/memcheck-tests.log" \
    "$SAN" --tool memcheck --target-processes all --error-exitcode 86 --print-limit 20 node scripts/test.mjs native
else
  note "SKIP  compute-sanitizer (not installed)"
fi

if python3 -c 'import numpy' 2> /dev/null; then
  step "kernel models (tools/cuda-check/models)" 30 "$OUT/models.log" \
    bash -c 'for f in tools/cuda-check/models/*.py; do python3 "$f" || exit 1; done'
fi

# Every group on the CUDA backend (native groups use it; simulator groups do not care),
# with what is left of the budget; each group writes its JSON when done.
step "benchmarks, all groups (--backend cuda)" 240 "$OUT/bench.log" node --import tsx bench/run.ts --backend cuda
cp bench/results/*.json "$OUT/" 2> /dev/null || true

note "gpu-check: $FAILED failed step(s), $(( SECONDS - START )) s; logs in $OUT"
exit "$FAILED"
