#!/usr/bin/env bash
# npm run test:asan: builds the CPU addon with AddressSanitizer and UndefinedBehaviorSanitizer
# into build-asan/ (the regular build/ is untouched), then runs the fuzz suites and the
# native tests against it. Node itself is not instrumented, so the ASan runtime is preloaded;
# leak checking is off (Node does not free everything at exit). Any sanitizer report aborts
# the process, which fails the test that was running.
#   KVCAKE_FUZZ_SCALE   fuzz size (default 1, as npm test)
#   KVCAKE_FUZZ_SEED    fuzz seed (default npm test's)
#   ASAN_SKIP_BUILD=1   reuse the last build
#   ASAN_OUT=<dir>      build there instead of build-asan/
#   ASAN_TESTS=<regex>  which test files to run (default below)
# Needs g++ with libasan and libubsan (Debian: part of g++). Run it through npm (it uses
# npm's node-gyp).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${ASAN_OUT:-$root/build-asan}
src=$out/src

if ! command -v node-gyp >/dev/null 2>&1; then
  echo "scripts/asan.sh: node-gyp not found; run it as npm run test:asan" >&2
  exit 1
fi
libasan=$(g++ -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
  echo "scripts/asan.sh: g++ has no libasan.so; install g++ (libasan comes with it)" >&2
  exit 1
fi

if [ "${ASAN_SKIP_BUILD:-0}" != 1 ]; then
  echo "== building the CPU addon with -fsanitize=address,undefined into $out"
  rm -rf "$src"
  mkdir -p "$src"
  # The same binding.gyp over the same sources, built in its own directory.
  ln -s "$root/csrc" "$src/csrc"
  ln -s "$root/scripts" "$src/scripts"
  ln -s "$root/node_modules" "$src/node_modules"
  cp binding.gyp "$src/"
  flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
  (cd "$src" && CXXFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" node-gyp rebuild -j "${JOBS:-2}" >"$out/build.log" 2>&1) ||
    { tail -30 "$out/build.log"; exit 1; }
fi
addon=$src/build/Release/kvcake.node

echo "== fuzz suites and native tests under ASan/UBSan ($addon)"
# The RSS test measures the allocator, which ASan replaces: it is left out here.
export KVCAKE_ADDON=$addon
export LD_PRELOAD=$libasan
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
exec node scripts/test.mjs "${ASAN_TESTS:-(fuzz/|native/(append|attention|backend|copy|dtype|errors|lifecycle|workers))}"
