#include "core/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/thread_pool.h"
#include "core/rng.h"

namespace kvcake {

void SamplingParams::resize(int64_t rows) {
  const size_t n = size_t(rows);
  if (temperature.size() != n) temperature.assign(n, 0.f);
  if (topK.size() != n) topK.assign(n, 0);
  if (topP.size() != n) topP.assign(n, 1.f);
  if (seed.size() != n) seed.assign(n, 0);
  if (counter.size() != n) counter.assign(n, 0);
}

namespace {

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;  // first of equal maxima: lowest id
  return int32_t(best);
}

int32_t sampleRow(const float* logits, int64_t vocab, float temperature, int32_t topK, float topP, uint64_t seed,
                  int32_t counter) {
  if (!(temperature > 0.f)) return argmax(logits, vocab);
  // Candidates in order of (logit desc, id asc): a total order, so ties never depend on
  // the sort's internals.
  const auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  int64_t n = vocab;
  const bool useP = topP < 1.f;
  if (topK > 0 && topK < vocab) {
    std::nth_element(ids.begin(), ids.begin() + topK, ids.end(), before);
    n = topK;
    std::sort(ids.begin(), ids.begin() + n, before);
  } else if (useP) {
    std::sort(ids.begin(), ids.end(), before);
  }
  // Softmax over the candidates at this temperature, in fp64.
  double mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, double(logits[ids[size_t(i)]]));
  std::vector<double> p(static_cast<size_t>(n));
  double z = 0;
  const double invT = 1.0 / double(temperature);
  for (int64_t i = 0; i < n; ++i) {
    p[size_t(i)] = std::exp((double(logits[ids[size_t(i)]]) - mx) * invT);
    z += p[size_t(i)];
  }
  if (useP) {
    // The smallest prefix (most probable first) whose mass reaches topP; at least one.
    double cum = 0;
    int64_t keep = 0;
    while (keep < n) {
      cum += p[size_t(keep)] / z;
      ++keep;
      if (cum >= double(topP)) break;
    }
    n = keep;
    z = 0;
    for (int64_t i = 0; i < n; ++i) z += p[size_t(i)];
  }
  const double u = uniform01(seed, uint64_t(uint32_t(counter))) * z;
  double cum = 0;
  for (int64_t i = 0; i < n; ++i) {
    cum += p[size_t(i)];
    if (u < cum) return ids[size_t(i)];
  }
  return ids[size_t(n - 1)];
}

float logprobOf(const float* logits, int64_t vocab, int32_t id) {
  double mx = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, double(logits[i]));
  double z = 0;
  for (int64_t i = 0; i < vocab; ++i) z += std::exp(double(logits[i]) - mx);
  return float(double(logits[id]) - mx - std::log(z));
}

}  // namespace

void sampleRows(const float* logits, int64_t rows, int64_t vocab, const SamplingParams& p, int32_t* tokenIds,
                float* logprobs) {
  ThreadPool::global().parallelFor(rows, [&](int64_t r) {
    const float* row = logits + r * vocab;
    const size_t i = size_t(r);
    const int32_t id = sampleRow(row, vocab, p.temperature[i], p.topK[i], p.topP[i], p.seed[i], p.counter[i]);
    tokenIds[r] = id;
    if (logprobs) logprobs[r] = logprobOf(row, vocab, id);
  });
}

}  // namespace kvcake
