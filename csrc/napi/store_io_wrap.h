// The prefix store's native I/O as a JS object (`new StoreIo(options)`), and the chunk
// header inspector. Every op converts and validates its arguments now, queues the work on
// the store's threads and returns an Event (Work) like a backend op; an op that reads or
// writes a pool's blocks belongs to that pool's backend, so it may wait for that backend's
// ops (waitFor) and they may wait for it.
//   readFile(pool, blocks, path, spec, key, waitFor)      -> { bytes, seconds }
//   scatter(pool, blocks, segments, spec, key, waitFor)   -> { bytes, seconds }
//   writeFile(pool, blocks, dir, spec, key, waitFor)      -> { bytes, seconds }
//   gather(pool, blocks, spec, key, waitFor)              -> { value: Buffer, bytes, seconds }
//   readValue(path, spec, key)                            -> { value: Buffer, bytes, seconds }
//   writeValue(dir, segments, spec, key)                  -> { bytes, seconds }
//   setReadCap(bytesPerSecond, burstBytes), readCap, threads
// inspectChunkHeader(bytes, spec?, key?) -> { ok, fault, message, header? } (synchronous)
#pragma once
#include "napi/common.h"

namespace kvcake::napi {

// Adds StoreIo and inspectChunkHeader to the module's exports.
void registerStore(Napi::Env env, Napi::Object exports);

}  // namespace kvcake::napi
