#include "store/chunk_format.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace kvcake::store {

namespace {

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint32_t get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}
uint64_t get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
  return v;
}

template <typename... T>
Verdict refuse(Fault f, const T&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return Verdict{f, s.str()};
}

}  // namespace

const char* faultCode(Fault f) {
  switch (f) {
    case Fault::None: return "ok";
    case Fault::Missing: return "missing";
    case Fault::Truncated: return "truncated";
    case Fault::Size: return "size";
    case Fault::Magic: return "magic";
    case Fault::Version: return "version";
    case Fault::HeaderChecksum: return "header-checksum";
    case Fault::Dtype: return "dtype";
    case Fault::Layout: return "layout";
    case Fault::Fingerprint: return "fingerprint";
    case Fault::Key: return "key";
    case Fault::PayloadChecksum: return "payload-checksum";
    case Fault::Io: return "io";
  }
  return "io";
}

std::string hex(const Digest& d) {
  static const char* digits = "0123456789abcdef";
  std::string s(d.size() * 2, '0');
  for (size_t i = 0; i < d.size(); ++i) {
    s[2 * i] = digits[d[i] >> 4];
    s[2 * i + 1] = digits[d[i] & 15];
  }
  return s;
}

void encodeHeader(const ChunkSpec& spec, const Digest& key, const Checksum128& payload, uint8_t* out) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kMagic, 8);
  put32(out + 8, kFormatVersion);
  put32(out + 12, uint32_t(kHeaderBytes));
  std::memcpy(out + 16, key.data(), kKeyBytes);
  std::memcpy(out + 48, spec.fingerprint.data(), 32);
  put32(out + 80, uint32_t(spec.numLayers));
  put32(out + 84, uint32_t(spec.numKvHeads));
  put32(out + 88, uint32_t(spec.headDim));
  put32(out + 92, uint32_t(spec.dtype));
  put32(out + 96, uint32_t(spec.blockSize));
  put32(out + 100, uint32_t(spec.blocksPerLayer));
  put32(out + 104, uint32_t(spec.tokens()));
  put32(out + 108, 0);
  put64(out + 112, uint64_t(spec.blockBytes()));
  put64(out + 120, uint64_t(spec.payloadBytes()));
  put64(out + 128, payload.low);
  put64(out + 136, payload.high);
  std::memcpy(out + 144, spec.architecture.data(), std::min(spec.architecture.size(), kArchBytes - 1));
  put64(out + kHeaderChecked, headerHash(out, kHeaderChecked));
}

Verdict parseHeader(const uint8_t* p, size_t n, HeaderFields* out) {
  if (n < kHeaderChecked + 8) return refuse(Fault::Truncated, "only ", n, " bytes, shorter than a chunk header");
  if (std::memcmp(p, kMagic, 8) != 0) return refuse(Fault::Magic, "not a kvcake chunk (wrong magic)");
  const uint32_t version = get32(p + 8);
  if (version != kFormatVersion)
    return refuse(Fault::Version, "format version ", version, ", this build reads version ", kFormatVersion);
  const uint64_t want = get64(p + kHeaderChecked);
  const uint64_t got = headerHash(p, kHeaderChecked);
  if (want != got) return refuse(Fault::HeaderChecksum, "the header does not match its checksum (corrupted header)");
  HeaderFields h;
  h.version = version;
  h.headerBytes = get32(p + 12);
  std::memcpy(h.key.data(), p + 16, 32);
  std::memcpy(h.fingerprint.data(), p + 48, 32);
  h.numLayers = int32_t(get32(p + 80));
  h.numKvHeads = int32_t(get32(p + 84));
  h.headDim = int32_t(get32(p + 88));
  h.dtype = int32_t(get32(p + 92));
  h.blockSize = int32_t(get32(p + 96));
  h.blocksPerLayer = int32_t(get32(p + 100));
  h.tokens = int32_t(get32(p + 104));
  h.flags = get32(p + 108);
  h.blockBytes = int64_t(get64(p + 112));
  h.payloadBytes = int64_t(get64(p + 120));
  h.payloadChecksum.low = get64(p + 128);
  h.payloadChecksum.high = get64(p + 136);
  const char* arch = reinterpret_cast<const char*>(p + 144);
  h.architecture.assign(arch, strnlen(arch, kArchBytes));
  if (h.headerBytes != kHeaderBytes)
    return refuse(Fault::Version, "header of ", h.headerBytes, " bytes, version ", kFormatVersion, " has ", kHeaderBytes);
  if (h.flags != 0) return refuse(Fault::Version, "unknown header flags ", h.flags);
  if (out) *out = std::move(h);
  return {};
}

Verdict checkHeader(const HeaderFields& h, const ChunkSpec& spec, const Digest& key) {
  if (h.dtype != int32_t(spec.dtype)) {
    const bool known = h.dtype >= 0 && h.dtype <= 2;
    return refuse(Fault::Dtype, "the chunk holds ", known ? dtypeName(DType(h.dtype)) : "an unknown dtype",
                  " KV, this store expects ", dtypeName(spec.dtype));
  }
  if (h.numLayers != spec.numLayers || h.numKvHeads != spec.numKvHeads || h.headDim != spec.headDim ||
      h.blockSize != spec.blockSize || h.blocksPerLayer != spec.blocksPerLayer)
    return refuse(Fault::Layout, "the chunk is ", h.numLayers, " layers x ", h.numKvHeads, " KV heads x head dim ",
                  h.headDim, ", ", h.blocksPerLayer, " blocks of ", h.blockSize, " tokens; this store expects ",
                  spec.numLayers, " x ", spec.numKvHeads, " x ", spec.headDim, ", ", spec.blocksPerLayer,
                  " blocks of ", spec.blockSize);
  if (h.tokens != spec.tokens() || h.blockBytes != spec.blockBytes() || h.payloadBytes != spec.payloadBytes())
    return refuse(Fault::Layout, "the header's sizes (", h.tokens, " tokens, ", h.blockBytes, "-byte blocks, ",
                  h.payloadBytes, "-byte payload) disagree with its shape");
  if (h.fingerprint != spec.fingerprint)
    return refuse(Fault::Fingerprint, "the chunk was written for another model (", h.architecture.empty() ? "unnamed" : h.architecture,
                  ", fingerprint ", shortHex(h.fingerprint), "), this store serves ", spec.architecture, " (",
                  shortHex(spec.fingerprint), ")");
  if (h.key != key)
    return refuse(Fault::Key, "the chunk holds the KV of prefix ", shortHex(h.key), ", not of ", shortHex(key));
  return {};
}

Verdict verifyHeader(const uint8_t* p, size_t n, const ChunkSpec& spec, const Digest& key, HeaderFields* out) {
  HeaderFields h;
  Verdict v = parseHeader(p, n, &h);
  if (!v.ok()) return v;
  v = checkHeader(h, spec, key);
  if (!v.ok()) return v;
  if (out) *out = std::move(h);
  return {};
}

}  // namespace kvcake::store
