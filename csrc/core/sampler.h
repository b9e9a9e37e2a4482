// Per-row token sampling on the host: greedy, temperature, top-k, top-p, with a
// counter-based draw keyed by (seed, counter) so a request gets the same token for the same
// logits whatever rows share its step.
#pragma once
#include <cstdint>
#include <vector>

namespace kvcake {

struct SamplingParams {
  std::vector<float> temperature;  // [rows]; 0 = greedy
  std::vector<int32_t> topK;       // [rows]; 0 = off
  std::vector<float> topP;         // [rows]; 1 = off
  std::vector<uint64_t> seed;      // [rows]
  std::vector<int32_t> counter;    // [rows]
  // Fills missing arrays with the defaults for `rows` rows.
  void resize(int64_t rows);
};

// logits: [rows][vocab]. Writes tokenIds[rows] and logprobs[rows] (log-softmax of the raw
// logits at the chosen id). Rows run in parallel on the thread pool.
void sampleRows(const float* logits, int64_t rows, int64_t vocab, const SamplingParams& p, int32_t* tokenIds,
                float* logprobs);

}  // namespace kvcake
