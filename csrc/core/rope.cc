#include "core/rope.h"

#include <cmath>

namespace kvcake {

std::vector<double> ropeInvFreq(int headDim, double theta, const RopeScaling& s) {
  const int half = headDim / 2;
  std::vector<double> f(static_cast<size_t>(half));
  const double pi = 3.14159265358979323846;
  for (int i = 0; i < half; ++i) {
    double inv = 1.0 / std::pow(theta, double(2 * i) / double(headDim));
    if (s.llama3) {
      const double lowWave = s.originalMax / s.lowFreqFactor, highWave = s.originalMax / s.highFreqFactor;
      const double wave = 2 * pi / inv;
      if (wave > lowWave) {
        inv = inv / s.factor;
      } else if (!(wave < highWave)) {
        const double smooth = (s.originalMax / wave - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv = (1 - smooth) * inv / s.factor + smooth * inv;
      }
    }
    f[size_t(i)] = inv;
  }
  return f;
}

}  // namespace kvcake
