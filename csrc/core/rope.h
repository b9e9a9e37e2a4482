// RoPE inverse frequencies (Hugging Face conventions), in fp64: inv_freq[i] =
// theta^(-2i/headDim), and Llama 3's rope_scaling (rope_type "llama3"): wavelengths longer
// than original_max / low_freq_factor are divided by `factor`, shorter than
// original_max / high_freq_factor are kept, and the band between is interpolated.
#pragma once
#include <vector>

namespace kvcake {

struct RopeScaling {
  bool llama3 = false;
  double factor = 1, lowFreqFactor = 1, highFreqFactor = 4, originalMax = 8192;
};

std::vector<double> ropeInvFreq(int headDim, double theta, const RopeScaling& s);

}  // namespace kvcake
