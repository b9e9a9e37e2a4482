#include "core/validate.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"

namespace kvcake {

namespace {

template <typename... T>
[[noreturn]] void fail(const T&... parts) {
  throwArgParts(parts...);
}

std::string geometry(const KVLayout& l) {
  std::ostringstream s;
  s << "numBlocks " << l.numBlocks << ", numKvHeads " << l.numKvHeads << ", headDim " << l.headDim
    << ", blockSize " << l.blockSize << ", " << dtypeName(l.dtype);
  return s.str();
}

void checkPoolLive(const char* op, const char* name, const Pool& p) {
  if (!p.mem || !p.mem->data) fail(op, ": ", name, " has been released");
  if (p.mem->bytes < size_t(p.layout.poolBytes()))
    fail(op, ": ", name, " memory (", p.mem->bytes, " bytes) is smaller than its layout (", p.layout.poolBytes(),
         " bytes)");
}

// A tensor used with shape [rows][heads][headDim] must have at least that many elements
// and the pool's dtype.
void checkTensor(const char* op, const char* name, const Tensor& t, DType dtype, int64_t rows, int64_t heads,
                 int64_t headDim) {
  if (!t.mem || !t.mem->data) fail(op, ": ", name, " has been released");
  if (t.dtype != dtype)
    fail(op, ": ", name, " is ", dtypeName(t.dtype), " but the pool is ", dtypeName(dtype));
  const int64_t need = rows * heads * headDim;
  if (t.numel < need)
    fail(op, ": ", name, " has ", t.numel, " elements but [", rows, "][", heads, "][", headDim, "] needs ", need);
  if (t.mem->bytes < size_t(t.numel) * dtypeSize(t.dtype))
    fail(op, ": ", name, " memory is smaller than its ", t.numel, " elements");
}

// 0 is the op structs' "not given" (1/sqrt(headDim)); the binding rejects an explicit 0.
void checkScale(const char* op, float scale) {
  if (!std::isfinite(scale) || scale < 0.f)
    fail(op, ": scale must be a positive finite number (or left out for 1/sqrt(headDim)), got ", scale);
}

void checkHeads(const char* op, int32_t numHeads, const KVLayout& l) {
  if (numHeads < 1 || numHeads > Limits::kMaxHeads)
    fail(op, ": numHeads ", numHeads, " is out of range [1, ", Limits::kMaxHeads, "]");
  if (numHeads % l.numKvHeads != 0)
    fail(op, ": numHeads ", numHeads, " is not a multiple of the pool's numKvHeads ", l.numKvHeads);
}

// Block tables and context lengths, shared by decode and prefill.
void checkTables(const char* op, const std::vector<int32_t>& tables, int32_t tableStride,
                 const std::vector<int32_t>& contextLens, int32_t batch, const KVLayout& l) {
  if (batch < 0 || batch > Limits::kMaxBatch) fail(op, ": batch ", batch, " is out of range [0, ", Limits::kMaxBatch, "]");
  if (int64_t(contextLens.size()) != batch)
    fail(op, ": contextLens has ", contextLens.size(), " entries but batch is ", batch);
  if (tableStride < 1) fail(op, ": tableStride must be >= 1, got ", tableStride);
  // Exactly [batch][tableStride]: a longer table means the caller's shape is not the one
  // it thinks (a wrong tableStride or batch), and rows would be read at the wrong offsets.
  const int64_t need = int64_t(batch) * tableStride;
  if (int64_t(tables.size()) != need)
    fail(op, ": blockTables has ", tables.size(), " entries but batch ", batch, " x tableStride ", tableStride,
         " needs ", need);
  for (int32_t b = 0; b < batch; ++b) {
    const int64_t len = contextLens[b];
    if (len < 0) fail(op, ": contextLens[", b, "] = ", len, " is negative");
    if (len > Limits::kMaxContext) fail(op, ": contextLens[", b, "] = ", len, " exceeds the limit ", Limits::kMaxContext);
    const int64_t blocks = (len + l.blockSize - 1) / l.blockSize;
    if (blocks > tableStride)
      fail(op, ": contextLens[", b, "] = ", len, " needs ", blocks, " blocks but tableStride is ", tableStride);
    const int32_t* row = tables.data() + int64_t(b) * tableStride;
    for (int64_t i = 0; i < blocks; ++i)
      if (row[i] < 0 || row[i] >= l.numBlocks)
        fail(op, ": blockTables[", b, "][", i, "] = ", row[i], " is out of range [0, ", l.numBlocks,
             ") for this pool");
  }
}

}  // namespace

void validatePoolLayout(const KVLayout& l) {
  const char* op = "createPool";
  if (l.dtype != DType::F32 && l.dtype != DType::F16 && l.dtype != DType::BF16)
    fail(op, ": dtype must be fp32, fp16 or bf16");
  if (!isSupportedHeadDim(l.headDim))
    fail(op, ": headDim ", l.headDim, " is not supported (64, 80, 96, 128, 256)");
  if (l.blockSize < Limits::kMinBlockSize || l.blockSize > Limits::kMaxBlockSize)
    fail(op, ": blockSize ", l.blockSize, " is out of range [", Limits::kMinBlockSize, ", ", Limits::kMaxBlockSize, "]");
  if ((l.blockSize & (l.blockSize - 1)) != 0)
    fail(op, ": blockSize ", l.blockSize, " is not a power of two (8, 16, 32, 64, 128, 256)");
  if (l.numKvHeads < 1 || l.numKvHeads > Limits::kMaxKvHeads)
    fail(op, ": numKvHeads ", l.numKvHeads, " is out of range [1, ", Limits::kMaxKvHeads, "]");
  if (l.numBlocks < 1) fail(op, ": numBlocks must be >= 1, got ", l.numBlocks);
  // Slot ids (blockId * blockSize + offset) travel as int32.
  const int64_t slots = int64_t(l.numBlocks) * l.blockSize;
  if (slots > INT32_MAX)
    fail(op, ": numBlocks ", l.numBlocks, " x blockSize ", l.blockSize, " = ", slots,
         " slots exceeds the int32 slot-mapping limit ", INT32_MAX);
}

void validateAppend(const AppendOp& op) {
  const char* name = "append";
  checkPoolLive(name, "pool", op.pool);
  const KVLayout& l = op.pool.layout;
  const int64_t n = int64_t(op.slots.size());
  checkTensor(name, "k", op.k, l.dtype, n, l.numKvHeads, l.headDim);
  checkTensor(name, "v", op.v, l.dtype, n, l.numKvHeads, l.headDim);
  if (op.k.mem == op.v.mem) fail(name, ": k and v must be different tensors");
  const int64_t numSlots = int64_t(l.numBlocks) * l.blockSize;
  std::vector<std::pair<int32_t, int32_t>> used;  // (slot, index) to find repeats
  used.reserve(op.slots.size());
  for (int64_t i = 0; i < n; ++i) {
    const int32_t s = op.slots[i];
    if (s == -1) continue;  // padding row
    if (s < 0)
      fail(name, ": slotMapping[", i, "] = ", s, " is negative; only -1 marks a padding row");
    if (s >= numSlots)
      fail(name, ": slotMapping[", i, "] = ", s, " is out of range [0, ", numSlots, ") for this pool (numBlocks ",
           l.numBlocks, " x blockSize ", l.blockSize, "); use -1 for padding rows");
    used.emplace_back(s, int32_t(i));
  }
  // Two rows written to one slot would race inside the kernel and leave either value.
  std::sort(used.begin(), used.end());
  for (size_t i = 1; i < used.size(); ++i)
    if (used[i].first == used[i - 1].first)
      fail(name, ": slotMapping[", used[i].second, "] = ", used[i].first, " repeats slotMapping[",
           used[i - 1].second, "]; each slot may be written once per call");
}

void validateDecode(const DecodeOp& op) {
  const char* name = "decode";
  checkPoolLive(name, "pool", op.pool);
  const KVLayout& l = op.pool.layout;
  checkHeads(name, op.numHeads, l);
  checkScale(name, op.scale);
  checkTables(name, op.blockTables, op.tableStride, op.contextLens, op.batch, l);
  checkTensor(name, "q", op.q, l.dtype, op.batch, op.numHeads, l.headDim);
  checkTensor(name, "out", op.out, l.dtype, op.batch, op.numHeads, l.headDim);
  if (op.q.mem == op.out.mem) fail(name, ": out must be a different tensor from q");
}

void validatePrefill(const PrefillOp& op) {
  const char* name = "prefill";
  checkPoolLive(name, "pool", op.pool);
  const KVLayout& l = op.pool.layout;
  checkHeads(name, op.numHeads, l);
  checkScale(name, op.scale);
  checkTables(name, op.blockTables, op.tableStride, op.contextLens, op.batch, l);
  if (int64_t(op.qStartLoc.size()) != int64_t(op.batch) + 1)
    fail(name, ": qStartLoc has ", op.qStartLoc.size(), " entries but batch + 1 = ", int64_t(op.batch) + 1);
  if (op.qStartLoc[0] != 0) fail(name, ": qStartLoc[0] must be 0, got ", op.qStartLoc[0]);
  for (int32_t b = 0; b < op.batch; ++b) {
    const int64_t qLen = int64_t(op.qStartLoc[b + 1]) - op.qStartLoc[b];
    if (qLen < 0)
      fail(name, ": qStartLoc must be non-decreasing, but qStartLoc[", b + 1, "] = ", op.qStartLoc[b + 1],
           " < qStartLoc[", b, "] = ", op.qStartLoc[b]);
    if (qLen > op.contextLens[b])
      fail(name, ": sequence ", b, " has ", qLen, " query tokens but contextLens[", b, "] = ", op.contextLens[b],
           "; the chunk's own K/V must be appended first, so contextLens >= query length");
  }
  const int64_t totalQ = op.qStartLoc[op.batch];
  checkTensor(name, "q", op.q, l.dtype, totalQ, op.numHeads, l.headDim);
  checkTensor(name, "out", op.out, l.dtype, totalQ, op.numHeads, l.headDim);
  if (op.q.mem == op.out.mem) fail(name, ": out must be a different tensor from q");
}

void validateCopy(const CopyOp& op) {
  const char* name = "copyBlocks";
  checkPoolLive(name, "src pool", op.src);
  checkPoolLive(name, "dst pool", op.dst);
  const KVLayout& s = op.src.layout;
  const KVLayout& d = op.dst.layout;
  if (s.numKvHeads != d.numKvHeads || s.headDim != d.headDim || s.blockSize != d.blockSize || s.dtype != d.dtype)
    fail(name, ": pool geometry mismatch: src (", geometry(s), ") vs dst (", geometry(d),
         "); numKvHeads, headDim, blockSize and dtype must match");
  if (op.pairs.size() % 2 != 0) fail(name, ": pairs has ", op.pairs.size(), " entries; it must be [n][2] (src, dst)");
  const int64_t n = int64_t(op.pairs.size()) / 2;
  const bool samePool = op.src.mem == op.dst.mem;
  std::vector<int32_t> dstOwner(size_t(d.numBlocks), -1);
  std::vector<char> isSrc(samePool ? size_t(s.numBlocks) : 0, 0);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t a = op.pairs[2 * i], b = op.pairs[2 * i + 1];
    if (a < 0 || a >= s.numBlocks)
      fail(name, ": pairs[", i, "][0] = ", a, " is out of range [0, ", s.numBlocks, ") for the src pool");
    if (b < 0 || b >= d.numBlocks)
      fail(name, ": pairs[", i, "][1] = ", b, " is out of range [0, ", d.numBlocks, ") for the dst pool");
    if (dstOwner[b] >= 0)
      fail(name, ": pairs[", i, "][1] = ", b, " repeats the destination of pairs[", dstOwner[b],
           "]; destination blocks must be distinct");
    dstOwner[b] = int32_t(i);
    if (samePool) isSrc[a] = 1;
  }
  // Within one pool, a block that is both read and written makes the result depend on
  // the order copies happen to run in.
  if (samePool)
    for (int64_t i = 0; i < n; ++i) {
      const int32_t b = op.pairs[2 * i + 1];
      if (isSrc[b])
        fail(name, ": pairs[", i, "][1] = ", b,
             " is also a source block in this call; within one pool, sources and destinations must not overlap");
    }
}

