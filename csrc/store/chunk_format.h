// The stored value of one prefix chunk: a fixed header, then the payload.
//
//   header (kHeaderBytes = 4096; the payload starts page-aligned in a file), little-endian:
//     0   8  magic "KVCAKECH"
//     8   4  format version (1)
//     12  4  header bytes (4096) = payload offset
//     16  32 chunk key (SHA-256 chain, see lib/store/keys.ts)
//     48  32 model fingerprint digest (SHA-256 of architecture, layers, KV heads, head dim, dtype)
//     80  4  numLayers        84 4 numKvHeads     88 4 headDim      92 4 dtype (0 fp32, 1 fp16, 2 bf16)
//     96  4  blockSize        100 4 blocksPerLayer 104 4 tokens     108 4 flags (0)
//     112 8  blockBytes       120 8 payloadBytes
//     128 16 payload checksum, XXH3-128 (low 64 bits, then high)
//     144 64 architecture name (UTF-8, NUL-padded; for people reading a store)
//     208 40 reserved (0)
//     248 8  header checksum, XXH3-64 of bytes [0, 248)
//     256 .. 4096 zero
//   payload: for layer 0 .. numLayers-1, for j 0 .. blocksPerLayer-1: one whole layer-block
//     in the pool's layout, [2 (K, V)][numKvHeads][blockSize][headDim] (KVLayout).
//
// A chunk always holds tokens = blocksPerLayer * blockSize tokens (full chunks only).
// Checks run in a fixed order, and the first that fails names the fault: structure
// (truncated, magic, version, header checksum), then the model (dtype, layout, fingerprint),
// then the key, then the size, then the payload checksum.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/types.h"
#include "store/checksum.h"

namespace kvcake::store {

constexpr size_t kHeaderBytes = 4096;
constexpr size_t kHeaderChecked = 248;  // bytes covered by the header checksum
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kKeyBytes = 32;
constexpr size_t kArchBytes = 64;
inline constexpr char kMagic[8] = {'K', 'V', 'C', 'A', 'K', 'E', 'C', 'H'};

using Digest = std::array<uint8_t, 32>;

// What every chunk of one store must be: fixed by the model and the store's chunk size.
struct ChunkSpec {
  Digest fingerprint{};
  std::string architecture;
  int32_t numLayers = 0;
  int32_t numKvHeads = 0;
  int32_t headDim = 0;
  int32_t blockSize = 0;
  int32_t blocksPerLayer = 0;
  DType dtype = DType::F16;

  int64_t blockBytes() const { return 2 * int64_t(numKvHeads) * blockSize * headDim * int64_t(dtypeSize(dtype)); }
  int64_t tokens() const { return int64_t(blocksPerLayer) * blockSize; }
  int64_t blocksPerChunk() const { return int64_t(numLayers) * blocksPerLayer; }
  int64_t payloadBytes() const { return blocksPerChunk() * blockBytes(); }
  int64_t valueBytes() const { return int64_t(kHeaderBytes) + payloadBytes(); }
};

// Why a chunk was refused. Codes are stable: the JS side counts faults by them.
enum class Fault {
  None,
  Missing,          // no such chunk (file gone, key absent)
  Truncated,        // fewer bytes than the header says
  Size,             // more bytes than the header says
  Magic,
  Version,
  HeaderChecksum,
  Dtype,
  Layout,           // layers, KV heads, head dim, block size or blocks per layer differ
  Fingerprint,      // same shapes, another model
  Key,              // a valid chunk, but of another prefix
  PayloadChecksum,
  Io,               // the read or write itself failed
};
const char* faultCode(Fault f);

// A refused chunk or failed transfer: the fault and a sentence for logs.
struct Verdict {
  Fault fault = Fault::None;
  std::string detail;
  bool ok() const { return fault == Fault::None; }
};

struct HeaderFields {
  uint32_t version = 0;
  uint32_t headerBytes = 0;
  Digest key{};
  Digest fingerprint{};
  int32_t numLayers = 0, numKvHeads = 0, headDim = 0, dtype = 0, blockSize = 0, blocksPerLayer = 0, tokens = 0;
  uint32_t flags = 0;
  int64_t blockBytes = 0, payloadBytes = 0;
  Checksum128 payloadChecksum;
  std::string architecture;
};

// Writes the header for `spec` and `key` with the given payload checksum into out[kHeaderBytes].
void encodeHeader(const ChunkSpec& spec, const Digest& key, const Checksum128& payload, uint8_t* out);

// Structural checks only (truncated, magic, version, header checksum); fills *out when ok.
// Reads at most min(n, kHeaderBytes) bytes of p.
Verdict parseHeader(const uint8_t* p, size_t n, HeaderFields* out);

// Does a well-formed header describe a chunk this store may load as `key`?
Verdict checkHeader(const HeaderFields& h, const ChunkSpec& spec, const Digest& key);

// parseHeader then checkHeader.
Verdict verifyHeader(const uint8_t* p, size_t n, const ChunkSpec& spec, const Digest& key, HeaderFields* out);

// Hex of a digest (64 lowercase digits), and its first 12 for messages.
std::string hex(const Digest& d);
inline std::string shortHex(const Digest& d) { return hex(d).substr(0, 12); }

}  // namespace kvcake::store
