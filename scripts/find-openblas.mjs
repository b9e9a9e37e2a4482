// Prints the path of a static, single-threaded OpenBLAS archive to link into the addon, or
// nothing. binding.gyp and CMakeLists.txt call it at configure time. Without one the build
// goes on with kvcake's own GEMM kernels only (the default path anyway).
//   KVCAKE_OPENBLAS=/path/libopenblas.a   use this archive
//   KVCAKE_OPENBLAS=off                   never link OpenBLAS
// Otherwise Debian's libopenblas-serial-dev (`apt-get install libopenblas-serial-dev`).
// Only the serial build is used: kvcake runs it on its own thread pool, one call per
// thread, so it never starts threads of its own to compete with the pool.
import { existsSync } from 'node:fs';

const forced = process.env.KVCAKE_OPENBLAS;
if (forced === 'off' || forced === '0') process.exit(0);
const candidates = forced ? [forced] : [
  '/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.a',
];
const found = candidates.find((p) => existsSync(p));
if (forced && !found) {
  console.error(`KVCAKE_OPENBLAS=${forced} does not exist`);
  process.exit(1);
}
if (found) process.stdout.write(found);