void validateWrite(const WriteOp& op) {
  if (!op.dst || !op.dst->data) fail("write: the tensor has been released");
  const size_t len = op.bytes ? op.bytes->size() : 0;
  if (op.offset > op.dst->bytes || len > op.dst->bytes - op.offset)
    fail("write: ", len, " bytes at offset ", op.offset, " do not fit the tensor's ", op.dst->bytes, " bytes");
}

void validateRead(const ReadOp& op) {
  if (!op.src || !op.src->data) fail("read: the tensor has been released");
  if (op.offset > op.src->bytes || op.length > op.src->bytes - op.offset)
    fail("read: ", op.length, " bytes at offset ", op.offset, " exceed the tensor's ", op.src->bytes, " bytes");
  if (!op.into) fail("read: no destination buffer");
}

void validateReference(const ReferenceOp& op) {
  const char* name = "reference";
  if (op.kind == ReferenceOp::Kind::Read) {
    checkPoolLive(name, "pool", op.pool);
    const int32_t n = op.pool.layout.numBlocks;
    for (size_t i = 0; i < op.blocks.size(); ++i)
      if (op.blocks[i] < 0 || op.blocks[i] >= n)
        fail(name, ": blocks[", i, "] = ", op.blocks[i], " is out of range [0, ", n, ") for this pool");
  } else if (op.kind == ReferenceOp::Kind::Fma) {
    constexpr int64_t kMaxIterations = int64_t(1) << 40;
    if (op.iterations < 1 || op.iterations > kMaxIterations)
      fail(name, ": iterations ", op.iterations, " is out of range [1, ", kMaxIterations, "]");
  } else {
    fail(name, ": kind must be 'read' or 'fma'");
  }
  if (!op.result) fail(name, ": no result slot");
}

float effectiveScale(float scale, int32_t headDim) {
  return scale > 0.f ? scale : 1.f / std::sqrt(float(headDim));
}

}  // namespace kvcake
